"""Card contract v2, independent review (issue 16): the gaps found against docs/card-contract.md, one test each,
table-driven where the rule repeats."""
from __future__ import annotations

from dataclasses import replace

import pytest

from fhir_mappings import model as m

import cards
from card_scenarios import case_ids, cards_of_case
from cards.topics import DRAFT_ORDER_TOPICS
from cards_testkit import (THP, ago, card, drafts, hf_fact, pregnant, recommended_set, regimen, run, site, summary,
                           therapy, topics)

SCENARIO_PARAMS = case_ids() or [pytest.param(None, 0, marks=pytest.mark.skip("no ../shared"))]
TDXD, TDM1 = m.RX_TDXD, m.RX_TDM1
LETROZOLE = "72965"


def ild_fact(onset_days: int) -> m.ConditionFact:
    return m.ConditionFact("ild", "J70.4", "http://hl7.org/fhir/sid/icd-10-cm", "Drug-induced interstitial lung disorder",
                           ago(onset_days), "active", "Condition/p-ild")


def on_tdxd_with_ild():
    return summary(therapy_history=therapy(regimen(THP, ago(600), ago(400)),
                                           regimen([TDXD], ago(380), None, ongoing=True, progressed=False)),
                   lvef=[(60, ago(20))], ild=(ild_fact(10),))


def pregnant_on_trastuzumab():
    return summary(pregnancy=pregnant(16), lvef=[(60, ago(20))], therapy_history=therapy(
        regimen([m.RX_PERTUZUMAB, m.RX_TRASTUZUMAB], ago(300), None, ongoing=True, progressed=False)))


# --- "A card that warns about a draft order carries overrideReasons" -----------------------------------------
# On an order hook a card of a draft-order topic interrupts ordering even when what it warns about is therapy
# already being given (the probe's DRAFT_WARNING_TOPICS rule).

@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
@pytest.mark.parametrize("make, drafted, topic", [
    (on_tdxd_with_ild, (m.RX_CAPECITABINE,), "ild-pneumonitis"),     # ILD while T-DXd is ongoing, unrelated draft
    (pregnant_on_trastuzumab, (LETROZOLE,), "pregnancy"),             # pregnancy with ongoing trastuzumab
])
def test_order_hook_card_about_ongoing_therapy_carries_override_reasons(make, drafted, topic, hook):
    c = card(run(make(), hook, drafts(*drafted)), topic)
    assert c["indicator"] in ("warning", "critical")
    assert c["overrideReasons"] and all(r["display"] for r in c["overrideReasons"])


def test_patient_view_cards_carry_no_override_reasons():
    out = run(on_tdxd_with_ild()) + run(pregnant_on_trastuzumab())
    assert {"ild-pneumonitis", "pregnancy"} <= {c["source"]["topic"]["code"] for c in out}
    assert not any("overrideReasons" in c for c in out)


ORDER_CASES = [
    (on_tdxd_with_ild, (m.RX_CAPECITABINE,)),
    (on_tdxd_with_ild, (TDXD,)),
    (pregnant_on_trastuzumab, (LETROZOLE,)),
    (pregnant_on_trastuzumab, (m.RX_PACLITAXEL,)),
    (lambda: summary(heart_failure=(hf_fact(),), lvef=[(45, ago(20))]), (TDXD, m.RX_DOXORUBICIN)),
    (lambda: summary(therapy_history=therapy(regimen(THP, ago(400), ago(30)))), (m.RX_CAPECITABINE,)),
    (lambda: summary(therapy_history=therapy(regimen(THP, ago(400), ago(30)))), (TDM1,)),
]


@pytest.mark.parametrize("make, drafted", ORDER_CASES)
def test_every_warning_of_a_draft_order_topic_on_order_hooks_has_override_reasons(make, drafted):
    for hook in ("order-select", "order-sign"):
        for c in run(make(), hook, drafts(*drafted)):
            if c["source"]["topic"]["code"] in DRAFT_ORDER_TOPICS and c["indicator"] != "info":
                assert c.get("overrideReasons"), (hook, c["source"]["topic"]["code"])


# --- her2-status-unknown: "conflicting on the same date" -------------------------------------------------------

