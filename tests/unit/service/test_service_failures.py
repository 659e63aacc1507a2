"""Failures that speak: bad data is a reported gap (counted in `hook.call`, logged at WARNING); a bug in our
own code is a 500 with a logged traceback and an OperationOutcome, never a 412, a 401 or `cards: []`."""
from __future__ import annotations

import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from cds_service import gather
from cds_service.auth import Authenticator
from service_helpers import (PV, RECORD_PATIENT, full_prefetch, hook_body, log_events, prefetch_for, searchset,
                             synthetic_record)


def assert_internal_error(reply, logs) -> None:
    assert reply.status_code == 500
    outcome = reply.get_json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "exception"
    [line] = log_events(logs, "internal.error")
    assert line["level"] == "error" and "Traceback" in line["traceback"]
    assert line["correlation_id"] == reply.headers["X-Correlation-Id"]


def test_a_malformed_date_is_a_gap_counted_in_the_hook_call_line_at_warning(client, logs):
    prefetch = full_prefetch()
    prefetch["medicationStatements"] = searchset([{
        "resourceType": "MedicationStatement", "id": "ms1", "status": "completed",
        "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2024-5-1",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                  "code": "224905"}]}}])
    reply = client.post(f"/cds-services/{PV}", json=hook_body(fhir_server=None, prefetch=prefetch))
    assert reply.status_code == 200
    [line] = log_events(logs, "hook.call")
    assert line["level"] == "warning"
    assert line["gaps"] >= 1 and line["gap_kinds"]["MedicationStatement"] >= 1
    assert "ms1" not in json.dumps(line)          # kinds, not resource ids


def test_a_call_with_clean_data_logs_hook_call_at_info(client, logs):
    prefetch = prefetch_for(synthetic_record(), RECORD_PATIENT)
    reply = client.post(f"/cds-services/{PV}", json=hook_body(patient=RECORD_PATIENT, fhir_server=None, prefetch=prefetch))
    assert reply.status_code == 200 and reply.get_json()["cards"]
    [line] = log_events(logs, "hook.call")
    assert line["level"] == "info" and line["gaps"] == 0


def test_a_bug_while_fetching_is_a_500_not_a_412_blaming_the_fhir_server(client, logs, fhir, monkeypatch):
    def broken(*_args, **_kwargs):
        raise KeyError("bug in our code")
    monkeypatch.setattr(gather, "fill_template", broken)
    reply = client.post(f"/cds-services/{PV}", json=hook_body())
    assert_internal_error(reply, logs)
    [line] = log_events(logs, "hook.call")
    assert line["status"] == 500


def test_a_bug_while_deciding_is_a_500_never_an_empty_card_list(client, logs, fake_evaluate):
    fake_evaluate.raises = TypeError("bug in our code")
    reply = client.post(f"/cds-services/{PV}", json=hook_body(fhir_server=None, prefetch=full_prefetch()))
    assert_internal_error(reply, logs)
    assert "cards" not in reply.get_json()


class BrokenIssuer:
    """A trusted issuer whose key lookup has a bug."""

    def jku_allowed(self, jku):
        raise RuntimeError("bug in our code")


def test_a_bug_while_checking_a_token_is_a_500_not_a_401(app, logs):
    state = app.extensions["her2cds"]
    from cds_service.config import Settings
    state.authenticator = Authenticator(Settings(auth_mode="required", public_base_url="http://localhost"), state.database,
                                        issuers={"https://client.test": BrokenIssuer()})
    token = jwt.encode({"iss": "https://client.test", "aud": "x", "iat": 0, "exp": 1, "jti": "j"},
                       ec.generate_private_key(ec.SECP384R1()), algorithm="ES384", headers={"kid": "k1"})
    reply = app.test_client().post(f"/cds-services/{PV}", json=hook_body(),
                                   headers={"Authorization": f"Bearer {token}"})
    assert_internal_error(reply, logs)
