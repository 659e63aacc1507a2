"""Every case of every shared scenario (S01-S16, whatever its "contract") run through the real pipeline,
for the tests that judge what every card looks like (citations, length, wording) rather than which
topics a case expects: those hold on every card the service can produce, contract-2 topics included."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from support import TODAY, load_scenario, scenario_dirs


def case_ids() -> list[tuple[str, int]]:
    return [(d.name, i) for d in scenario_dirs() for i in range(len(load_scenario(d)[1]["cases"]))]


@lru_cache(maxsize=None)
def _scenario(name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    directory = next(d for d in scenario_dirs() if d.name == name)
    return load_scenario(directory)


@lru_cache(maxsize=None)
def cards_of_case(name: str, index: int) -> tuple[dict[str, Any], ...]:
    """The cards `cds_service.pipeline.evaluate` returns for case `index` of scenario `name`."""
    from cds_service.gather import GatheredRecord
    from cds_service.pipeline import evaluate
    from cds_service.services import service_for_hook
    resources, spec = _scenario(name)
    case = spec["cases"][index]
    patient = case.get("patient", spec["patient"])
    ctx: dict[str, Any] = {"patientId": patient, "userId": "Practitioner/probe-user"}
    if case.get("draftOrders"):
        ctx["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                              "entry": [{"resource": r} for r in case["draftOrders"]]}
        if case["hook"] == "order-select":
            ctx["selections"] = [f"MedicationRequest/{r['id']}" for r in case["draftOrders"] if "id" in r]
    return tuple(evaluate(service_for_hook(case["hook"]), ctx, GatheredRecord(patient, tuple(resources)), today=TODAY).cards)
