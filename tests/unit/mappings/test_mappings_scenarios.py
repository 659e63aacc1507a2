"""The summary of each shared scenario (../shared/scenarios S01-S11), field by field.

Dates are "days before today" because the scenario files use relative-date tokens.
Regimens: (setting, line, start, end or None, ongoing, progressed, ingredient codes).
"""
from __future__ import annotations

import pytest

from fhir_mappings import map_draft_orders, summarize
from fhir_mappings import model as m
from support import TODAY, ago, load_scenario, require_shared, scenario_dirs

P, N, U = m.ReceptorStatus.POSITIVE, m.ReceptorStatus.NEGATIVE, m.ReceptorStatus.UNKNOWN
MET, NEO, ADJ, EARLY = m.Setting.METASTATIC, m.Setting.NEOADJUVANT, m.Setting.ADJUVANT, m.Setting.EARLY
TRAS, PER, TDXD, TUC, CAPE = m.RX_TRASTUZUMAB, m.RX_PERTUZUMAB, m.RX_TDXD, m.RX_TUCATINIB, m.RX_CAPECITABINE
DOC, PAC, CARBO, LET, ANA = m.RX_DOCETAXEL, m.RX_PACLITAXEL, "40048", "72965", "84857"

EXPECTED = {
    "S01": dict(her2=(P, "interpretation"), er=N, pr=N, met=425, sites=["liver"], brain=False,
                regimens=[(MET, 1, 410, 62, False, True, {DOC, CARBO, TRAS})],
                lines=1, current_ongoing=False, her2_met={TRAS}, last_tras=62, tras_ongoing=False,
                her2_ongoing=False, early_end=None, tfi=None, ild=[], hf=[], lvef=[(63, 415), (60, 150), (61, 50)]),
    "S02": dict(her2=(P, "IHC"), er=N, pr=N, met=20, sites=["bone"], brain=False,
                regimens=[(NEO, None, 500, 395, False, False, {DOC, CARBO, TRAS}),
                          (ADJ, None, 331, 142, False, False, {TRAS})],
                lines=0, current_ongoing=False, her2_met=set(), last_tras=142, tras_ongoing=False,
                her2_ongoing=False, early_end=142, tfi=4.0, ild=[], hf=[], lvef=[(65, 505), (62, 150)]),
    "S03": dict(her2=(P, "interpretation"), er=P, pr=N, met=30, sites=["lung"], brain=False,
                regimens=[(EARLY, None, 1280, 30, False, True, {DOC, CARBO, TRAS, LET})],
                lines=0, current_ongoing=False, her2_met=set(), last_tras=944, tras_ongoing=False,
                her2_ongoing=False, early_end=944, tfi=30.0, ild=[], hf=[], lvef=[(64, 1290), (62, 960), (60, 28)]),
    "S04": dict(her2=(P, "interpretation"), er=N, pr=N, met=515, sites=["bone", "liver"], brain=False,
                regimens=[(MET, 1, 505, 35, False, True, {DOC, PER, TRAS})],
                lines=1, current_ongoing=False, her2_met={PER, TRAS}, last_tras=35, tras_ongoing=True,
                her2_ongoing=True, early_end=None, tfi=None, ild=[("J84.9", "active")], hf=[],
                lvef=[(62, 510), (58, 60)]),
    "S05": dict(her2=(P, "IHC"), er=P, pr=P, met=475, sites=["bone", "brain"], brain=True,
                regimens=[(MET, 1, 470, 28, False, True, {PAC, PER, TRAS, LET})],
                lines=1, current_ongoing=False, her2_met={PER, TRAS}, last_tras=28, tras_ongoing=True,
                her2_ongoing=True, early_end=None, tfi=None, ild=[], hf=[], lvef=[(61, 45)]),
    "S06": dict(her2=(P, "interpretation"), er=N, pr=N, met=995, sites=["bone", "liver"], brain=False,
                regimens=[(MET, 1, 985, 430, False, True, {DOC, PER, TRAS}),
                          (MET, 2, 410, 30, False, True, {TDXD})],
                lines=2, current_ongoing=False, her2_met={PER, TRAS, TDXD}, last_tras=430, tras_ongoing=False,
                her2_ongoing=True, early_end=None, tfi=None, ild=[], hf=[], lvef=[(62, 990), (59, 130), (60, 40)]),
    "S07": dict(her2=(P, "interpretation"), er=N, pr=N, met=1095, sites=["liver"], brain=False,
                regimens=[(MET, 1, 1090, 700, False, True, {DOC, PER, TRAS}),
                          (MET, 2, 680, 330, False, True, {TDXD}),
                          (MET, 3, 312, 60, False, True, {TUC, CAPE, TRAS})],
                lines=3, current_ongoing=False, her2_met={PER, TRAS, TDXD, TUC}, last_tras=60, tras_ongoing=False,
                her2_ongoing=False, early_end=None, tfi=None, ild=[], hf=[], lvef=[(57, 70)]),
    "S08": dict(her2=(P, "ISH"), er=N, pr=N, met=30, sites=["bone", "liver"], brain=False, regimens=[],
                lines=0, current_ongoing=False, her2_met=set(), last_tras=None, tras_ongoing=False,
                her2_ongoing=False, early_end=None, tfi=None, ild=[], hf=[], lvef=[(64, 20)]),
    "S09": dict(her2=(U, "none"), er=P, pr=P, met=190, sites=["bone"], brain=False,
                regimens=[(MET, 1, 180, None, True, False, {LET})],
                lines=1, current_ongoing=True, her2_met=set(), last_tras=None, tras_ongoing=False,
                her2_ongoing=False, early_end=None, tfi=None, ild=[], hf=[], lvef=[]),
    "S10": dict(her2=(N, "IHC"), er=P, pr=N, met=60, sites=["bone", "liver"], brain=False,
                regimens=[(EARLY, None, 380, 60, False, True, {ANA})],
                lines=0, current_ongoing=False, her2_met=set(), last_tras=None, tras_ongoing=False,
                her2_ongoing=False, early_end=None, tfi=None, ild=[], hf=[], lvef=[]),
    "S11": dict(her2=(P, "interpretation"), er=N, pr=N, met=418, sites=["bone"], brain=False,
                regimens=[(MET, 1, 410, None, True, False, {DOC, PER, TRAS})],
                lines=1, current_ongoing=True, her2_met={PER, TRAS}, last_tras=10, tras_ongoing=True,
                her2_ongoing=True, early_end=None, tfi=None, ild=[], hf=[], lvef=[(61, 415), (58, 200)]),
}


