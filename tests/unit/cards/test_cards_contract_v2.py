"""Card contract v2 (issue 16): one behaviour per test, table-driven where the rule repeats."""
from __future__ import annotations

from dataclasses import replace

import pytest

from fhir_mappings import model as m

from cards_testkit import (NEG, POS, THP, TRIPLET, ago, card, draft, drafts, exposure, her2_result, hf_fact, pregnant,
                           recommended_set, regimen, regimen_sets, run, site, summary, therapy, timed, topics)

TDXD, TDM1 = m.RX_TDXD, m.RX_TDM1
CYCLO = "3002"


def early_stage(**kw):
    return summary(metastatic=False, lvef=[(63, ago(12))], **kw)


def ac_thp(anth=(7, 63), tras=(70, 427)):
    a = [timed(draft(m.RX_DOXORUBICIN), *anth), timed(draft(CYCLO), *anth)]
    t = [timed(draft(rx), *tras) for rx in (m.RX_PACLITAXEL, m.RX_TRASTUZUMAB, m.RX_PERTUZUMAB)]
    return tuple(a + t)


# --- anthracycline: draft timing ----------------------------------------------------------------------

@pytest.mark.parametrize("anth, tras, expected", [
    ((7, 63), (70, 427), None),                 # AC weeks 0-8, THP from week 9: sequential
    ((7, 63), (30, 427), "critical"),           # stated overlap
    ((None, None), (None, None), "warning"),    # no timing: confirm the order
    ((7, None), (70, 427), "warning"),          # anthracycline end not stated: runs on
    ((7, 63), (None, None), "warning"),         # trastuzumab start not stated: starts now
])
def test_anthracycline_card_follows_the_drafts_timing(anth, tras, expected):
    t = topics(run(early_stage(), "order-select", ac_thp(anth, tras)))
    assert t.get("anthracycline-her2-cardiotoxicity") == expected


def test_sequential_plan_asks_for_an_lvef_before_the_first_trastuzumab_dose():
    c = card(run(early_stage(), "order-select", ac_thp()), "lvef-monitoring")
    assert c["indicator"] == "info" and "before the first trastuzumab" in c["summary"]


def test_sequential_plan_with_trastuzumab_still_ongoing_is_critical():
    s = early_stage(therapy_history=therapy(regimen([m.RX_TRASTUZUMAB], ago(100), None, ongoing=True,
                                                    progressed=False, setting=m.Setting.ADJUVANT)))
    assert topics(run(s, "order-select", ac_thp()))["anthracycline-her2-cardiotoxicity"] == "critical"


def test_anthracycline_with_an_adc_draft_warns():
    out = run(summary(met_date=ago(30)), "order-select", drafts(m.RX_DOXORUBICIN, TDM1))
    assert topics(out)["anthracycline-her2-cardiotoxicity"] == "warning"


def test_anthracycline_remove_suggestion_removes_the_whole_ac_regimen_each_draft_named():
    c = card(run(early_stage(), "order-select", ac_thp((None, None), (None, None))), "anthracycline-her2-cardiotoxicity")
    (s,) = c["suggestions"]
    assert [a["resourceId"] for a in s["actions"]] == ["MedicationRequest/p-draft-doxorubicin",
                                                       "MedicationRequest/p-draft-cyclophospha"]
    assert "doxorubicin" in s["label"] and "cyclophosphamide" in s["label"]


def test_a_stopped_trastuzumab_order_is_not_called_an_active_order():
    stopped = replace(exposure(m.RX_TRASTUZUMAB, ago(200), ago(20)), status="stopped")
    tras = m.Regimen((stopped,), m.Setting.METASTATIC, 1, ago(200), ago(20), False, True)
    c = card(run(summary(therapy_history=therapy(tras)), "order-select", drafts(m.RX_DOXORUBICIN)),
             "anthracycline-her2-cardiotoxicity")
    assert c["indicator"] == "critical" and "active order" not in c["detail"] and "20 days ago" in c["detail"]


# --- pregnancy ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("weeks, drafted, expected", [
    (20, THP, "critical"),                          # HER2-targeted agents: boxed embryo-fetal toxicity
    (20, (m.RX_CAPECITABINE,), "critical"),
    (20, (m.RX_PACLITAXEL,), "warning"),            # taxane from the second trimester
    (10, (m.RX_PACLITAXEL,), "critical"),           # taxane before 14 weeks
    (None, (m.RX_DOXORUBICIN,), "critical"),        # gestational age unknown: treated as early
])
def test_pregnancy_card_indicator_follows_the_drug_and_gestational_age(weeks, drafted, expected):
    out = run(summary(met_date=ago(20), pregnancy=pregnant(weeks)), "order-select", drafts(*drafted))
    assert topics(out)["pregnancy"] == expected


