"""Bad input is a 4xx JSON OperationOutcome naming the field, never a 500; bugs are a 500 with a correlation id."""
from __future__ import annotations

import json

import pytest

from service_helpers import PV, SELECT, SIGN, draft_order, full_prefetch, hook_body, log_events


def post(client, service_id, body=None, *, raw: bytes | None = None, content_type="application/json", **kw):
    data = raw if raw is not None else json.dumps(body).encode()
    return client.post(f"/cds-services/{service_id}", data=data, content_type=content_type, **kw)


def assert_outcome(response, status: int, expression: str | None = None) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    doc = response.get_json()
    assert doc["resourceType"] == "OperationOutcome" and doc["issue"][0]["severity"] == "error"
    if expression:
        assert doc["issue"][0]["expression"] == [expression]
    return doc


def ok_body(hook="patient-view", **kw):
    return hook_body(hook, prefetch=full_prefetch(), **kw)


def without(path: str, hook: str = "patient-view"):
    body = ok_body(hook)
    *parents, last = path.split(".")
    target = body
    for p in parents:
        target = target[p]
    del target[last]
    return body


def with_value(path: str, value, hook: str = "patient-view"):
    body = ok_body(hook)
    *parents, last = path.split(".")
    target = body
    for p in parents:
        target = target[p]
    target[last] = value
    return body


BAD_BODIES = [
    ("missing hook", PV, without("hook"), "hook"),
    ("missing hookInstance", PV, without("hookInstance"), "hookInstance"),
    ("missing context", PV, without("context"), "context"),
    ("missing context.patientId", PV, without("context.patientId"), "context.patientId"),
    ("patientId not a FHIR id", PV, with_value("context.patientId", "a/b"), "context.patientId"),
    ("hookInstance of 100,000 characters", PV, with_value("hookInstance", "h" * 100_000), "hookInstance"),
    ("hook registered for another service", PV, with_value("hook", "order-sign"), "hook"),
    ("unknown hook name", PV, with_value("hook", "probe-no-such-hook"), "hook"),
    ("draftOrders a MedicationRequest", SIGN, with_value("context.draftOrders", draft_order(), "order-sign"),
     "context.draftOrders.resourceType"),
    ("draftOrders missing on order-sign", SIGN, without("context.draftOrders", "order-sign"),
     "context.draftOrders"),
    ("fhirAuthorization without fhirServer (cds-r-1)", PV,
     {**without("fhirServer"), "fhirAuthorization": {"access_token": "t", "token_type": "Bearer"}}, "fhirServer"),
    ("prefetch value a string", PV, with_value("prefetch", {"patient": "Patient/p1"}), "prefetch.patient"),
    ("context an array", PV, with_value("context", []), "context"),
]


@pytest.mark.parametrize("name,service_id,body,expression", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_invalid_request_is_400_naming_the_field(client, name, service_id, body, expression):
    assert_outcome(post(client, service_id, body), 400, expression)


def test_malformed_json_is_400(client):
    assert_outcome(post(client, PV, raw=b'{"hook": "patient-view", "hookInstance": '), 400)


def test_json_array_body_is_400(client):
    assert_outcome(post(client, PV, [ok_body()]), 400, "$")


def test_non_utf8_body_is_400(client):
    assert_outcome(post(client, PV, raw=b"\xff\xfe{}"), 400)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_non_json_content_type_is_415(client, content_type):
    assert_outcome(post(client, PV, ok_body(), content_type=content_type), 415)


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "application/fhir+json", "Application/FHIR+JSON; charset=UTF-8"])
def test_json_content_types_are_accepted(client, content_type):
    assert post(client, PV, ok_body(), content_type=content_type).status_code == 200


def test_body_over_the_limit_is_413_outcome(client):
    body = ok_body(extension={"padding": "A" * (300 * 1024)})   # the test app's limit is 256 KiB
    assert_outcome(post(client, PV, body), 413)


def test_unknown_service_id_is_404(client):
    assert_outcome(post(client, "probe-no-such-service", ok_body()), 404)


def test_wrong_method_is_405_json_with_allow(client):
    response = client.get(f"/cds-services/{PV}")
    assert_outcome(response, 405)
    assert "POST" in response.headers["Allow"]


def test_unknown_path_is_404_json(client):
    assert_outcome(client.get("/nowhere"), 404)


def test_order_select_without_selections_is_accepted(client):
    assert post(client, SELECT, ok_body("order-select")).status_code == 200


def test_sandbox_style_draft_orders_without_bundle_type_are_accepted(client):
    body = ok_body("order-sign")
    del body["context"]["draftOrders"]["type"]
    body["context"]["draftOrders"]["entry"][0]["resource"]["category"] = {"text": "not an array"}
    assert post(client, SIGN, body).status_code == 200


def test_valid_call_answers_cards_from_evaluate(client, fake_evaluate):
    response = post(client, SIGN, ok_body("order-sign"))
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json()["cards"][0]["summary"] == "fake card"
    assert fake_evaluate.calls[-1]["hook"] == "order-sign"
    assert fake_evaluate.calls[-1]["context"]["draftOrders"]["resourceType"] == "Bundle"


def test_unexpected_exception_is_500_outcome_with_correlation_id_logged_with_traceback(client, fake_evaluate, logs):
    fake_evaluate.raises = RuntimeError("boom")
    response = post(client, PV, ok_body())
    doc = assert_outcome(response, 500)
    correlation = response.headers["X-Correlation-Id"]
    assert correlation in doc["issue"][0]["details"]["text"]
    (line,) = log_events(logs, "internal.error")
    assert line["correlation_id"] == correlation and "RuntimeError: boom" in line["traceback"]
    assert "boom" not in json.dumps(doc)
