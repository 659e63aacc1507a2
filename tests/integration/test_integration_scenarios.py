"""The shared clinical scenarios (../shared/scenarios) through the live service, both data paths,
judged like the acceptance probe. Skips cleanly when ../shared is absent."""
from __future__ import annotations

import pytest

from cds_judge import judge
from hook_calls import call, hook_body
from support import TODAY, load_scenario, require_shared, contract_scenario_dirs

pytestmark = pytest.mark.integration


def _cases() -> list[pytest.param]:
    params = []
    for directory in contract_scenario_dirs():
        _, spec = load_scenario(directory, TODAY)
        for case in spec["cases"]:
            for mode in ("fetch", "prefetch"):
                params.append(pytest.param(directory.name, spec["patient"], case, mode, id=f"{spec['id']}/{case['hook']}/{mode}/{case['name']}"))
    return params or [pytest.param(None, None, None, None, id="no-shared-scenarios")]


@pytest.mark.parametrize(("folder", "patient", "case", "mode"), _cases())
def test_scenario_expectations_hold(fhir_server, scenario_load_errors, live_service, folder, patient, case, mode):
    if case is None:
        require_shared()
        pytest.skip("no scenario folders in ../shared/scenarios")
    assert folder not in scenario_load_errors, scenario_load_errors.get(folder)
    service = live_service.service(case["hook"])
    response = call(live_service.base, service, hook_body(service, fhir_server, patient, case.get("draftOrders", []), mode))
    assert response.status_code == 200, response.text[:500]
    assert judge(response.json()["cards"], case["expect"]) == []