def test_pregnancy_replaces_the_next_regimen_card_on_patient_view():
    t = topics(run(summary(met_date=ago(20), pregnancy=pregnant(20))))
    assert t.get("pregnancy") == "warning" and "her2-next-regimen" not in t


def test_pregnancy_with_ongoing_trastuzumab_is_critical_on_patient_view():
    s = summary(pregnancy=pregnant(16), therapy_history=therapy(
        regimen([m.RX_PERTUZUMAB, m.RX_TRASTUZUMAB], ago(300), None, ongoing=True, progressed=False)))
    assert topics(run(s))["pregnancy"] == "critical"


def test_pregnancy_without_a_drug_or_decision_due_gives_no_card():
    assert "pregnancy" not in topics(run(early_stage(pregnancy=pregnant(20))))


def test_pregnancy_card_mentions_her2_antibody_exposure_before_conception():
    s = summary(met_date=ago(20), pregnancy=pregnant(10), therapy_history=therapy(
        regimen([m.RX_TRASTUZUMAB], ago(300), ago(150), setting=m.Setting.ADJUVANT, progressed=False)))
    assert "before the pregnancy onset" in card(run(s), "pregnancy")["detail"]


# --- heart failure ------------------------------------------------------------------------------------

@pytest.mark.parametrize("lvef, drafted, expected", [
    ([(45, ago(20))], (TDXD,), "warning"),
    ([(35, ago(20))], (TDXD,), "critical"),
    ([(55, ago(20))], (m.RX_DOXORUBICIN,), "warning"),
    ([(48, ago(20))], (m.RX_DOXORUBICIN,), "critical"),   # anthracycline: critical below 50%
    ([], (m.RX_EPIRUBICIN,), "critical"),                 # anthracycline: LVEF unknown
])
def test_heart_failure_card_on_order_hooks(lvef, drafted, expected):
    s = summary(heart_failure=(hf_fact(),), lvef=lvef)
    assert topics(run(s, "order-select", drafts(*drafted)))["heart-failure"] == expected


def test_resolved_heart_failure_gives_no_card():
    s = summary(heart_failure=(hf_fact("resolved"),), lvef=[(60, ago(20))])
    assert "heart-failure" not in topics(run(s, "order-select", drafts(TDXD)))


@pytest.mark.parametrize("hf, lvef, indicator, named", [
    (True, 45, "warning", "Heart failure, LVEF 45%"),
    (True, 60, "warning", "Heart failure"),
    (False, 45, "warning", "LVEF 45%"),
    (False, 35, "critical", "LVEF 35%"),
])
def test_next_regimen_card_names_the_cardiac_problem(hf, lvef, indicator, named):
    s = summary(heart_failure=(hf_fact(),) if hf else (), lvef=[(lvef, ago(20))],
                therapy_history=therapy(regimen(THP, ago(400), ago(30))))
    out = run(s)
    c = card(out, "her2-next-regimen")
    assert c["indicator"] == indicator and c["summary"].startswith(named) and "heart-failure" not in topics(out)


# --- HER2 status ----------------------------------------------------------------------------------------

def discordant(**kw):
    hist = (her2_result(POS, 700, "IHC 3+", "Observation/p-her2-primary"),
            her2_result(NEG, 30, "IHC 1+", "Observation/p-her2-liver"))
    return summary(her2=NEG, her2_history=hist, **kw)


def test_her2_positive_then_negative_is_discordant_and_proposes_no_regimen():
    out = run(discordant())
    assert topics(out) == {"her2-status-discordant": "warning"}
    detail = out[0]["detail"]
    assert "p-her2-primary" in detail and "p-her2-liver" in detail and "re-biopsy" in detail


def test_her2_negative_then_positive_is_simply_positive():
    hist = (her2_result(NEG, 700, "IHC 1+", "Observation/a"), her2_result(POS, 30, "IHC 3+", "Observation/b"))
    t = topics(run(summary(her2=POS, her2_history=hist)))
    assert "her2-status-discordant" not in t and "her2-next-regimen" in t


def test_her2_loss_in_residual_disease_after_neoadjuvant_therapy_is_not_discordance():
    neo = regimen(THP, ago(400), ago(250), setting=m.Setting.NEOADJUVANT, progressed=False)
    hist = (her2_result(POS, 420, "IHC 3+", "Observation/a"), her2_result(NEG, 240, "IHC 1+", "Observation/b"))
    t = topics(run(summary(her2=NEG, her2_history=hist, met_date=ago(20), therapy_history=therapy(neo))))
    assert "her2-status-discordant" not in t and "her2-next-regimen" in t


