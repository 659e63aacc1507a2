"""Every logger of our code writes JSON lines through the scrubbing formatter; mapping logs carry no resource
ids or drug names; client-supplied header values are cut short in logs."""
from __future__ import annotations

import datetime as dt
import io
import json
import logging

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from cds_service.auth import Authenticator
from cds_service.config import Settings
from cds_service.logging_setup import MAX_FIELD_CHARS, configure_logging
from fhir_mappings import summarize
from service_helpers import PV, hook_body, log_events

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


@pytest.fixture
def stream():
    out = io.StringIO()
    configure_logging("DEBUG", stream=out)
    try:
        yield out
    finally:
        configure_logging("INFO")          # back to stderr for the other tests


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize("logger", ["fhir_mappings.medications", "fhir_mappings.summary", "cards.render", "her2cds.x"])
def test_every_package_logger_writes_scrubbed_json(stream, logger):
    logging.getLogger(logger).warning("saw Bearer abc.def.ghi", extra={"detail": "Authorization: Bearer s3cret"})
    [line] = [line for line in lines(stream) if line["logger"] == logger]   # other apps' writer threads may log too
    assert "s3cret" not in json.dumps(line) and "abc.def.ghi" not in line["event"]


def test_a_mapping_log_line_names_no_resource_id_and_no_drug(stream):
    """A code/display conflict (trastuzumab code, doxorubicin text) is logged by kind only."""
    request = {"resourceType": "MedicationRequest", "id": "secret-mr-1", "status": "completed", "intent": "order",
               "subject": {"reference": "Patient/p1"}, "authoredOn": "2024-01-01",
               "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "224905", "display": "doxorubicin"}],
                                             "text": "doxorubicin"}}
    summary = summarize([{"resourceType": "Patient", "id": "p1"}, request], "p1", dt.date(2026, 1, 1))
    assert summary.unmapped                             # the conflict is reported on the cards...
    text = stream.getvalue()
    assert "mapping.display_conflict" in text           # ...and logged, as JSON
    assert "secret-mr-1" not in text and "doxorubicin" not in text and "trastuzumab" not in text


def test_a_huge_header_value_is_cut_short_in_the_log(app, logs):
    state = app.extensions["her2cds"]
    state.authenticator = Authenticator(Settings(auth_mode="required", public_base_url="http://localhost"), state.database, issuers={})
    token = jwt.encode({"iss": "x"}, ec.generate_private_key(ec.SECP384R1()), algorithm="ES384",
                       headers={"kid": "k", "typ": "A" * 9000})
    reply = app.test_client().post(f"/cds-services/{PV}", json=hook_body(), headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 401
    rejected = [line for line in log_events(logs) if line["event"].startswith("auth.rejected")]
    assert rejected and all("typ" in line["reason"] for line in rejected if "reason" in line)
    for line in rejected:
        assert all(len(value) <= MAX_FIELD_CHARS + 40 for value in line.values() if isinstance(value, str))


def test_a_huge_content_type_is_not_echoed_in_full(client):
    reply = client.post(f"/cds-services/{PV}", data=b"{}", content_type="text/" + "x" * 5000)
    assert reply.status_code == 415
    assert len(reply.get_json()["issue"][0]["details"]["text"]) < 200


def test_the_gunicorn_access_log_is_a_json_line_without_client_headers_or_query():
    import datetime
    from types import SimpleNamespace

    from gunicorn.config import Config
    from gunicorn.glogging import Logger, SafeAtoms

    from cds_service.serve import gunicorn_options

    config = Config()
    config.set("access_log_format", gunicorn_options("127.0.0.1", 8080, 1)["access_log_format"])
    response = SimpleNamespace(status="200 OK", response_length=12, sent=12, headers=[])
    request = SimpleNamespace(headers=[("USER-AGENT", "evil-agent"), ("REFERER", "https://evil.example")],
                              method="POST", path='/cds-services/x"y', query="patient=secret", uri="/", version=(1, 1))
    environ = {"REMOTE_ADDR": "127.0.0.1", "REQUEST_METHOD": "POST", "RAW_URI": '/cds-services/x"y?patient=secret',
               "PATH_INFO": '/cds-services/x"y', "QUERY_STRING": "patient=secret", "SERVER_PROTOCOL": "HTTP/1.1",
               "HTTP_USER_AGENT": "evil-agent", "HTTP_REFERER": "https://evil.example"}
    atoms = Logger(config).atoms(response, request, environ, datetime.timedelta(milliseconds=5))
    line = json.loads(config.access_log_format % SafeAtoms(atoms))      # as gunicorn's Logger.access formats it
    assert line["logger"] == "gunicorn.access" and line["status"] == "200" and line["path"] == '/cds-services/x"y'
    assert "evil" not in json.dumps(line) and "secret" not in json.dumps(line)


JWT_LIKE = "eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJ4In0.c2ln"
LONG = "L" * (MAX_FIELD_CHARS + 7)
CUT = f"{'L' * MAX_FIELD_CHARS}...[7 more chars]"

# (what an `extra` field holds, what the JSON line shows for it)
LOGGED_VALUES = [
    ("short text", "hits", "hits"),
    ("numbers and flags", [1, 2.5, True, None], [1, 2.5, True, None]),
    ("a JWT", f"got {JWT_LIKE}", "got [jwt]"),
    ("a bearer token, any case", "BeArEr abc.def", "BeArEr [redacted]"),
    ("a long string", LONG, CUT),
    ("nested strings", {"a": [f"x {JWT_LIKE}", LONG], "b": {"c": "Bearer t"}},
     {"a": ["x [jwt]", CUT], "b": {"c": "Bearer [redacted]"}}),
    ("keys", {JWT_LIKE: 1, "k" * 150: 2, 7: 3},
     {"[jwt]": 1, f"{'k' * 100}...[50 more chars]": 2, "7": 3}),
    ("a tuple", ("a", 1), ["a", 1]),
    ("long lists and dicts keep 50 items", {"l": list(range(60)), "d": {str(i): i for i in range(60)}},
     {"l": list(range(50)), "d": {str(i): i for i in range(50)}}),
]


@pytest.mark.parametrize("name,value,shown", LOGGED_VALUES, ids=[v[0] for v in LOGGED_VALUES])
def test_every_string_of_a_logged_field_is_scrubbed_and_cut_at_any_depth(stream, name, value, shown):
    logging.getLogger("her2cds.x").info("event", extra={"field": value})
    [line] = [line for line in lines(stream) if line["logger"] == "her2cds.x"]
    assert line["field"] == shown
