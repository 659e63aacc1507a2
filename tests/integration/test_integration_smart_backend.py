"""SMART Backend Services against a real sekmet-fhir whose /fhir requires bearer tokens (issue 10).

sekmet-fhir 0.1.1 implements the token endpoint (`client_credentials` + `private_key_jwt`, assertion
`aud` = its `/auth/token`, `exp` at most 5 min ahead, one use per `jti`) and advertises it in
`/fhir/.well-known/smart-configuration`; `server_auth.smart_clients` registers our public key. The service
is registered as that server's backend client (http token URL allowed explicitly: a loopback test server),
and a hook call with `fhirServer` and no `fhirAuthorization` must read the record with its own token.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from cds_service import create_app, pipeline
from cds_service.gather import GatheredRecord
from sandbox import loader
from sandbox.sekmet import SekmetServer, ensure_sekmet

pytestmark = pytest.mark.integration

CLIENT_ID = "her2-cds-it"
LOADER_TOKEN = "it-loader-" + uuid.uuid4().hex        # a static token for loading data only
PATIENT = "smart-it-pat"


@pytest.fixture(scope="module")
def client_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def secured_fhir(client_key) -> Iterator[str]:
    """A sekmet-fhir whose /fhir needs a token: SMART tokens for our client, a static one for the loader."""
    jwk = {**json.loads(RSAAlgorithm.to_jwk(client_key.public_key())), "kid": "it-1", "alg": "RS384"}
    auth = {"server_auth": {"types": ["smart", "bearer"], "tokens": [LOADER_TOKEN], "enforce_scopes": True,
                            "token_lifetime": 300,
                            "smart_clients": [{"client_id": CLIENT_ID, "jwks": {"keys": [jwk]},
                                               "scopes": "system/*.read"}]}}
    # sekmet.yaml is YAML, and JSON is a YAML flow mapping: one more top-level key.
    server = SekmetServer(venv=ensure_sekmet(), extra_config="server_auth: " + json.dumps(auth["server_auth"]) + "\n")
    server.start()
    try:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {LOADER_TOKEN}"
        record = [{"resourceType": "Patient", "id": PATIENT},
                  {"resourceType": "Condition", "id": "smart-it-c1", "subject": {"reference": f"Patient/{PATIENT}"},
                   "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C50.412"}]}},
                  {"resourceType": "Medication", "id": "smart-it-med",
                   "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "224905",
                                        "display": "trastuzumab"}]}},
                  {"resourceType": "MedicationRequest", "id": "smart-it-mr", "status": "completed", "intent": "order",
                   "subject": {"reference": f"Patient/{PATIENT}"},
                   "medicationReference": {"reference": "Medication/smart-it-med"}}]
        bundle = {"resourceType": "Bundle", "type": "transaction",
                  "entry": [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                            for r in record]}
        loader.load_bundle(server.base_url, bundle, name="smart-it", session=session)
        yield server.base_url
    finally:
        server.stop()


def registrations(tmp_path: Path, key: rsa.RSAPrivateKey, fhir_base: str, **extra: Any) -> str:
    pem = tmp_path / "client.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    path = tmp_path / "backend.json"
    path.write_text(json.dumps([{"fhir_server": fhir_base, "client_id": CLIENT_ID, "private_key_file": str(pem),
                                 "kid": "it-1", "alg": "RS384", "scope": "system/*.read",
                                 "allow_insecure_http": True, **extra}]))
    return str(path)


class Recorder:
    def __init__(self) -> None:
        self.records: list[GatheredRecord] = []

    def __call__(self, service, context, record, **kwargs) -> pipeline.Evaluation:
        self.records.append(record)
        return pipeline.Evaluation(summary=None, decisions=(), cards=[], gaps=record.gaps,  # type: ignore[arg-type]
                                   issues=record.gaps, issue_counts={})


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(pipeline, "evaluate", rec)
    return rec


def hook_call(client, fhir_base: str):
    body = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()), "fhirServer": fhir_base,
            "context": {"patientId": PATIENT, "userId": "Practitioner/it"}}
    return client.post("/cds-services/her2-next-regimen-patient-view", data=json.dumps(body),
                       content_type="application/json")


def app_for(tmp_path: Path, backend_file: str | None, fhir_base: str):
    overrides: dict[str, Any] = {"auth_mode": "off", "feedback_db_url": f"sqlite:///{tmp_path}/fb.sqlite3",
                                 "fhir_deadline_seconds": 10, "fhir_timeout_seconds": 5,
                                 "fhir_servers": fhir_base}     # the FHIR-server allowlist (issue 14)
    if backend_file:
        overrides["smart_backend_clients_file"] = backend_file
    return create_app(overrides)


def test_the_fhir_server_refuses_calls_without_a_token(secured_fhir):
    assert requests.get(f"{secured_fhir}/Patient/{PATIENT}", timeout=10).status_code == 401


def test_without_a_registration_the_call_is_412(tmp_path, secured_fhir, recorder):
    response = hook_call(app_for(tmp_path, None, secured_fhir).test_client(), secured_fhir)
    assert response.status_code == 412 and recorder.records == []


def test_a_registered_service_reads_the_record_with_its_backend_token(tmp_path, secured_fhir, client_key, recorder):
    client = app_for(tmp_path, registrations(tmp_path, client_key, secured_fhir), secured_fhir).test_client()
    response = hook_call(client, secured_fhir)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    (record,) = recorder.records
    ids = {f"{r['resourceType']}/{r['id']}" for r in record.resources}
    assert {f"Patient/{PATIENT}", "Condition/smart-it-c1", "MedicationRequest/smart-it-mr",
            "Medication/smart-it-med"} <= ids
    assert record.gaps == ()


def test_the_token_is_reused_across_calls(tmp_path, secured_fhir, client_key, recorder, monkeypatch):
    """Counted at the client: a second token request would succeed too (fresh jti), so only the count shows the cache."""
    app = app_for(tmp_path, registrations(tmp_path, client_key, secured_fhir), secured_fhir)
    tokens = app.extensions["her2cds"].gatherer.backend
    requests_made: list[str] = []
    real = tokens._obtain
    monkeypatch.setattr(tokens, "_obtain", lambda reg, deadline: (requests_made.append(reg.fhir_server),
                                                                  real(reg, deadline))[1])
    client = app.test_client()
    assert [hook_call(client, secured_fhir).status_code for _ in range(3)] == [200, 200, 200]
    assert len(requests_made) == 1


def test_a_key_the_server_does_not_know_is_a_412_that_says_why(tmp_path, secured_fhir, recorder):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client = app_for(tmp_path, registrations(tmp_path, stranger, secured_fhir), secured_fhir).test_client()
    response = hook_call(client, secured_fhir)
    assert response.status_code == 412
    assert "SMART Backend Services" in response.get_json()["issue"][0]["details"]["text"]
