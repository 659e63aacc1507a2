"""The demo patients (sandbox/) through the live service, in fetch and prefetch mode, judged by the
expectations in sandbox/cases/ (the same outcomes sandbox/patients/README.md promises)."""
from __future__ import annotations

import json

import pytest

from cds_judge import judge
from cds_service.relative_dates import load_json
from hook_calls import call, hook_body
from support import SANDBOX, TODAY

pytestmark = pytest.mark.integration
MODES = ("fetch", "prefetch")


def _cases() -> list[pytest.param]:
    params = []
    for path in sorted((SANDBOX / "cases").glob("*.json")):
        spec = json.loads(path.read_text(encoding="utf-8"))
        for case in spec["cases"]:
            for mode in MODES:
                params.append(pytest.param(spec["patient"], case, mode, id=f"{spec['id']}/{case['hook']}/{mode}/{case['name']}"))
    return params


def _drafts(case: dict) -> list[dict]:
    if "drafts" not in case:
        return []
    bundle = load_json(SANDBOX / case["drafts"], TODAY)
    return [e["resource"] for e in bundle["entry"]]


@pytest.mark.parametrize(("patient", "case", "mode"), _cases())
def test_demo_patient_cards_meet_the_readme(fhir_server, live_service, patient, case, mode):
    service = live_service.service(case["hook"])
    response = call(live_service.base, service, hook_body(service, fhir_server, patient, _drafts(case), mode))
    assert response.status_code == 200, response.text[:500]
    assert judge(response.json()["cards"], case["expect"]) == []
