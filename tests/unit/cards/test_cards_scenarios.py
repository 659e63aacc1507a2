"""Decisions for hand-built summaries equivalent to each shared scenario S01-S11 (../shared/scenarios).

Each test states the scenario's expectation from cases.json; the summaries are what the mapping
step should produce for that record.
"""
from __future__ import annotations

import pytest

from fhir_mappings import model as m

import cards
from cards_testkit import (NEG, POS, TCH, THP, TRIPLET, ago, drafts, matches, recommended_set, regimen, regimen_sets,
                           run, site, summary, therapy, topics)

TDXD, TDM1 = m.RX_TDXD, m.RX_TDM1


def s01():
    return summary(met_date=ago(425), sites=(site("liver", ago(425)),),
                   therapy_history=therapy(regimen(TCH, ago(410), ago(200))),
                   lvef=[(63, ago(415)), (60, ago(150)), (61, ago(50))])


def s02():
    neo = regimen(TCH, ago(500), ago(395), setting=m.Setting.NEOADJUVANT, progressed=False)
    adj = regimen([m.RX_TRASTUZUMAB], ago(331), ago(142), setting=m.Setting.ADJUVANT, progressed=False)
    return summary(met_date=ago(20), sites=(site("bone", ago(20)),),
                   therapy_history=therapy(neo, adj, early_end=ago(142), tfi_months=(142 - 20) / 30.44),
                   lvef=[(65, ago(505)), (62, ago(150))])


def s03():
    adj = regimen(TCH, ago(1280), ago(1200), setting=m.Setting.ADJUVANT, progressed=False)
    let = regimen(["72965"], ago(1170), ago(1000), setting=m.Setting.ADJUVANT)
    return summary(er=POS, met_date=ago(30), sites=(site("lung", ago(30)),),
                   therapy_history=therapy(adj, let, early_end=ago(1200), tfi_months=(1200 - 30) / 30.44),
                   lvef=[(64, ago(1290)), (62, ago(960)), (60, ago(28))])


def s04():
    return summary(met_date=ago(515), therapy_history=therapy(regimen(THP, ago(505), ago(100))), ild=True,
                   lvef=[(62, ago(510)), (58, ago(60))])


def s05():
    first = regimen((m.RX_PERTUZUMAB, m.RX_TRASTUZUMAB, m.RX_PACLITAXEL), ago(470), ago(28))
    return summary(er=POS, pr=POS, met_date=ago(475),
                   sites=(site("bone", ago(475)), site("brain", ago(30), cns=True)),
                   therapy_history=therapy(first), lvef=[(61, ago(45))])


def s06():
    return summary(met_date=ago(995), therapy_history=therapy(regimen(THP, ago(985), ago(420)),
                                                              regimen([TDXD], ago(410), ago(30))),
                   lvef=[(62, ago(990)), (59, ago(130)), (60, ago(40))])


def s07():
    return summary(met_date=ago(1095), therapy_history=therapy(
        regimen(THP, ago(1090), ago(700)), regimen([TDXD], ago(680), ago(330)),
        regimen(TRIPLET, ago(312), ago(60)), last_trastuzumab=ago(60)), lvef=[(57, ago(70))])


def s08():
    return summary(met_date=ago(30), sites=(site("bone", ago(30)), site("liver", ago(30))), lvef=[(64, ago(20))])


def s09():
    return summary(her2=m.ReceptorStatus.UNKNOWN, er=POS, pr=POS, met_date=ago(190), sites=(site("bone", ago(190)),),
                   therapy_history=therapy(regimen(["72965"], ago(180), ongoing=True, progressed=False)))


def s10():
    return summary(her2=NEG, er=POS, met_date=ago(60))


def s11():
    first = m.Regimen(
        exposures=(regimen([m.RX_DOCETAXEL], ago(410), ago(280), progressed=False).exposures
                   + regimen([m.RX_PERTUZUMAB, m.RX_TRASTUZUMAB], ago(410), ago(10), ongoing=True,
                             progressed=False).exposures),
        setting=m.Setting.METASTATIC, line=1, start=ago(410), end=None, ongoing=True, progressed=False)
    return summary(met_date=ago(418), sites=(site("bone", ago(418)),), therapy_history=therapy(first),
                   lvef=[(61, ago(415)), (58, ago(200))])


def test_s01_second_line_after_tch_recommends_tdxd_offers_tdm1():
    out = run(s01())
    assert topics(out)["her2-next-regimen"] == "info"
    assert recommended_set(out) == {TDXD}
    assert {TDM1} in regimen_sets(out)
    assert not matches(recommended_set(out), [m.RX_PERTUZUMAB, m.RX_TRASTUZUMAB, "TAXANE"])


