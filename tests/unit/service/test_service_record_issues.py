"""What the mapping could not read is said on the cards and counted in the `hook.call` log line (issue 10:
never a silent empty answer)."""
from __future__ import annotations

from service_helpers import PV, hook_body, log_events, searchset

PATIENT = "p-issues"


def _prefetch(*observations: dict, medications: tuple[dict, ...] = ()) -> dict:
    subject = {"reference": f"Patient/{PATIENT}"}
    breast = {"resourceType": "Condition", "id": "bc", "subject": subject, "onsetDateTime": "2025-01-10",
              "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C50.912"}],
                       "text": "Metastatic breast cancer"}}
    return {"patient": {"resourceType": "Patient", "id": PATIENT}, "conditions": searchset([breast]),
            "observations": searchset([{**o, "subject": subject} for o in observations]),
            "medicationRequests": searchset([{**m, "subject": subject} for m in medications]),
            "medicationStatements": searchset([]), "medicationAdministrations": searchset([])}


def test_unreadable_her2_and_medication_are_on_the_cards_and_in_the_log_line(client, logs):
    her2 = {"resourceType": "Observation", "id": "her2", "status": "final", "effectiveDateTime": "2025-01-05",
            "code": {"coding": [{"system": "http://loinc.org", "code": "48676-1"}]},
            "valueString": "see outside pathology report"}
    unresolved = {"resourceType": "MedicationRequest", "id": "mr1", "status": "completed", "intent": "order",
                  "authoredOn": "2025-03-01", "medicationReference": {"reference": "Medication/not-in-record"}}
    response = client.post(f"/cds-services/{PV}", json=hook_body(
        patient=PATIENT, fhir_server=None, prefetch=_prefetch(her2, medications=(unresolved,))))
    assert response.status_code == 200, response.get_json()
    cards = response.get_json()["cards"]
    assert cards, "an unreadable HER2 result must not become an empty answer"
    for card in cards:
        assert "Observation/her2" in card["detail"] and "MedicationRequest/mr1" in card["detail"]
    (line,) = log_events(logs, "hook.call")
    assert line["record_issues"]["unreadable"] >= 1 and line["record_issues"]["unmapped"] == 1