def test_her2_results_conflicting_on_one_date_give_her2_status_unknown_and_no_regimen():
    her2 = m.ReceptorResult(m.ReceptorStatus.UNKNOWN, ago(30), "interpretation", "",
                            "HER2 results on the same date disagree (HER2 positive (Observation/a); HER2 negative "
                            "(Observation/b)) on 2026-11-01: HER2 status cannot be determined", True,
                            ("Observation/a", "Observation/b"))
    out = run(replace(summary(), her2=her2))
    assert topics(out) == {"her2-status-unknown": "info"}
    assert "conflict" in out[0]["detail"] and "Observation/b" in out[0]["detail"]


# --- documented progression: "a new metastatic-site Condition recorded after the line started" --------------

@pytest.mark.parametrize("site_days, due", [
    (418, False),     # known before the line started (day 410 before today)
    (410, False),     # dated the day the line started
    (409, True),      # the day after: recorded after the line started (no grace period in the contract)
    (400, True),      # 10 days into the line
    (15, True),
])
def test_a_metastatic_site_recorded_after_the_line_started_is_documented_progression(site_days, due):
    s = summary(met_date=ago(420), sites=(site("bone", ago(420)), site("liver", ago(site_days))), lvef=[(60, ago(20))],
                therapy_history=therapy(regimen(THP, ago(410), None, ongoing=True, progressed=False)))
    assert ("her2-next-regimen" in topics(run(s))) is due


# --- her2-status-discordant: "names both results with their dates and specimens" --------------------------------

def test_discordant_card_names_both_specimens():
    hist = (m.Her2Result(m.ReceptorStatus.POSITIVE, ago(700), "IHC 3+", "Observation/p-her2-primary", "Core biopsy, right breast"),
            m.Her2Result(m.ReceptorStatus.NEGATIVE, ago(30), "IHC 1+", "Observation/p-her2-liver", ""))
    detail = card(run(summary(her2=m.ReceptorStatus.NEGATIVE, her2_history=hist)), "her2-status-discordant")["detail"]
    assert "specimen: Core biopsy, right breast" in detail and "specimen not named in the record" in detail
    assert ago(700).isoformat() in detail and ago(30).isoformat() in detail


# --- no regimen proposed where the regimen list does not apply ------------------------------------------------
# "It is not issued when HER2 status is unknown or discordant, or during pregnancy": nor may a safety card
# propose a regimen (a `create` suggestion) for such a record.

def _discordant(**kw):
    hist = (m.Her2Result(m.ReceptorStatus.POSITIVE, ago(700), "IHC 3+", "Observation/a"),
            m.Her2Result(m.ReceptorStatus.NEGATIVE, ago(30), "IHC 1+", "Observation/b"))
    return summary(her2=m.ReceptorStatus.NEGATIVE, her2_history=hist, **kw)


AFTER_THP = therapy(regimen(THP, ago(400), ago(30)))
NO_REGIMEN_RECORDS = {
    "her2 unknown": lambda **kw: summary(her2=m.ReceptorStatus.UNKNOWN, **kw),
    "her2 equivocal": lambda **kw: summary(her2=m.ReceptorStatus.EQUIVOCAL, **kw),
    "her2 discordant": _discordant,
    "pregnant": lambda **kw: summary(pregnancy=pregnant(20), **kw),
}


def _creates(out) -> list[str]:
    return [c["source"]["topic"]["code"] for c in out for s in c.get("suggestions", [])
            for a in s["actions"] if a["type"] == "create"]


@pytest.mark.parametrize("record", NO_REGIMEN_RECORDS)
@pytest.mark.parametrize("plan_at_progression", [False, True])
def test_no_next_regimen_card_where_the_regimen_list_does_not_apply(record, plan_at_progression):
    s = NO_REGIMEN_RECORDS[record](therapy_history=AFTER_THP, lvef=[(60, ago(20))])
    out = run(s, policy=cards.Policy(plan_at_progression_card=plan_at_progression))
    assert "her2-next-regimen" not in topics(out) and _creates(out) == []


@pytest.mark.parametrize("record", NO_REGIMEN_RECORDS)
@pytest.mark.parametrize("drafted, ild", [((TDM1,), False), ((TDXD,), True), ((m.RX_CAPECITABINE,), False)])
def test_order_hook_cards_propose_no_regimen_where_the_regimen_list_does_not_apply(record, drafted, ild):
    s = NO_REGIMEN_RECORDS[record](therapy_history=AFTER_THP, lvef=[(60, ago(20))], ild=ild)
    assert _creates(run(s, "order-select", drafts(*drafted))) == []


