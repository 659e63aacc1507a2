"""FHIR client: each HTTP failure class is its own exception; timeouts and deadline; one session per process."""
from __future__ import annotations

import time

import pytest
import requests
import responses

from cds_service import fhir_client as fc
from service_helpers import FHIR, closed_port, searchset

STATUS_CLASSES = [(401, fc.Unauthorized401), (403, fc.Forbidden403), (404, fc.NotFound404), (410, fc.Gone410),
                  (400, fc.ClientError4xx), (422, fc.ClientError4xx), (500, fc.ServerError5xx),
                  (503, fc.ServerError5xx), (302, fc.InvalidResponse)]


def client(**kw) -> fc.FhirClient:
    return fc.FhirClient(requests.Session(), FHIR, **kw)


@pytest.mark.parametrize("status,error", STATUS_CLASSES, ids=[str(s) for s, _ in STATUS_CLASSES])
def test_each_status_class_has_its_own_exception(fhir, status, error):
    fhir.add(responses.GET, f"{FHIR}/Patient/p1", status=status, json={"resourceType": "OperationOutcome"})
    with pytest.raises(error) as caught:
        client().get("Patient/p1", what="patient")
    assert caught.value.status == status and type(caught.value) is error


def _exception_classes(cls: type[fc.FhirError]) -> list[type[fc.FhirError]]:
    return [cls] + [c for sub in cls.__subclasses__() for c in _exception_classes(sub)]


@pytest.mark.parametrize("error", _exception_classes(fc.FhirError), ids=lambda e: e.kind)
def test_every_fhir_exception_has_its_row_in_the_failure_table(error):
    assert fc.FAILURES[error.kind].error is error and fc.FAILURES[error.kind].description


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"[1, 2]", b'{"no": "resourceType"}'])
def test_non_fhir_200_is_invalid_response(fhir, body):
    fhir.add(responses.GET, f"{FHIR}/Patient/p1", body=body, status=200)
    with pytest.raises(fc.InvalidResponse):
        client().get("Patient/p1", what="patient")


def test_a_search_must_answer_a_bundle(fhir):
    fhir.add(responses.GET, f"{FHIR}/Condition", json={"resourceType": "Patient", "id": "x"})
    with pytest.raises(fc.InvalidResponse):
        client().search_page("Condition?patient=p1", what="conditions")


def test_search_page_returns_the_next_link(fhir):
    fhir.add(responses.GET, f"{FHIR}/Condition", json=searchset([], f"{FHIR}/Condition?_offset=1"))
    assert client().search_page("Condition?patient=p1", what="conditions").next_url == f"{FHIR}/Condition?_offset=1"


def test_query_values_with_urls_stay_relative_to_the_base(fhir):
    fhir.add(responses.GET, f"{FHIR}/Observation", json=searchset([]))
    client().search_page("Observation?patient=p1&code=http://loinc.org|10230-1", what="observations")
    assert fhir.calls[0].request.url.startswith(f"{FHIR}/Observation?")


def test_unreachable_server_raises_unreachable():
    with pytest.raises(fc.Unreachable):
        fc.FhirClient(requests.Session(), f"http://127.0.0.1:{closed_port()}/fhir", timeout=0.5) \
            .get("Patient/p1", what="patient")


def test_silent_server_raises_timeout_after_the_per_request_timeout(hanging_server):
    c = fc.FhirClient(requests.Session(), f"http://127.0.0.1:{hanging_server.port}/fhir", timeout=0.3)
    start = time.monotonic()
    with pytest.raises(fc.Timeout):
        c.get("Patient/p1", what="patient")
    assert time.monotonic() - start < 1.0


def test_request_budget_never_exceeds_the_overall_deadline(hanging_server):
    c = fc.FhirClient(requests.Session(), f"http://127.0.0.1:{hanging_server.port}/fhir", timeout=5.0,
                      deadline=time.monotonic() + 0.3)
    start = time.monotonic()
    with pytest.raises(fc.Timeout):
        c.get("Patient/p1", what="patient")
    assert time.monotonic() - start < 1.0


def test_passed_deadline_raises_without_a_request(fhir):
    with pytest.raises(fc.Timeout):
        client(deadline=time.monotonic() - 1).get("Patient/p1", what="patient")
    assert len(fhir.calls) == 0


def test_links_to_other_servers_are_refused_before_any_request(fhir):
    with pytest.raises(fc.InvalidResponse):
        client(access_token="t").get("https://evil.example/fhir/Patient/p1", what="patient")
    assert len(fhir.calls) == 0


def test_repr_does_not_show_the_token():
    assert "sekrit" not in repr(client(access_token="sekrit"))


def test_session_pool_reuses_one_session_per_process(monkeypatch):
    pool = fc.SessionPool()
    first = pool.session()
    assert pool.session() is first
    monkeypatch.setattr(fc.os, "getpid", lambda: -1)     # as in a freshly forked gunicorn worker
    assert pool.session() is not first
