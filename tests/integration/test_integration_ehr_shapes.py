"""Records shaped as Epic and Oracle Health send them (tests/fixtures/ehr_shapes), stored in a real
sekmet-fhir and read by the live service in fetch mode, judged like the acceptance probe."""
from __future__ import annotations

import uuid

import pytest

from cds_judge import judge
from cds_service.demo import loader
from cds_service.demo.relative_dates import load_json
from hook_calls import call
from support import REPO, TODAY

pytestmark = pytest.mark.integration

SHAPES = REPO / "tests" / "fixtures" / "ehr_shapes"
# What a fixture needs from the fetch-mode gather that is not on this branch yet; the case is skipped
# (with this reason) until it is, so the skip is visible in every run's summary.
NOT_YET = {
    "medication-reference-fetch": "fetch mode does not yet read Medication resources named by medicationReference "
                                  "(_include / by-id reads, issue 10 HTTP half), nor DiagnosticReports and locally "
                                  "coded Observations (the Observation search is filtered by LOINC code)",
}


@pytest.fixture(scope="session")
def ehr_shapes_loaded(fhir_server: str) -> str:
    for directory in sorted(p for p in SHAPES.iterdir() if p.is_dir()):
        loader.load_bundle(fhir_server, load_json(directory / "bundle.json", TODAY), name=directory.name)
    return fhir_server


def _cases() -> list:
    params = []
    for directory in sorted(p for p in SHAPES.iterdir() if p.is_dir()):
        spec = load_json(directory / "cases.json", TODAY)
        missing = [NOT_YET[r] for r in spec.get("requires", []) if r in NOT_YET]
        for case in spec["cases"]:
            marks = [pytest.mark.skip(reason=missing[0])] if missing else []
            params.append(pytest.param(spec["patient"], case, marks=marks, id=f"{spec['id']}/{case['hook']}"))
    return params


@pytest.mark.parametrize(("patient", "case"), _cases())
def test_ehr_shaped_record_in_fetch_mode_gives_the_expected_cards(ehr_shapes_loaded, live_service, patient, case):
    service = live_service.service(case["hook"])
    context = {"userId": "Practitioner/it-user", "patientId": patient}
    if "draftOrders_bundle" in case:
        context["draftOrders"] = case["draftOrders_bundle"]
        context["selections"] = [f"MedicationRequest/{e['resource']['id']}" for e in case["draftOrders_bundle"]["entry"]
                                 if e["resource"]["resourceType"] == "MedicationRequest"]
    body = {"hook": case["hook"], "hookInstance": str(uuid.uuid4()), "fhirServer": ehr_shapes_loaded,
            "context": context}
    response = call(live_service.base, service, body)
    assert response.status_code == 200, response.text[:500]
    assert judge(response.json()["cards"], case["expect"]) == []
