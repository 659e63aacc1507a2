"""An unidentifiable draft through the HTTP app (issue 10, never a silent empty answer): carded when a known
drug of its class would be, and in every case counted in the `hook.call` log line and the metrics."""
from __future__ import annotations

import sys

import pytest

from cds_service import create_app
from service_helpers import SIGN, SEARCH_KEYS, hook_body, log_events, searchset
from support import REPO

sys.path.insert(0, str(REPO / "tests" / "unit" / "mappings"))
from test_mappings_ehr_shapes import load  # noqa: E402  (the Epic-shaped HER2-positive second-line record)

TOKEN = "metrics-token"
TAXANE_BY_NAME = {"resourceType": "MedicationRequest", "id": "d-x", "status": "draft", "intent": "order",
                  "medicationCodeableConcept": {"text": "cabazitaxel 60 mg/1.5 mL injection"}}
LOCAL_CODE = {"resourceType": "MedicationRequest", "id": "d-x", "status": "draft", "intent": "order",
              "medicationCodeableConcept": {"coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.698288",
                                                        "code": "99123"}], "text": "XYZ-123 injection"}}


@pytest.fixture
def client(settings_overrides):
    return create_app({**settings_overrides, "metrics_token": TOKEN}).test_client()


def epic_prefetch() -> tuple[str, dict]:
    """The Epic-shaped record as a client that prefetched every key sends it (Medications `_include`d)."""
    record, spec = load("epic-her2-positive-second-line")

    def of(*types: str) -> dict:
        return searchset([r for r in record if r["resourceType"] in types])

    prefetch = {key: searchset([]) for key in SEARCH_KEYS}
    prefetch.update(patient=next(r for r in record if r["resourceType"] == "Patient"),
                    conditions=of("Condition"), observations=of("Observation"),
                    diagnosticReports=of("DiagnosticReport"), medicationRequests=of("MedicationRequest", "Medication"),
                    medicationAdministrations=of("MedicationAdministration", "Medication"))
    return spec["patient"], prefetch


@pytest.mark.parametrize("draft, topics", [
    (TAXANE_BY_NAME, ["her2-blockade-gap"]),     # as docetaxel or paclitaxel: a regimen without HER2 blockade
    (LOCAL_CODE, []),                            # no class to check it as: named and counted, no card of its own
], ids=["taxane-by-name-stem", "unrecognisable-local-code"])
def test_unidentified_draft_is_carded_or_counted_in_the_log_line_and_metrics(client, logs, draft, topics):
    patient, prefetch = epic_prefetch()
    response = client.post(f"/cds-services/{SIGN}", json=hook_body(
        "order-sign", patient=patient, fhir_server=None, prefetch=prefetch, drafts=[draft]))
    assert response.status_code == 200, response.get_json()
    cards = response.get_json()["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == topics
    assert all("not identified" in c["summary"] and "MedicationRequest/d-x" in c["detail"] for c in cards)
    (line,) = log_events(logs, "hook.call")
    assert line["record_issues"]["drafts_unread"] == 1 and line["gap_kinds"] == {"MedicationRequest": 1}
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True)
    assert 'her2cds_record_issues_total{kind="drafts_unread"} 1.0' in metrics
