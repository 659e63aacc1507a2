"""One behaviour per rule of cards/knowledge/her2_mbc.yaml (ids S1-S13, W1-W4, P1 as in the clinical reference)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from fhir_mappings import model as m

import cards
from cards_testkit import (NEG, POS, TCH, THP, TRIPLET, ago, card, draft, drafts, receptor, recommended_set, regimen,
                           regimen_sets, run, site, summary, therapy, topics)

TDXD, TDM1 = m.RX_TDXD, m.RX_TDM1


def after(*regimens, **kw):
    return summary(therapy_history=therapy(*regimens), lvef=[(60, ago(10))], **kw)


def test_s1_second_line_after_trastuzumab_taxane_is_tdxd():
    """rules.S1 / line_plans.second-line"""
    assert recommended_set(run(after(regimen(TCH, ago(300), ago(30))))) == {TDXD}


def test_s2_tdm1_is_offered_as_second_line_alternative():
    """rules.S2 / line_plans.second-line"""
    assert {TDM1} in regimen_sets(run(after(regimen(TCH, ago(300), ago(30)))))


def test_s3_ild_history_prefers_tdm1_and_explains_why_tdxd_is_not_offered():
    """rules.S3 / regimens.tdxd.contraindicated_by"""
    out = run(after(regimen(THP, ago(300), ago(30)), ild=True))
    assert recommended_set(out) == {TDM1}
    assert "interstitial lung disease" in card(out, "her2-next-regimen")["detail"]


def test_s3_tdm1_draft_with_ild_is_a_warning_with_override_and_removal():
    """safety_checks.ild-tdm1 (S3)"""
    out = run(after(regimen(THP, ago(300), ago(30)), ild=True), "order-select", drafts(TDM1))
    c = card(out, "ild-pneumonitis")
    assert c["indicator"] == "warning" and c["overrideReasons"]
    assert c["suggestions"][0]["actions"] == [{"type": "delete", "description": c["suggestions"][0]["actions"][0]["description"],
                                               "resourceId": "MedicationRequest/p-draft-ado-trastuzu"}]


def test_w4_tdxd_draft_with_ild_is_critical_and_proposes_tdm1_instead():
    """safety_checks.ild-tdxd-draft (W4)"""
    out = run(after(regimen(THP, ago(300), ago(30)), ild=True), "order-select", drafts(TDXD))
    c = card(out, "ild-pneumonitis")
    assert c["indicator"] == "critical"
    kinds = [[a["type"] for a in s["actions"]] for s in c["suggestions"]]
    assert kinds == [["create", "delete"], ["delete"]]      # issue 10: the replacement is created first
    created = c["suggestions"][0]["actions"][0]["resource"]["medicationCodeableConcept"]["coding"][0]["code"]
    assert created == TDM1


def test_w4_no_ild_card_without_ild_history():
    """safety_checks.ild-tdxd-draft (W4): no ILD, no card."""
    assert "ild-pneumonitis" not in topics(run(after(regimen(THP, ago(300), ago(30))), "order-select", drafts(TDXD)))


def test_s4_brain_metastases_at_second_line_offer_tdxd_and_tucatinib_triplet():
    """rules.S4 / line_plans.second-line-brain"""
    s = after(regimen(THP, ago(300), ago(30)), sites=(site("brain", ago(20), cns=True),))
    sets = regimen_sets(run(s))
    assert sets[0] == {TDXD} and sets[1] == frozenset(TRIPLET)


def test_s5_early_relapse_card_says_treated_as_second_line():
    """rules.S5 / tfi_policies.seed-12-months"""
    early = regimen(TCH, ago(500), ago(200), setting=m.Setting.ADJUVANT, progressed=False)
    s = summary(met_date=ago(30), therapy_history=therapy(early, early_end=ago(200), tfi_months=5.6))
    c = card(run(s), "her2-next-regimen")
    assert c["summary"].startswith("2nd-line") and "S5" in c["detail"]


def test_s6_de_novo_first_line_is_thp_with_paclitaxel_variant_and_dbo9_alternative():
    """rules.S6 / line_plans.first-line / regimens.tdxd-pertuzumab (later-evidence)"""
    out = run(summary(met_date=ago(10)))
    assert recommended_set(out) == frozenset(THP)
    sets = regimen_sets(out)
    assert {m.RX_PERTUZUMAB, m.RX_TRASTUZUMAB, m.RX_PACLITAXEL} in sets and {TDXD, m.RX_PERTUZUMAB} in sets


def test_s6_later_evidence_regimens_are_dropped_when_policy_says_so():
    """Policy.list_post_seed_regimens=False: T-DXd + pertuzumab (DESTINY-Breast09) is not listed."""
    out = run(summary(met_date=ago(10)), policy=cards.Policy(list_post_seed_regimens=False))
    assert {TDXD, m.RX_PERTUZUMAB} not in regimen_sets(out)
    assert "not listed by configuration" in card(out, "her2-next-regimen")["detail"]


def test_s7_hr_positive_note_does_not_change_the_regimen():
    """rules.S7"""
    out = run(after(regimen(TCH, ago(300), ago(30)), er=POS))
    assert recommended_set(out) == {TDXD} and "HR-positive:" in card(out, "her2-next-regimen")["detail"]


def test_s8_hr_negative_note():
    """rules.S8"""
    assert "HR-negative:" in card(run(after(regimen(TCH, ago(300), ago(30)))), "her2-next-regimen")["detail"]


def test_s9_third_line_without_prior_tdxd_recommends_tdxd():
    """rules.S9 / S12 / line_plans.later-line"""
    out = run(after(regimen(THP, ago(700), ago(400)), regimen([TDM1], ago(390), ago(30))))
    assert recommended_set(out) == {TDXD}
    assert {TDM1} not in regimen_sets(out)


def test_s9_fourth_line_after_tdxd_and_tucatinib_recommends_tdm1():
    """rules.S9 / regimens.*.exclude_if_received"""
    out = run(after(regimen(THP, ago(900), ago(700)), regimen([TDXD], ago(690), ago(330)),
                    regimen(TRIPLET, ago(320), ago(30))))
    assert recommended_set(out) == {TDM1}
    assert frozenset(TRIPLET) not in regimen_sets(out)


def test_s10_later_lines_list_lapatinib_and_neratinib_and_name_margetuximab():
    """rules.S10"""
    out = run(after(regimen(THP, ago(900), ago(700)), regimen([TDXD], ago(690), ago(330)),
                    regimen([TDM1], ago(320), ago(30))))
    sets = regimen_sets(out)
    assert {m.RX_LAPATINIB, m.RX_CAPECITABINE} in sets and {m.RX_NERATINIB, m.RX_CAPECITABINE} in sets
    assert {m.RX_LAPATINIB, m.RX_TRASTUZUMAB} in sets
    assert "Margetuximab" in card(out, "her2-next-regimen")["detail"]


def test_s11_every_proposed_regimen_keeps_her2_blockade():
    """rules.S11: every suggestion contains a HER2-targeted agent."""
    her2 = {m.RX_TRASTUZUMAB, m.RX_PERTUZUMAB, TDM1, TDXD, m.RX_TUCATINIB, m.RX_LAPATINIB, m.RX_NERATINIB}
    out = run(after(regimen(THP, ago(900), ago(700)), regimen([TDXD], ago(690), ago(330)),
                    regimen(TRIPLET, ago(320), ago(30))))
    assert all(codes & her2 for codes in regimen_sets(out))


def test_s11_chemotherapy_alone_drafted_warns_her2_blockade_gap():
    """safety_checks.her2-blockade-gap (S11)"""
    out = run(after(regimen(THP, ago(300), ago(30))), "order-select", drafts(m.RX_CAPECITABINE))
    c = card(out, "her2-blockade-gap")
    assert c["indicator"] == "warning" and c["overrideReasons"]
    deletes = [a for s in c["suggestions"] for a in s["actions"] if a["type"] == "delete"]
    assert deletes and all(a["resourceId"].startswith("MedicationRequest/") for a in deletes)


def test_s11_no_blockade_gap_while_a_her2_order_is_active():
    """safety_checks.her2-blockade-gap (S11): chemotherapy added to active HP maintenance is fine."""
    s = after(regimen([m.RX_PERTUZUMAB, m.RX_TRASTUZUMAB], ago(300), None, ongoing=True, progressed=False))
    assert "her2-blockade-gap" not in topics(run(s, "order-select", drafts(m.RX_DOCETAXEL)))


@pytest.mark.parametrize("last_trastuzumab_days, topic", [
    (60, "anthracycline-her2-cardiotoxicity"),    # inside the washout: the anthracycline card covers the draft
    (600, "her2-blockade-gap"),                   # no anthracycline card: still a regimen without HER2 blockade
])
def test_s11_anthracycline_drafts_are_left_to_the_anthracycline_card_when_it_is_issued(last_trastuzumab_days, topic):
    """safety_checks.her2-blockade-gap: drafts with an anthracycline are left to the anthracycline card
    (contract: 'covered by the anthracycline card instead'), only when that card is issued."""
    s = after(regimen(THP, ago(900), ago(last_trastuzumab_days)))
    t = topics(run(s, "order-select", drafts(m.RX_DOXORUBICIN, "3002")))
    assert topic in t and len({"anthracycline-her2-cardiotoxicity", "her2-blockade-gap"} & set(t)) == 1


def test_no_next_regimen_card_while_current_line_ongoing_without_progression():
    """Contract v2: no repeated plan-ahead card on patient-view by default."""
    s = after(regimen(THP, ago(300), None, ongoing=True, progressed=False))
    assert "her2-next-regimen" not in topics(run(s))


def test_s11_plan_at_progression_card_when_the_setting_turns_it_on():
    """rules.S11 framing, Policy.plan_at_progression_card: ongoing line -> the plan at progression."""
    s = after(regimen(THP, ago(300), None, ongoing=True, progressed=False))
    c = card(run(s, policy=cards.Policy(plan_at_progression_card=True)), "her2-next-regimen")
    assert c["summary"].startswith("Plan at progression (2nd line") and "plan at progression" in c["detail"]


def test_s12_other_her2_regimen_at_second_line_warns_tdxd_not_offered():
    """safety_checks.tdxd-not-offered (S12)"""
    out = run(after(regimen(THP, ago(300), ago(30))), "order-select", drafts(TDM1))
    c = card(out, "tdxd-not-offered")
    assert c["overrideReasons"]
    created = {a["resource"]["medicationCodeableConcept"]["coding"][0]["code"]
               for s in c["suggestions"] for a in s["actions"] if a["type"] == "create"}
    assert created == {TDXD}


def test_s12_not_raised_for_a_reorder_of_the_ongoing_line():
    """safety_checks.tdxd-not-offered (S12): re-ordering ongoing HP maintenance is not a new later-line regimen."""
    s = after(regimen([m.RX_PERTUZUMAB, m.RX_TRASTUZUMAB], ago(300), None, ongoing=True, progressed=False))
    assert "tdxd-not-offered" not in topics(run(s, "order-select", drafts(m.RX_PERTUZUMAB, m.RX_TRASTUZUMAB)))


def test_s12_not_raised_with_ild_or_after_tdxd():
    """safety_checks.tdxd-not-offered (S12): contraindicated or already given -> quiet."""
    with_ild = after(regimen(THP, ago(300), ago(30)), ild=True)
    after_tdxd = after(regimen(THP, ago(700), ago(400)), regimen([TDXD], ago(390), ago(30)))
    for s in (with_ild, after_tdxd):
        assert "tdxd-not-offered" not in topics(run(s, "order-select", drafts(*TRIPLET)))


def test_s12_only_the_unselected_draft_does_not_fire():
    """Checks fire only when a draft they name is selected (order-select `selections`)."""
    s = after(regimen(THP, ago(300), ago(30)))
    assert "tdxd-not-offered" not in topics(run(s, "order-select", (draft(TDM1, selected=False),)))


def test_s13_investigational_agents_are_never_suggested_but_named():
    """rules.S13 / investigational"""
    out = run(after(regimen(THP, ago(300), ago(30))))
    c = card(out, "her2-next-regimen")
    assert "Pembrolizumab + trastuzumab" in c["detail"] and "duocarmazine" in c["detail"]
    assert all(not (codes & {"1547545"}) for codes in regimen_sets(out))


def test_w1_untimed_anthracycline_with_trastuzumab_warns_and_removes_the_anthracycline_draft():
    """safety_checks.anthracycline-untimed (W1): no stated timing -> warning asking to confirm."""
    out = run(summary(met_date=ago(10)), "order-sign", drafts(m.RX_EPIRUBICIN, m.RX_TRASTUZUMAB))
    c = card(out, "anthracycline-her2-cardiotoxicity")
    assert c["indicator"] == "warning" and c["overrideReasons"]
    assert [a["resourceId"] for a in c["suggestions"][0]["actions"]] == ["MedicationRequest/p-draft-epirubicin"]


def test_w1_applies_outside_metastatic_disease_too():
    """safety_checks.anthracycline-concurrent (W1) is a safety rule for every patient."""
    s = summary(metastatic=False, therapy_history=therapy(regimen(THP, ago(100), None, setting=m.Setting.ADJUVANT,
                                                                  ongoing=True, progressed=False)))
    assert topics(run(s, "order-select", drafts(m.RX_DOXORUBICIN)))["anthracycline-her2-cardiotoxicity"] == "critical"


def test_p1_missing_her2_names_the_missing_test_and_proposes_nothing():
    """safety_checks.her2-status-unknown (P1)"""
    out = run(summary(her2=m.ReceptorStatus.UNKNOWN))
    assert topics(out) == {"her2-status-unknown": "info"}
    assert "immunohistochemistry" in out[0]["detail"] and "suggestions" not in out[0]


def test_p1_equivocal_her2_asks_for_reflex_ish():
    """safety_checks.her2-status-unknown (P1): IHC 2+ needs ISH."""
    s = replace(summary(), her2=receptor(m.ReceptorStatus.EQUIVOCAL, method="IHC", detail="IHC 2+"))
    assert "ISH" in card(run(s), "her2-status-unknown")["detail"]


def test_not_her2_positive_not_metastatic_or_not_breast_cancer_stays_quiet():
    """The algorithm applies to HER2-positive metastatic breast cancer only."""
    for s in (summary(her2=NEG), summary(metastatic=False), summary(breast=False)):
        assert "her2-next-regimen" not in topics(run(s))
    assert run(summary(breast=False, her2=m.ReceptorStatus.UNKNOWN)) == []


def test_order_hooks_get_checks_only_no_regimen_card():
    """Design choice: the next-regimen card is a patient-view card."""
    s = after(regimen(TCH, ago(300), ago(30)))
    assert "her2-next-regimen" not in topics(run(s, "order-select", drafts(TDXD)))


def test_wording_and_order_are_stable_for_the_same_input():
    """Stale-guidance replacement: same input -> same cards apart from uuids."""
    s = after(regimen(THP, ago(300), ago(30)), ild=True)

    def strip(cs):
        return [{k: v for k, v in c.items() if k != "uuid" and k != "suggestions"} for c in cs]
    a = run(s, "order-select", drafts(TDXD, m.RX_DOXORUBICIN))
    b = run(s, "order-select", drafts(TDXD, m.RX_DOXORUBICIN))
    assert strip(a) == strip(b)
    assert [c["indicator"] for c in a] == sorted((c["indicator"] for c in a), key=["critical", "warning", "info"].index)


def test_endocrine_only_metastatic_line_does_not_count_as_a_her2_line():
    """line_plans: a letrozole-only metastatic line is not a line of HER2/chemotherapy -> still first line (S6)."""
    s = after(regimen(["72965"], ago(300), ago(30)))
    assert recommended_set(run(s)) == frozenset(THP)


def test_early_relapse_then_one_metastatic_line_is_third_line():
    """rules.S5 + S9: the early relapse counts as one line, so after one metastatic line the next is third line."""
    early = regimen(TCH, ago(900), ago(600), setting=m.Setting.ADJUVANT, progressed=False)
    s = summary(met_date=ago(500), therapy_history=therapy(early, regimen([TDXD], ago(490), ago(30)),
                                                            early_end=ago(600), tfi_months=3.3))
    c = card(run(s), "her2-next-regimen")
    assert c["summary"].startswith("3rd-line") and recommended_set([c]) == frozenset(TRIPLET)


def test_first_line_restart_recognises_a_pertuzumab_trastuzumab_combination_product():
    """safety_checks.first-line-restart (S5): a Phesgo-like draft maps to pertuzumab + trastuzumab in one order."""
    early = regimen(TCH, ago(500), ago(200), setting=m.Setting.ADJUVANT, progressed=False)
    s = summary(met_date=ago(30), therapy_history=therapy(early, early_end=ago(200), tfi_months=5.6))
    combo = m.DraftOrder("MedicationRequest/p-draft-phesgo", (draft(m.RX_PERTUZUMAB).drugs[0],
                                                            draft(m.RX_TRASTUZUMAB).drugs[0]), "Phesgo")
    out = run(s, "order-select", (combo, draft(m.RX_DOCETAXEL)))
    assert topics(out)["first-line-restart"] == "warning" and "tdxd-not-offered" not in topics(out)


def test_a_draft_without_a_usable_id_gets_no_delete_action():
    """Delete actions need a relative `MedicationRequest/<id>`; otherwise only the safer alternative is offered."""
    bad = replace(draft(TDXD), resource_id="urn:uuid:1234")
    out = run(after(regimen(THP, ago(300), ago(30)), ild=True), "order-select", (bad,))
    c = card(out, "ild-pneumonitis")
    assert all(a["type"] == "create" for s in c["suggestions"] for a in s["actions"])
