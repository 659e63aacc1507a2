"""The page in open-server mode (auth off) against a `responses`-mocked FHIR server: it names what the
record lacked exactly as the card of the same call does."""
from __future__ import annotations

import re
import uuid

import pytest
import responses

from cds_service import create_app
from cds_service.relative_dates import load_json
from support import SANDBOX, TODAY, bundle_resources

FHIR = "http://fhir.test/fhir"


@pytest.fixture
def client():
    return create_app({"auth_mode": "off", "fhir_servers": FHIR, "feedback_db_url": "sqlite:///:memory:"}).test_client()


@pytest.fixture
def fhir_without_administrations():
    """demo-1's record, except that MedicationAdministration (an optional query) fails with 503."""
    resources = bundle_resources(load_json(SANDBOX / "patients" / "demo-1-2l-after-tch.json", TODAY))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        patient = next(r for r in resources if r["resourceType"] == "Patient")
        mock.get(f"{FHIR}/Patient/{patient['id']}", json=patient)
        mock.get(re.compile(re.escape(FHIR) + r"/MedicationAdministration\?.*"), status=503)
        for rtype in ("Condition", "Observation", "MedicationRequest", "MedicationStatement", "Medication"):
            mock.get(re.compile(re.escape(FHIR) + f"/{rtype}\\?.*"), json={
                "resourceType": "Bundle", "type": "searchset",
                "entry": [{"resource": r} for r in resources if r["resourceType"] == rtype]})
        yield mock


def test_page_names_what_the_record_lacked_like_the_card(client, fhir_without_administrations):
    page = client.get("/app", query_string={"iss": FHIR, "patient": "demo-1-pat"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    discovery = client.get("/cds-services").get_json()["services"]
    service = next(s for s in discovery if s["hook"] == "patient-view")
    cards = client.post(f"/cds-services/{service['id']}", json={
        "hook": "patient-view", "hookInstance": str(uuid.uuid4()), "fhirServer": FHIR,
        "context": {"patientId": "demo-1-pat", "userId": "Practitioner/u"}}).get_json()["cards"]
    gap_lines = [line[2:] for c in cards for line in c["detail"].splitlines()
                 if line.startswith("- ") and "(not available)" in line]
    assert gap_lines, "the card names the unreadable MedicationAdministrations"
    for line in gap_lines:   # the card may shorten a line to its length budget ("…"); the page has it whole
        assert line.replace("\\", "").rstrip("…") in html.replace("&#39;", "'")


def test_open_server_mode_refuses_a_server_not_allowed(client):
    with responses.RequestsMock() as nothing:
        response = client.get("/app", query_string={"iss": "http://other.test/fhir", "patient": "p1"})
        assert not nothing.calls
    assert response.status_code == 403


def test_an_unreachable_record_is_an_error_page_not_an_empty_page(client):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(re.compile(re.escape(FHIR) + r"/.*"), status=500)
        response = client.get("/app", query_string={"iss": FHIR, "patient": "p1"})
    assert response.status_code == 502
    assert "could not be read" in response.get_data(as_text=True)
