"""Card contract v2, independent review (issue 16): the gaps found against contract/cards.md, one test each,
table-driven where the rule repeats."""
from __future__ import annotations

from dataclasses import replace

import pytest

from fhir_mappings import model as m

import cards
from cards.topics import DRAFT_ORDER_TOPICS
from cards_testkit import THP, ago, card, drafts, hf_fact, pregnant, regimen, site, summary, therapy, topics

K = cards.load_knowledge()
TDXD, TDM1 = m.RX_TDXD, m.RX_TDM1
LETROZOLE = "72965"


def run(s, hook="patient-view", ds=(), policy=cards.Policy()):
    return cards.build_cards(s, ds, hook, knowledge=K, policy=policy)


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
