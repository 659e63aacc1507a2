"""End to end through the real mapping: every expectation of ../shared/scenarios/*/cases.json holds
for `cds_service.pipeline.evaluate` (what the probe judges, minus HTTP)."""
from __future__ import annotations

import pytest

from cards_contract import problems
from cards_testkit import matches, suggestion_codes
from support import TODAY, load_scenario, require_shared, contract_scenario_dirs

RANK = {"info": 0, "warning": 1, "critical": 2}


def _cases():
    return [(d, i) for d in contract_scenario_dirs() for i in range(len(load_scenario(d)[1]["cases"]))]


@pytest.mark.parametrize("directory,index", _cases() or [pytest.param(None, 0, marks=pytest.mark.skip("no ../shared"))])
def test_scenario_case_meets_its_expectations(directory, index):
    require_shared()
    from cds_service.gather import GatheredRecord
    from cds_service.pipeline import evaluate
    from cds_service.services import service_for_hook
    resources, spec = load_scenario(directory)
    case = spec["cases"][index]
    patient = case.get("patient", spec["patient"])
    ctx = {"patientId": patient, "userId": "Practitioner/probe-user"}
    if case.get("draftOrders"):
        ctx["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                              "entry": [{"resource": r} for r in case["draftOrders"]]}
        if case["hook"] == "order-select":
            ctx["selections"] = [f"MedicationRequest/{r['id']}" for r in case["draftOrders"]]
    out = evaluate(service_for_hook(case["hook"]), ctx, GatheredRecord(patient, tuple(resources)), today=TODAY).cards
    assert problems(out, case["hook"], patient) == []
    t = {c["source"]["topic"]["code"]: c["indicator"] for c in out}
    e = case["expect"]
    for topic, lowest in e.get("topics_required", {}).items():
        assert topic in t and RANK[t[topic]] >= RANK[lowest], (topic, t)
    assert not set(e.get("topics_forbidden", [])) & set(t), t
    sugg = [s for c in out if c["source"]["topic"]["code"] == "her2-next-regimen" for s in c.get("suggestions", [])]
    recs = [suggestion_codes(s) for s in sugg if s.get("isRecommended") is True]
    if e.get("recommended"):
        assert recs and all(any(matches(r, x) for x in e["recommended"]) for r in recs), recs
    for x in e.get("alternatives_include", []):
        assert any(matches(suggestion_codes(s), x) for s in sugg), (x, [suggestion_codes(s) for s in sugg])
    for x in e.get("not_recommended", []):
        assert not any(matches(r, x) for r in recs), (x, recs)
    if e.get("no_regimen"):
        assert not sugg and not any(suggestion_codes(s) for c in out for s in c.get("suggestions", []))
