"""The judge used by the integration tests reads expectations exactly as the scenarios README says."""
from __future__ import annotations

import pytest

from cds_judge import judge

RX = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _card(topic, indicator="info", suggestions=()):
    return {"indicator": indicator, "source": {"label": "t", "topic": {"system": "x", "code": topic}},
            "suggestions": list(suggestions)}


def _suggestion(codes, recommended=False):
    return {"isRecommended": recommended, "actions": [
        {"type": "create", "resource": {"resourceType": "MedicationRequest",
                                        "medicationCodeableConcept": {"coding": [{"system": RX, "code": c}]}}} for c in codes]}


THP = _suggestion(["1298944", "224905", "72962"])
REGIMEN = _card("her2-next-regimen", suggestions=[_suggestion(["2267574"], True), _suggestion(["1371041"]), THP])


@pytest.mark.parametrize(("cards", "expect", "passes"), [
    ([REGIMEN], {"topics_required": {"her2-next-regimen": "info"}}, True),
    ([REGIMEN], {"topics_required": {"her2-next-regimen": "warning"}}, False),
    ([REGIMEN], {"topics_forbidden": ["her2-next-regimen"]}, False),
    ([REGIMEN], {"recommended": [["2267574"]]}, True),
    ([REGIMEN], {"recommended": [["1371041"]]}, False),
    ([REGIMEN], {"alternatives_include": [["1371041"], ["1298944", "224905", "TAXANE"]]}, True),
    ([REGIMEN], {"alternatives_include": [["2361285", "224905", "194000"]]}, False),
    ([REGIMEN], {"not_recommended": [["1298944", "224905", "TAXANE"]]}, True),
    ([REGIMEN], {"no_regimen": True}, False),
    ([_card("her2-status-unknown")], {"no_regimen": True}, True),
    ([_card("anthracycline-her2-cardiotoxicity", "critical")], {"topics_required": {"anthracycline-her2-cardiotoxicity": "warning"}}, True),
])
def test_judge_applies_each_expectation_key(cards, expect, passes):
    assert (judge(cards, expect) == []) is passes


def test_taxane_token_stands_for_docetaxel_or_paclitaxel_but_only_one_of_them():
    pac = _card("her2-next-regimen", suggestions=[_suggestion(["1298944", "224905", "56946"], True)])
    both = _card("her2-next-regimen", suggestions=[_suggestion(["1298944", "224905", "56946", "72962"], True)])
    assert judge([pac], {"recommended": [["1298944", "224905", "TAXANE"]]}) == []
    assert judge([both], {"recommended": [["1298944", "224905", "TAXANE"]]}) != []


def test_drugs_outside_the_contract_table_do_not_count():
    with_letrozole = _card("her2-next-regimen", suggestions=[_suggestion(["2267574", "72965"], True)])
    assert judge([with_letrozole], {"recommended": [["2267574"]]}) == []
