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


def early_relapse(*metastatic_lines, met_days=30, tfi_months=5.6, early_days=(500, 200)):
    """Adjuvant TCH ending `early_days[1]` days ago, relapse within the treatment-free interval (S5)."""
    early = regimen(TCH, ago(early_days[0]), ago(early_days[1]), setting=m.Setting.ADJUVANT, progressed=False)
    history = therapy(early, *metastatic_lines, early_end=ago(early_days[1]), tfi_months=tfi_months)
    return summary(met_date=ago(met_days), therapy_history=history)


AFTER_TCH = after(regimen(TCH, ago(300), ago(30)))
AFTER_THP = after(regimen(THP, ago(300), ago(30)))
HP_ONGOING = after(regimen([m.RX_PERTUZUMAB, m.RX_TRASTUZUMAB], ago(300), None, ongoing=True, progressed=False))
THP_ONGOING = after(regimen(THP, ago(300), None, ongoing=True, progressed=False))
DE_NOVO = summary(met_date=ago(10))
PLAN_AT_PROGRESSION = cards.Policy(plan_at_progression_card=True)
NO_POST_SEED = cards.Policy(list_post_seed_regimens=False)
PER_TRAS_PACLITAXEL = {m.RX_PERTUZUMAB, m.RX_TRASTUZUMAB, m.RX_PACLITAXEL}

# The next-regimen card per rule: (what it specifies (rule ids as in the knowledge file), record, policy,
# recommended regimen (None: not checked), regimens listed first in this order, regimens also listed,
# regimens not listed, summary starts with, detail contains).
NEXT_REGIMEN = [
    ("S1 second line after trastuzumab + taxane recommends T-DXd", AFTER_TCH, None, {TDXD}, [], [], [], "", []),
    ("S2 T-DM1 is a second-line alternative", AFTER_TCH, None, None, [], [{TDM1}], [], "", []),
    ("S3 ILD history recommends T-DM1 and says why T-DXd is not offered",
     after(regimen(THP, ago(300), ago(30)), ild=True), None, {TDM1}, [], [], [], "", ["interstitial lung disease"]),
    ("S4 brain metastases at second line list T-DXd then the tucatinib triplet",
     after(regimen(THP, ago(300), ago(30)), sites=(site("brain", ago(20), cns=True),)), None, None,
     [{TDXD}, frozenset(TRIPLET)], [], [], "", []),
    ("S5 early relapse is treated as second line", early_relapse(), None, None, [], [], [], "2nd-line", ["S5"]),
    ("S5 + S9 early relapse then one metastatic line is third line",
     early_relapse(regimen([TDXD], ago(490), ago(30)), met_days=500, tfi_months=3.3, early_days=(900, 600)), None,
     frozenset(TRIPLET), [], [], [], "3rd-line", []),
    ("S6 de novo first line is THP with the paclitaxel variant and the DB-09 alternative", DE_NOVO, None,
     frozenset(THP), [], [PER_TRAS_PACLITAXEL, {TDXD, m.RX_PERTUZUMAB}], [], "", []),
    ("S6 later-evidence regimens are not listed when the policy says so", DE_NOVO, NO_POST_SEED, None, [], [],
     [{TDXD, m.RX_PERTUZUMAB}], "", ["not listed by configuration"]),
    ("S6 an endocrine-only metastatic line is not a HER2 line: still first line",
     after(regimen(["72965"], ago(300), ago(30))), None, frozenset(THP), [], [], [], "", []),
    ("S7 HR-positive adds a note and keeps the regimen", after(regimen(TCH, ago(300), ago(30)), er=POS), None, {TDXD},
     [], [], [], "", ["HR-positive:"]),
    ("S8 HR-negative adds a note", AFTER_TCH, None, None, [], [], [], "", ["HR-negative:"]),
    ("S9 third line without prior T-DXd recommends T-DXd, not T-DM1",
     after(regimen(THP, ago(700), ago(400)), regimen([TDM1], ago(390), ago(30))), None, {TDXD}, [], [], [{TDM1}], "",
     []),
    ("S9 fourth line after T-DXd and the triplet recommends T-DM1, not the triplet again",
     after(regimen(THP, ago(900), ago(700)), regimen([TDXD], ago(690), ago(330)), regimen(TRIPLET, ago(320), ago(30))),
     None, {TDM1}, [], [], [frozenset(TRIPLET)], "", []),
    ("S10 later lines list lapatinib and neratinib regimens and name margetuximab",
     after(regimen(THP, ago(900), ago(700)), regimen([TDXD], ago(690), ago(330)), regimen([TDM1], ago(320), ago(30))),
     None, None, [], [{m.RX_LAPATINIB, m.RX_CAPECITABINE}, {m.RX_NERATINIB, m.RX_CAPECITABINE},
                      {m.RX_LAPATINIB, m.RX_TRASTUZUMAB}], [], "", ["Margetuximab"]),
    ("S11 an ongoing line gets the plan at progression when the setting turns it on", THP_ONGOING,
     PLAN_AT_PROGRESSION, None, [], [], [], "Plan at progression (2nd line", ["plan at progression"]),
]