@pytest.fixture(scope="module")
def scenarios():
    require_shared()
    out = {}
    for directory in scenario_dirs():
        resources, cases = load_scenario(directory)
        out[directory.name[:3]] = (summarize(resources, cases["patient"], TODAY), cases)
    return out


@pytest.mark.parametrize("sid", sorted(EXPECTED))
def test_scenario_summary_field_by_field(scenarios, sid):
    s, _ = scenarios[sid]
    e = EXPECTED[sid]
    assert s.breast_cancer.present and s.breast_cancer.other_primaries == ()
    assert (s.her2.status, s.her2.method) == e["her2"] and s.her2.reason and not s.her2.conflict
    assert (s.er.status, s.pr.status) == (e["er"], e["pr"])
    assert s.metastatic.metastatic and s.metastatic.first_known == ago(e["met"])
    assert sorted({x.site for x in s.metastatic.sites}) == e["sites"] and s.metastatic.brain is e["brain"]
    got = [(r.setting, r.line, r.start, r.end, r.ongoing, r.progressed, set(r.rxnorm)) for r in s.therapy.regimens]
    want = [(st, ln, ago(a), ago(b), og, pg, codes) for st, ln, a, b, og, pg, codes in e["regimens"]]
    assert got == want
    t = s.therapy
    assert t.metastatic_lines == e["lines"] and t.current_line_ongoing is e["current_ongoing"]
    assert set(t.her2_agents_metastatic) == e["her2_met"]
    assert t.last_trastuzumab_dose == ago(e["last_tras"]) and t.trastuzumab_ongoing is e["tras_ongoing"]
    assert t.her2_therapy_ongoing is e["her2_ongoing"]
    assert t.early_her2_end == ago(e["early_end"]) and t.tfi_months == e["tfi"] and not t.early_her2_with_pertuzumab
    assert [(f.code, f.clinical_status) for f in s.ild] == e["ild"] and [f.code for f in s.heart_failure] == e["hf"]
    assert [(x.value, x.date) for x in s.lvef.measurements] == [(v, ago(d)) for v, d in e["lvef"]]
    assert s.unmapped == () and s.skipped == ()


@pytest.mark.parametrize("sid", sorted(EXPECTED))
def test_scenario_draft_orders_map_to_contract_ingredients(scenarios, sid):
    _, cases = scenarios[sid]
    for case in cases["cases"]:
        listed = case.get("draftOrders") or []
        if not listed:
            continue
        bundle = {"resourceType": "Bundle", "entry": [{"resource": r} for r in listed]}
        drafts, issues = map_draft_orders(bundle, [f"MedicationRequest/{r['id']}" for r in listed])
        assert issues == []
        assert [d.resource_id for d in drafts] == [f"MedicationRequest/{r['id']}" for r in listed]
        for d, r in zip(drafts, listed):
            assert d.selected and [x.rxnorm for x in d.drugs] == [r["medicationCodeableConcept"]["coding"][0]["code"]]


def test_scenario_records_map_identically_when_everything_arrives_twice(scenarios):
    require_shared()
    for directory in scenario_dirs():
        resources, cases = load_scenario(directory)
        once = summarize(resources, cases["patient"], TODAY)
        twice = summarize(resources + [dict(r) for r in resources], cases["patient"], TODAY)
        assert once == twice