def test_tdxd_not_offered_is_not_raised_during_pregnancy():
    s = summary(therapy_history=AFTER_THP, lvef=[(60, ago(20))], pregnancy=pregnant(20))
    t = topics(run(s, "order-select", drafts(TDM1)))
    assert "tdxd-not-offered" not in t and t["pregnancy"] == "critical"


def test_ild_card_still_offers_tdm1_for_a_tdxd_draft_where_the_regimen_list_applies():
    s = summary(therapy_history=AFTER_THP, lvef=[(60, ago(20))], ild=True)
    assert _creates(run(s, "order-select", drafts(TDXD))) == ["ild-pneumonitis"]


# --- first-line-restart follows the configured treatment-free-interval policy -------------------------------------
# Contract: "recurred within 12 months of adjuvant trastuzumab" (the seed / ASCO default). With the NCCN policy
# selected (6 months, 12 if pertuzumab-containing; clinical reference §5 item 1) the card follows the same
# threshold as the next-regimen card, so the two never contradict each other.

def relapse_after_adjuvant(tfi: float, with_pertuzumab: bool):
    rxs = [m.RX_PERTUZUMAB, m.RX_TRASTUZUMAB] if with_pertuzumab else [m.RX_TRASTUZUMAB]
    end = ago(30 + tfi * 30.44)
    adj = regimen(rxs, ago(400 + tfi * 30.44), end, setting=m.Setting.ADJUVANT, progressed=False)
    return summary(met_date=ago(30), lvef=[(60, ago(20))],
                   therapy_history=therapy(adj, early_end=end, tfi_months=tfi, early_pertuzumab=with_pertuzumab))


@pytest.mark.parametrize("policy, tfi, with_pertuzumab, fires", [
    ("seed-12-months", 8, False, True),
    ("seed-12-months", 11.5, True, True),
    ("seed-12-months", 14, False, False),
    ("nccn-6-or-12-months", 4, False, True),
    ("nccn-6-or-12-months", 8, False, False),      # beyond 6 months without pertuzumab: first line is right
    ("nccn-6-or-12-months", 8, True, True),        # pertuzumab-containing: 12 months
    ("nccn-6-or-12-months", 14, True, False),
])
def test_first_line_restart_follows_the_configured_tfi_policy(policy, tfi, with_pertuzumab, fires):
    s, pol = relapse_after_adjuvant(tfi, with_pertuzumab), cards.Policy(tfi_policy=policy)
    t = topics(run(s, "order-select", drafts(*THP), policy=pol))
    assert ("first-line-restart" in t) is fires
    first_line = set(THP) == set(recommended_set(run(s, policy=pol)))
    assert first_line is not fires          # the next-regimen card agrees: THP only beyond the threshold


# --- pregnancy: "mentions HER2-antibody exposure in the 7 months before conception when the record shows it" ---

@pytest.mark.parametrize("start, end, ongoing, expected", [
    (300, 150, False, "days before the pregnancy onset"),   # ended 80 days before the onset (10 weeks ago)
    (300, None, True, "exposure during the pregnancy"),     # an active order runs up to today, not from its start
    (300, 40, False, "exposure during the pregnancy"),      # last dose after the onset
    (900, 600, False, None),                                 # more than 7 months before: not mentioned
])
def test_pregnancy_card_dates_her2_antibody_exposure_from_the_last_dose(start, end, ongoing, expected):
    tras = regimen([m.RX_TRASTUZUMAB], ago(start), ago(end) if end else None, ongoing=ongoing, progressed=False,
                   setting=m.Setting.ADJUVANT if not ongoing else m.Setting.METASTATIC)
    s = summary(met_date=ago(20), pregnancy=pregnant(10), lvef=[(60, ago(20))], therapy_history=therapy(tras))
    detail = card(run(s), "pregnancy")["detail"]
    if expected is None:
        assert "exposure" not in detail
    else:
        assert expected in detail
        assert not (expected == "exposure during the pregnancy" and "days before the pregnancy onset" in detail)


# --- LVEF baseline: "the last LVEF before the current HER2-directed therapy began" ------------------------------

@pytest.mark.parametrize("lvef, label", [
    ([(66, ago(320)), (52, ago(20))], "last LVEF before the current HER2-directed therapy"),
    ([(66, ago(250)), (52, ago(20))], "earliest LVEF on record: none before the current HER2-directed therapy"),
])
def test_lvef_card_says_what_its_baseline_is(lvef, label):
    s = summary(therapy_history=therapy(regimen(THP, ago(300), None, ongoing=True, progressed=False)), lvef=lvef)
    c = card(run(s), "lvef-monitoring")
    assert "fell 14 points" in c["detail"] and label in c["detail"]


