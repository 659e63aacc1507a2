"""The sandbox loader: one transaction POST, PUT-each when transactions are refused, clear errors."""
from __future__ import annotations

import datetime as dt
import json

import pytest
import requests
import responses

from sandbox import loader
from sandbox.loader import LoadError, load_bundle, load_directory

BASE = "http://fhir.test/fhir"
BUNDLE = {"resourceType": "Bundle", "type": "transaction", "entry": [
    {"resource": {"resourceType": "Patient", "id": "p1"}, "request": {"method": "PUT", "url": "Patient/p1"}},
    {"resource": {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}},
     "request": {"method": "PUT", "url": "Condition/c1"}}]}


@responses.activate
def test_a_bundle_is_posted_as_one_transaction_to_the_base():
    responses.post(BASE, json={"resourceType": "Bundle", "type": "transaction-response",
                               "entry": [{"response": {"status": "201 Created"}}] * 2})
    result = load_bundle(BASE + "/", BUNDLE, name="b")
    assert (result.method, result.resources) == ("transaction", 2)
    assert responses.calls[0].request.headers["Content-Type"] == "application/fhir+json"
    assert json.loads(responses.calls[0].request.body)["type"] == "transaction"


@pytest.mark.parametrize("status", [404, 405, 501])
@responses.activate
def test_a_server_refusing_transactions_gets_each_entry_put_in_order(status):
    responses.post(BASE, status=status)
    responses.put(f"{BASE}/Patient/p1", status=201, json={})
    responses.put(f"{BASE}/Condition/c1", status=200, json={})
    result = load_bundle(BASE, BUNDLE, name="b")
    assert result.method == "put-each"
    assert [c.request.url for c in responses.calls[1:]] == [f"{BASE}/Patient/p1", f"{BASE}/Condition/c1"]


@responses.activate
def test_a_rejected_bundle_reports_the_servers_diagnostics():
    responses.post(BASE, status=422, json={"resourceType": "OperationOutcome",
                                           "issue": [{"severity": "error", "code": "processing", "diagnostics": "Resource Patient/p9 not found"}]})
    with pytest.raises(LoadError, match="HTTP 422: Resource Patient/p9 not found"):
        load_bundle(BASE, BUNDLE, name="b")


@responses.activate
def test_failed_entries_inside_a_200_transaction_response_are_errors():
    responses.post(BASE, json={"resourceType": "Bundle", "entry": [{"response": {"status": "201 Created"}},
                                                                   {"response": {"status": "400 Bad Request"}}]})
    with pytest.raises(LoadError, match="400 Bad Request"):
        load_bundle(BASE, BUNDLE, name="b")


@responses.activate
def test_an_unreachable_server_says_so():
    responses.post(BASE, body=requests.ConnectionError("refused"))
    with pytest.raises(LoadError, match="cannot reach the FHIR server"):
        load_bundle(BASE, BUNDLE)


class _RecordingSession:
    def __init__(self):
        self.timeouts = []

    def post(self, url, **kwargs):
        self.timeouts.append(kwargs.get("timeout"))
        response = requests.Response()
        response.status_code, response._content = 405, b""
        return response

    def put(self, url, **kwargs):
        self.timeouts.append(kwargs.get("timeout"))
        response = requests.Response()
        response.status_code, response._content = 200, b"{}"
        return response


def test_every_request_carries_a_timeout():
    session = _RecordingSession()
    load_bundle(BASE, BUNDLE, session=session, timeout=7)
    assert session.timeouts == [7, 7, 7]


@responses.activate
def test_the_demo_directory_loads_with_dates_resolved():
    responses.post(BASE, json={"resourceType": "Bundle", "entry": []})
    results = load_directory(BASE, today=dt.date(2026, 6, 1))
    assert len(results) == len(loader.bundle_files()) >= 6
    bodies = [c.request.body.decode() if isinstance(c.request.body, bytes) else c.request.body for c in responses.calls]
    assert all("${T" not in b and "2026-" in b for b in bodies)


def test_an_empty_directory_is_an_error(tmp_path):
    with pytest.raises(LoadError, match="no \\*.json bundles"):
        load_directory(BASE, tmp_path)


def test_patient_ids_lists_one_patient_per_demo_bundle():
    ids = loader.patient_ids()
    assert ids[0] == "demo-1-pat" and len(ids) == len(loader.bundle_files())