def test_s02_early_relapse_is_second_line_tdxd():
    out = run(s02())
    assert recommended_set(out) == {TDXD}
    assert {TDM1} in regimen_sets(out)


def test_s03_late_relapse_restarts_thp_with_tdxd_pertuzumab_alternative():
    out = run(s03())
    assert matches(recommended_set(out), [m.RX_PERTUZUMAB, m.RX_TRASTUZUMAB, "TAXANE"])
    assert {TDXD, m.RX_PERTUZUMAB} in regimen_sets(out)


def test_s04_ild_recommends_tdm1_with_ild_warning():
    out = run(s04())
    assert recommended_set(out) == {TDM1}
    assert all(TDXD not in codes for codes in regimen_sets(out))
    assert topics(out)["ild-pneumonitis"] == "warning"


def test_s05_brain_mets_offers_tdxd_and_tucatinib_triplet():
    out = run(s05())
    assert recommended_set(out) in ({TDXD}, frozenset(TRIPLET))
    assert {TDXD} in regimen_sets(out) and frozenset(TRIPLET) in regimen_sets(out)


def test_s06_third_line_after_tdxd_recommends_tucatinib_triplet():
    out = run(s06())
    assert recommended_set(out) == frozenset(TRIPLET)
    assert {TDM1} in regimen_sets(out)
    assert "lvef-monitoring" not in topics(out)


def test_s08_de_novo_recommends_thp():
    assert matches(recommended_set(run(s08())), [m.RX_PERTUZUMAB, m.RX_TRASTUZUMAB, "TAXANE"])


def test_s09_missing_her2_says_so_and_proposes_nothing():
    out = run(s09())
    assert topics(out) == {"her2-status-unknown": "info"}
    assert not any(s for c in out for s in c.get("suggestions", []))


def test_s10_her2_negative_is_quiet():
    assert run(s10()) == []


def test_s11_maintenance_lvef_overdue_and_no_next_regimen_card():
    t = topics(run(s11()))
    assert t == {"lvef-monitoring": "info"}


def test_s11_plan_at_progression_card_is_a_setting():
    out = run(s11(), policy=cards.Policy(plan_at_progression_card=True))
    assert recommended_set(out) == {TDXD}
    regimen_card = next(c for c in out if c["source"]["topic"]["code"] == "her2-next-regimen")
    assert regimen_card["summary"].startswith("Plan at progression")


# The checks on order hooks, per scenario: (what it specifies, scenario, hook, drafts, the cards it gives with their
# indicator, topics that stay away).
ORDER_CHECKS = [
    ("S02 THP drafted within the treatment-free interval warns first-line restart, LVEF overdue", s02, "order-select",
     drafts(*THP), {"first-line-restart": "warning", "lvef-monitoring": "info"},
     {"anthracycline-her2-cardiotoxicity", "her2-blockade-gap"}),
    ("S03 THP drafted after a long treatment-free interval is quiet", s03, "order-select", drafts(*THP), {},
     {"first-line-restart", "tdxd-not-offered", "her2-blockade-gap", "anthracycline-her2-cardiotoxicity"}),
    ("S04 T-DXd drafted with ILD is critical, not tdxd-not-offered", s04, "order-select", drafts(TDXD),
     {"ild-pneumonitis": "critical"}, {"tdxd-not-offered"}),
    ("S05 the triplet drafted for brain metastases is exempt from tdxd-not-offered", s05, "order-select",
     drafts(*TRIPLET), {}, {"tdxd-not-offered"}),
    ("S07 doxorubicin 60 days after trastuzumab warns, no blockade gap", s07, "order-select", drafts(m.RX_DOXORUBICIN),
     {"anthracycline-her2-cardiotoxicity": "warning"}, {"her2-blockade-gap"}),
    ("S08 epirubicin signed with trastuzumab, no timing stated, warns", s08, "order-sign",
     drafts(m.RX_EPIRUBICIN, "3002", m.RX_TRASTUZUMAB), {"anthracycline-her2-cardiotoxicity": "warning"},
     {"first-line-restart", "tdxd-not-offered"}),
]


@pytest.mark.parametrize("spec, scenario, hook, ds, fired, absent", ORDER_CHECKS, ids=[c[0] for c in ORDER_CHECKS])
def test_order_checks(spec, scenario, hook, ds, fired, absent):
    t = topics(run(scenario(), hook, ds))
    assert {k: t.get(k) for k in fired} == fired
    assert not absent & set(t)


ALL = {"S01": s01, "S02": s02, "S03": s03, "S04": s04, "S05": s05, "S06": s06, "S07": s07, "S08": s08,
       "S09": s09, "S10": s10, "S11": s11}
