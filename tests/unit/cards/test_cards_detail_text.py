"""Cards a busy oncologist reads (issue 16): the detail of every card of every shared scenario (S01-S16,
contract-2 scenarios included whatever their topics are on this branch) stays within its length budget,
speaks clinician language (no internal rule ids or 'seed'/'project default' jargon outside the one
footer line), and lists under "Rules applied" only the rules that fired."""
from __future__ import annotations

import re

import pytest

from card_scenarios import case_ids, cards_of_case
from cards.detail import DETAIL_BUDGET, REGIMEN_DETAIL_BUDGET
from cards_testkit import TCH, ago, card, regimen, run, summary, therapy
from fhir_mappings import model as m


def after(*regimens):
    return summary(therapy_history=therapy(*regimens), lvef=[(60, ago(10))])


CASES = case_ids()
PARAMS = CASES or [pytest.param(None, 0, marks=pytest.mark.skip("no ../shared"))]
INTERNAL_ID = re.compile(r"\b[SWP]\d{1,2}\b|\bseed [A-Z]?\d|\bproject default\b|seed-12-months|nccn-6-or-12")


def _budget(card_json) -> int:
    return REGIMEN_DETAIL_BUDGET if card_json["source"]["topic"]["code"] == "her2-next-regimen" else DETAIL_BUDGET


@pytest.mark.parametrize("name,index", PARAMS)
def test_every_scenario_card_detail_fits_its_length_budget(name, index):
    over = [(c["source"]["topic"]["code"], len(c["detail"])) for c in cards_of_case(name, index)
            if len(c["detail"]) > _budget(c)]
    assert over == []


@pytest.mark.parametrize("name,index", PARAMS)
def test_every_scenario_card_detail_names_rule_ids_only_in_its_one_footer_line(name, index):
    for c in cards_of_case(name, index):
        *body, footer = c["detail"].split("\n")
        assert INTERNAL_ID.findall("\n".join(body)) == [], c["summary"]
        assert re.match(r"^\*Rule [SWP]\d{1,2}(, [SWP]\d{1,2})* · knowledge \d{4}\.\d+\.\d+ · ", footer), footer


def test_rules_applied_on_a_third_line_card_omit_the_do_not_bypass_t_dxd_rule_once_t_dxd_was_given():
    out = run(after(regimen(TCH, ago(700), ago(400)), regimen((m.RX_TDXD,), ago(380), ago(20))))
    detail = card(out, "her2-next-regimen")["detail"]
    applied = detail.split("**Rules applied**")[1].split("\n\n*")[0]
    assert "Do not bypass T-DXd" not in applied and "Third line" in applied


def test_rules_applied_on_a_second_line_card_omit_the_ild_rule_without_an_ild_history():
    detail = card(run(after(regimen(TCH, ago(300), ago(30)))), "her2-next-regimen")["detail"]
    applied = detail.split("**Rules applied**")[1]
    assert "interstitial lung disease" not in applied.lower() and "Second line: T-DXd" in applied
