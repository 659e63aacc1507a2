"""The knowledge corrections of the clinical review (issue 16) stay corrected: one behaviour each."""
from __future__ import annotations

import re

import pytest

import cards

K = cards.load_knowledge()


def _doses(drug_id: str) -> list[str]:
    return [c.dose for r in K.regimens.values() for c in r.components if c.drug.id == drug_id]


@pytest.mark.parametrize("drug_id,loading", [("trastuzumab", "8 mg/kg"), ("pertuzumab", "840 mg")])
def test_loading_dose_is_printed_only_as_conditional_on_a_new_start_or_missed_dose(drug_id, loading):
    doses = _doses(drug_id)
    assert doses and all(loading in d and "only when starting" in d and "missed" in d for d in doses)


def test_neratinib_dose_text_carries_the_labels_antidiarrhoeal_prophylaxis_or_dose_escalation():
    (dose,) = _doses("neratinib")
    assert "loperamide" in dose and "56 days" in dose and "dose escalation" in dose and "120 mg" in dose


def test_destiny_breast03_hazard_ratio_is_never_paired_with_the_updated_medians():
    text = K.regimens["tdxd"].evidence
    assert not re.search(r"28\.8 vs 6\.8 months[^.;]*HR 0\.28", text)
    assert "HR 0.28" in text and "not reached" in text and "HR 0.33" in text and "OS HR 0.64" in text


def test_tdxd_ild_rule_calls_the_label_a_boxed_warning_and_the_block_a_policy():
    w4 = K.rules["W4"]
    assert "boxed warning" in w4.recommendation and "policy" in w4.recommendation
    assert "not a contraindication" in w4.strength or "does not list ILD as a contraindication" in w4.recommendation


def test_the_27_percent_figure_is_cited_to_slamon_2001_and_the_washout_to_the_trastuzumab_label():
    assert "slamon-2001" in {c.id for c in K.rules["W1"].citations}
    assert K.rules["W2"].primary_citation.id == "trastuzumab-washout"
    assert "not verified" not in K.rules["W2"].strength