@pytest.mark.parametrize("spec, record, policy, recommended, leading, listed, not_listed, summary_start, detail_has",
                         NEXT_REGIMEN, ids=[c[0] for c in NEXT_REGIMEN])
def test_next_regimen_card(spec, record, policy, recommended, leading, listed, not_listed, summary_start, detail_has):
    out = run(record, policy=policy)
    c = card(out, "her2-next-regimen")
    sets = regimen_sets(out)
    if recommended is not None:
        assert recommended_set(out) == recommended
    assert sets[:len(leading)] == leading
    assert all(s in sets for s in listed) and not any(s in sets for s in not_listed)
    assert c["summary"].startswith(summary_start)
    assert all(text in c["detail"] for text in detail_has)


# Records on which a card must not appear: (what it specifies, record, hook, drafts, the topic that stays away).
NO_CARD = [
    ("W4 no ILD history: no ILD card for a T-DXd draft", AFTER_THP, "order-select", drafts(TDXD), "ild-pneumonitis"),
    ("S11 chemotherapy added to active HP maintenance keeps HER2 blockade", HP_ONGOING, "order-select",
     drafts(m.RX_DOCETAXEL), "her2-blockade-gap"),
    ("S12 a re-order of the ongoing HP line is not a new regimen", HP_ONGOING, "order-select",
     drafts(m.RX_PERTUZUMAB, m.RX_TRASTUZUMAB), "tdxd-not-offered"),
    ("S12 quiet with ILD history", after(regimen(THP, ago(300), ago(30)), ild=True), "order-select", drafts(*TRIPLET),
     "tdxd-not-offered"),
    ("S12 quiet after T-DXd was given", after(regimen(THP, ago(700), ago(400)), regimen([TDXD], ago(390), ago(30))),
     "order-select", drafts(*TRIPLET), "tdxd-not-offered"),
    ("S12 fires only for a selected draft (order-select selections)", AFTER_THP, "order-select",
     (draft(TDM1, selected=False),), "tdxd-not-offered"),
    ("contract v2 no next-regimen card while the current line is ongoing without progression", THP_ONGOING,
     "patient-view", (), "her2-next-regimen"),
    ("order hooks get checks only, no next-regimen card", AFTER_TCH, "order-select", drafts(TDXD), "her2-next-regimen"),
    ("no regimen card when HER2-negative", summary(her2=NEG), "patient-view", (), "her2-next-regimen"),
    ("no regimen card when not metastatic", summary(metastatic=False), "patient-view", (), "her2-next-regimen"),
    ("no regimen card without breast cancer", summary(breast=False), "patient-view", (), "her2-next-regimen"),
]


@pytest.mark.parametrize("spec, record, hook, ds, topic", NO_CARD, ids=[c[0] for c in NO_CARD])
def test_no_card(spec, record, hook, ds, topic):
    assert topic not in topics(run(record, hook, ds))


def test_no_breast_cancer_and_unknown_her2_gives_no_card_at_all():
    """The algorithm applies to HER2-positive metastatic breast cancer only; P1 needs breast cancer."""
    assert run(summary(breast=False, her2=m.ReceptorStatus.UNKNOWN)) == []





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




def test_s12_other_her2_regimen_at_second_line_warns_tdxd_not_offered():
    """safety_checks.tdxd-not-offered (S12)"""
    out = run(after(regimen(THP, ago(300), ago(30))), "order-select", drafts(TDM1))
    c = card(out, "tdxd-not-offered")
    assert c["overrideReasons"]
    created = {a["resource"]["medicationCodeableConcept"]["coding"][0]["code"]
               for s in c["suggestions"] for a in s["actions"] if a["type"] == "create"}
    assert created == {TDXD}





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




def test_wording_and_order_are_stable_for_the_same_input():
    """Stale-guidance replacement: same input -> same cards apart from uuids."""
    s = after(regimen(THP, ago(300), ago(30)), ild=True)

    def strip(cs):
        return [{k: v for k, v in c.items() if k != "uuid" and k != "suggestions"} for c in cs]
    a = run(s, "order-select", drafts(TDXD, m.RX_DOXORUBICIN))
    b = run(s, "order-select", drafts(TDXD, m.RX_DOXORUBICIN))
    assert strip(a) == strip(b)
    assert [c["indicator"] for c in a] == sorted((c["indicator"] for c in a), key=["critical", "warning", "info"].index)




def test_first_line_restart_recognises_a_pertuzumab_trastuzumab_combination_product():
    """safety_checks.first-line-restart (S5): a Phesgo-like draft maps to pertuzumab + trastuzumab in one order."""
    s = early_relapse()
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