@pytest.mark.parametrize("metastatic, her2, drafted, expected", [
    (True, m.ReceptorStatus.UNKNOWN, (), True),
    (False, m.ReceptorStatus.UNKNOWN, (), False),            # early stage, no decision due: no card
    (False, m.ReceptorStatus.UNKNOWN, (m.RX_TRASTUZUMAB,), True),
    (True, NEG, (m.RX_TRASTUZUMAB,), True),                  # HER2-targeted draft, no positive result
    (False, POS, (m.RX_TRASTUZUMAB,), False),
])
def test_her2_status_unknown_only_for_metastatic_disease_or_a_her2_draft(metastatic, her2, drafted, expected):
    hook = "order-select" if drafted else "patient-view"
    s = summary(metastatic=metastatic, her2=her2)
    assert ("her2-status-unknown" in topics(run(s, hook, drafts(*drafted)))) is expected


# --- ILD follows the drug ----------------------------------------------------------------------------------

def test_ild_recorded_while_tdxd_is_ongoing_is_critical_on_patient_view():
    on_tdxd = therapy(regimen(THP, ago(600), ago(400)), regimen([TDXD], ago(380), None, ongoing=True, progressed=False))
    s = summary(therapy_history=on_tdxd, lvef=[(60, ago(20))],
                ild=(m.ConditionFact("ild", "J70.4", "http://hl7.org/fhir/sid/icd-10-cm", "Drug-induced ILD", ago(10),
                                     "active", "Condition/p-ild"),))
    assert topics(run(s))["ild-pneumonitis"] == "critical"


def test_ild_history_before_ongoing_tdm1_warns_on_patient_view():
    on_tdm1 = therapy(regimen(THP, ago(600), ago(400)), regimen([TDM1], ago(200), None, ongoing=True, progressed=False))
    s = summary(therapy_history=on_tdm1, lvef=[(60, ago(20))], ild=True)
    assert topics(run(s))["ild-pneumonitis"] == "warning"


# --- LVEF: baseline and the labels' withhold zones -----------------------------------------------------------

def test_lvef_baseline_is_the_last_value_before_the_current_her2_therapy():
    s = summary(therapy_history=therapy(regimen(THP, ago(300), None, ongoing=True, progressed=False)),
                lvef=[(70, ago(900)), (55, ago(310)), (48, ago(20))])
    c = card(run(s), "lvef-monitoring")
    assert "55%" in c["detail"] and "fell" not in c["detail"]     # 7 points from 55, not 22 from 70


BASELINE_CASES = {
    "one before the start": ([(70, 900), (55, 310), (48, 20)], 300, (55, "the last LVEF before")),
    "one on the start day": ([(70, 900), (55, 300), (48, 20)], 300, (55, "the last LVEF before")),
    "two on the start day: the later in the series": ([(70, 300), (55, 300), (48, 20)], 300, (55, "the last LVEF before")),
    "none before the start": ([(55, 200), (48, 20)], 300, (55, "the earliest LVEF on record: none before")),
    "all before the start": ([(70, 900), (55, 400)], 300, (55, "the last LVEF before")),
    "no HER2 therapy": ([(70, 900), (55, 400)], None, (70, "the earliest LVEF on record")),
}


@pytest.mark.parametrize("lvef, start_ago, expected", BASELINE_CASES.values(), ids=BASELINE_CASES.keys())
def test_lvef_baseline_is_the_last_measurement_up_to_the_start_else_the_earliest(lvef, start_ago, expected):
    from cards.clinical_picture import lvef_baseline
    s = summary(lvef=[(v, ago(days)) for v, days in lvef])
    baseline, label = lvef_baseline(s, None if start_ago is None else ago(start_ago))
    assert (baseline.value, label[:len(expected[1])]) == expected


@pytest.mark.parametrize("rxs, lvef, expected", [
    ([m.RX_TRASTUZUMAB], [(62, ago(310)), (46, ago(20))], "critical"),                  # trastuzumab: fall 16
    ([m.RX_PERTUZUMAB, m.RX_TRASTUZUMAB], [(55, ago(310)), (44, ago(20))], "critical"),  # pertuzumab: 40-45, fall 11
    ([m.RX_TRASTUZUMAB], [(62, ago(310)), (50, ago(20))], "warning"),                   # fall 12: drop warning only
])
def test_lvef_in_a_label_withhold_zone_is_critical(rxs, lvef, expected):
    s = summary(therapy_history=therapy(regimen(rxs, ago(300), None, ongoing=True, progressed=False)), lvef=lvef)
    assert topics(run(s))["lvef-monitoring"] == expected