@pytest.mark.parametrize("value, indicator", [(49, "warning"), (50, "info"), (39, "critical"), (40, "warning")])
def test_next_regimen_card_cardiac_thresholds(value, indicator):
    s = summary(lvef=[(value, ago(20))], therapy_history=therapy(regimen(THP, ago(400), ago(30))))
    assert topics(run(s))["her2-next-regimen"] == indicator


# --- "The detail shows the basis: the facts used (HER2/HR status with dates, metastatic sites, ...)" ------------
# Facts are left out to keep the length budget; the HER2 status, the metastatic sites and the line of therapy
# never are.

@pytest.mark.parametrize("name,index", SCENARIO_PARAMS)
def test_scenario_next_regimen_card_keeps_her2_sites_and_line_within_its_budget(name, index):
    for c in cards_of_case(name, index):
        if c["source"]["topic"]["code"] != "her2-next-regimen":
            continue
        detail = c["detail"]
        assert len(detail) <= 3000 and "shortened" not in detail
        for row in ("| HER2 |", "| Metastatic sites |", "| Next line of therapy |"):
            assert row in detail, row


def test_metastatic_sites_are_one_dated_row():
    s = summary(sites=(site("bone", ago(400)), site("brain", ago(20), cns=True)),
                therapy_history=therapy(regimen(THP, ago(390), ago(30))), lvef=[(60, ago(20))])
    detail = card(run(s), "her2-next-regimen")["detail"]
    assert f"| Metastatic sites | bone {ago(400).isoformat()}; brain (CNS) {ago(20).isoformat()} |" in detail


# --- heart-failure: "an active heart-failure diagnosis (not refuted, not entered-in-error, not resolved)" --------

@pytest.mark.parametrize("status, card_expected", [
    ("active", True), ("recurrence", True), ("inactive", True), ("remission", True), ("", True), ("resolved", False),
])
def test_heart_failure_counts_unless_resolved(status, card_expected):
    s = summary(heart_failure=(hf_fact(status),), lvef=[(55, ago(20))])
    assert ("heart-failure" in topics(run(s, "order-select", drafts(TDXD)))) is card_expected


def test_cardiomyopathy_alone_is_shown_but_is_not_a_heart_failure_diagnosis():
    cm = m.ConditionFact("cardiomyopathy", "I42.9", "http://hl7.org/fhir/sid/icd-10-cm", "Cardiomyopathy, unspecified",
                         ago(300), "active", "Condition/p-cm")
    out = run(summary(heart_failure=(cm,), lvef=[(55, ago(20))]), "order-select", drafts(TDXD))
    assert "heart-failure" not in topics(out)


# --- her2-status-discordant: "Residual disease after neoadjuvant HER2-directed therapy does not count" ----------

@pytest.mark.parametrize("specimen_days, adjuvant, discordant", [
    (240, False, False),    # 10 days after the last neoadjuvant dose: the surgical specimen
    (215, True, False),     # 35 days after it, before adjuvant trastuzumab began: still the surgical specimen
    (215, False, True),     # 35 days after it and no adjuvant regimen to bound the surgery: a later specimen
    (30, True, True),       # a metastatic biopsy long after
])
def test_her2_loss_in_the_surgical_specimen_after_neoadjuvant_therapy_is_not_discordance(specimen_days, adjuvant,
                                                                                          discordant):
    regimens = [regimen(THP, ago(400), ago(250), setting=m.Setting.NEOADJUVANT, progressed=False)]
    if adjuvant:
        regimens.append(regimen([m.RX_TRASTUZUMAB], ago(200), ago(60), setting=m.Setting.ADJUVANT, progressed=False))
    hist = (m.Her2Result(m.ReceptorStatus.POSITIVE, ago(420), "IHC 3+", "Observation/core"),
            m.Her2Result(m.ReceptorStatus.NEGATIVE, ago(specimen_days), "IHC 1+", "Observation/later"))
    s = summary(her2=m.ReceptorStatus.NEGATIVE, her2_history=hist, met_date=ago(20), lvef=[(60, ago(20))],
                therapy_history=therapy(*regimens))
    t = topics(run(s))
    assert ("her2-status-discordant" in t) is discordant and ("her2-next-regimen" in t) is not discordant