# --- documented progression, plan-ahead card ----------------------------------------------------------------

def ongoing_line(**kw):
    """First line THP ongoing since 410 days, bone metastasis at diagnosis; `kw` overrides or adds to it."""
    return summary(**{"met_date": ago(420), "sites": (site("bone", ago(418)),), "lvef": [(60, ago(20))],
                      "therapy_history": therapy(regimen(THP, ago(410), None, ongoing=True, progressed=False)), **kw})


@pytest.mark.parametrize("extra, due", [
    ({}, False),
    ({"sites": (site("bone", ago(418)), site("liver", ago(15)))}, True),          # new metastatic site
    ({"progression_dates": ((ago(10), "Observation/p-status"),)}, True),          # disease-status Observation
])
def test_next_regimen_card_is_due_only_with_documented_progression(extra, due):
    assert ("her2-next-regimen" in topics(run(ongoing_line(**extra)))) is due


# --- decision corrections ------------------------------------------------------------------------------------

def test_after_first_line_tdxd_pertuzumab_the_tucatinib_triplet_leads_and_tdm1_is_offered():
    out = run(summary(therapy_history=therapy(regimen([TDXD, m.RX_PERTUZUMAB], ago(500), ago(20)))))
    assert recommended_set(out) == frozenset(TRIPLET)
    sets = regimen_sets(out)
    assert {TDM1} in sets and {m.RX_LAPATINIB, m.RX_TRASTUZUMAB} in sets and {m.RX_TRASTUZUMAB, "39541"} in sets


def test_late_lines_never_repeat_the_chemotherapy_or_tki_partner_of_a_failed_regimen():
    out = run(summary(therapy_history=therapy(regimen(THP, ago(900), ago(700)), regimen([TDXD], ago(690), ago(330)),
                                              regimen(TRIPLET, ago(320), ago(30)))))
    sets = regimen_sets(out)
    assert not any(m.RX_CAPECITABINE in s or m.RX_TUCATINIB in s for s in sets)
    assert {m.RX_LAPATINIB, m.RX_TRASTUZUMAB} in sets      # the trastuzumab backbone is exempt


def test_hr_positive_disease_names_endocrine_options_where_the_seed_lists_them():
    out = run(summary(er=POS, therapy_history=therapy(regimen(THP, ago(400), ago(30)))))
    detail = card(out, "her2-next-regimen")["detail"]
    assert "Endocrine therapy + trastuzumab" in detail and "Endocrine therapy + lapatinib" in detail


def test_hr_negative_disease_lists_no_endocrine_option():
    detail = card(run(summary(therapy_history=therapy(regimen(THP, ago(400), ago(30))))), "her2-next-regimen")["detail"]
    assert "Endocrine therapy +" not in detail


def early_relapse(tfi):
    adj = regimen([m.RX_TRASTUZUMAB], ago(400), ago(30 + tfi * 30.44), setting=m.Setting.ADJUVANT, progressed=False)
    return summary(met_date=ago(30), therapy_history=therapy(adj, early_end=ago(30 + tfi * 30.44), tfi_months=tfi))


@pytest.mark.parametrize("tfi, tdxd_note", [(8, True), (4, False)])
def test_label_versus_guideline_note_for_tdxd_at_a_6_to_12_month_interval(tfi, tdxd_note):
    detail = card(run(early_relapse(tfi)), "her2-next-regimen")["detail"]
    assert (f"at {tfi:.1f} months this choice is guideline-based" in detail) is tdxd_note
    assert "guideline-based, outside the label wording" in detail     # the tucatinib triplet note, either way


def test_tdxd_not_offered_offers_an_unavailable_override_reason_only_on_that_card():
    out = run(summary(therapy_history=therapy(regimen(THP, ago(400), ago(30)))), "order-select", drafts(TDM1))
    reasons = {c["source"]["topic"]["code"]: {r["code"] for r in c.get("overrideReasons", [])} for c in out}
    assert "tdxd-unavailable" in reasons["tdxd-not-offered"]
    assert all("tdxd-unavailable" not in v for k, v in reasons.items() if k != "tdxd-not-offered")


def test_replace_suggestions_create_before_they_delete():
    out = run(summary(therapy_history=therapy(regimen(THP, ago(400), ago(30)))), "order-select", drafts(TDM1))
    for s in card(out, "tdxd-not-offered")["suggestions"]:
        kinds = [a["type"] for a in s["actions"]]
        assert kinds == sorted(kinds, key=lambda k: k != "create")
