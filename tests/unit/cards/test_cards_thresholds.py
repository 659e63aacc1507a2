"""Threshold edges, each naming the knowledge entry (cards/knowledge/her2_mbc.yaml) it covers."""
from __future__ import annotations

import pytest
from fhir_mappings import model as m

import cards
from cards_testkit import TCH, THP, ago, drafts, months_ago, recommended_set, regimen, run, summary, therapy, topics


# --- safety_checks: anthracycline-washout (W2, washout_days 213 = 7 months) and anthracycline-concurrent (W1)

def after_trastuzumab(last_dose):
    return summary(therapy_history=therapy(regimen(THP, ago(900), last_dose), last_trastuzumab=last_dose),
                   lvef=[(60, ago(20))])


@pytest.mark.parametrize("months,expected", [(6.9, "warning"), (7.1, None)])
def test_anthracycline_washout_edge_6_9_vs_7_1_months(months, expected):
    """safety_checks.anthracycline-washout (W2): 6.9 months after the last trastuzumab dose warns, 7.1 does not."""
    t = topics(run(after_trastuzumab(months_ago(months)), "order-select", drafts(m.RX_DOXORUBICIN)))
    assert t.get("anthracycline-her2-cardiotoxicity") == expected


@pytest.mark.parametrize("days,expected", [(42, "critical"), (43, "warning")])
def test_anthracycline_dose_within_6_weeks_counts_as_concurrent(days, expected):
    """safety_checks.anthracycline-concurrent (W1, ongoing_window_days 42): a dose in the last 6 weeks is ongoing therapy."""
    t = topics(run(after_trastuzumab(ago(days)), "order-select", drafts(m.RX_EPIRUBICIN)))
    assert t["anthracycline-her2-cardiotoxicity"] == expected


def test_anthracycline_with_active_trastuzumab_order_is_critical():
    """safety_checks.anthracycline-concurrent (W1): an active trastuzumab order is concurrent therapy."""
    s = summary(therapy_history=therapy(regimen(THP, ago(200), None, ongoing=True, progressed=False)))
    assert topics(run(s, "order-select", drafts(m.RX_DOXORUBICIN)))["anthracycline-her2-cardiotoxicity"] == "critical"


def test_anthracycline_after_adc_only_is_not_a_washout_warning():
    """safety_checks.anthracycline-washout (W2): T-DM1/T-DXd doses are not unconjugated trastuzumab."""
    s = summary(therapy_history=therapy(regimen([m.RX_TDXD], ago(300), ago(60))))
    assert "anthracycline-her2-cardiotoxicity" not in topics(run(s, "order-select", drafts(m.RX_DOXORUBICIN)))


# --- tfi_policies: seed-12-months (default) and nccn-6-or-12-months (S5/S6)

def relapse_after(tfi, pertuzumab=False):
    early = regimen(THP if pertuzumab else TCH, ago(800), ago(400), setting=m.Setting.ADJUVANT, progressed=False)
    return summary(met_date=ago(20), therapy_history=therapy(early, early_end=ago(400), early_pertuzumab=pertuzumab,
                                                              tfi_months=tfi), lvef=[(60, ago(10))])


FIRST_LINE = frozenset(THP)
NCCN = cards.Policy(tfi_policy="nccn-6-or-12-months")


@pytest.mark.parametrize("tfi,policy,pertuzumab,second_line", [
    (11.9, cards.Policy(), False, True),    # seed: <= 12 months -> 2L
    (12.1, cards.Policy(), False, False),   # seed: > 12 months -> 1L
    (11.9, cards.Policy(), True, True),
    (12.1, cards.Policy(), True, False),
    (11.9, NCCN, True, True),               # NCCN: 12 months when the early regimen had pertuzumab
    (12.1, NCCN, True, False),
    (11.9, NCCN, False, False),             # NCCN: 6 months without pertuzumab
    (5.9, NCCN, False, True),
    (6.1, NCCN, False, False),
])
def test_tfi_threshold_edges_under_both_policies(tfi, policy, pertuzumab, second_line):
    """tfi_policies (S5/S6): relapse at or below the threshold is second line (T-DXd), above it first line (THP)."""
    rec = recommended_set(run(relapse_after(tfi, pertuzumab), policy=policy))
    assert rec == ({m.RX_TDXD} if second_line else FIRST_LINE)


@pytest.mark.parametrize("tfi,fires", [(11.9, True), (12.1, False)])
def test_first_line_restart_edge_11_9_vs_12_1_months(tfi, fires):
    """safety_checks.first-line-restart (S5): THP drafted at 11.9 months warns, at 12.1 months does not."""
    t = topics(run(relapse_after(tfi), "order-select", drafts(*THP)))
    assert ("first-line-restart" in t) is fires


# --- safety_checks: lvef-below-50, lvef-below-40, lvef-drop, lvef-overdue (W3)

def on_her2(*lvef):
    return summary(therapy_history=therapy(regimen(THP, ago(300), None, ongoing=True, progressed=False)), lvef=lvef)


@pytest.mark.parametrize("value,expected", [(49, "warning"), (50, None), (39, "critical"), (40, "warning")])
def test_lvef_value_edges_49_50_39_40(value, expected):
    """safety_checks.lvef-below-50 / lvef-below-40 (W3): below 50% warns, below 40% is critical."""
    assert topics(run(on_her2((value, ago(10))))).get("lvef-monitoring") == expected


@pytest.mark.parametrize("drop,expected", [(9, None), (10, "warning")])
def test_lvef_drop_edge_9_vs_10_points(drop, expected):
    """safety_checks.lvef-drop (W3): a fall of 10+ points from baseline warns, 9 does not."""
    assert topics(run(on_her2((65, ago(300)), (65 - drop, ago(10))))).get("lvef-monitoring") == expected


@pytest.mark.parametrize("days,expected", [(91, None), (92, "info")])
def test_lvef_overdue_edge_91_vs_92_days(days, expected):
    """safety_checks.lvef-overdue (W3, interval_days 91 = 3 months): older than 91 days is overdue."""
    assert topics(run(on_her2((60, ago(days))))).get("lvef-monitoring") == expected


def test_lvef_overdue_needs_her2_therapy_now():
    """safety_checks.lvef-overdue (W3): no card when HER2 therapy ended long ago and nothing is drafted."""
    s = summary(breast=True, metastatic=False, therapy_history=therapy(
        regimen(THP, ago(900), ago(600), setting=m.Setting.ADJUVANT, progressed=False)), lvef=[(60, ago(600))])
    assert run(s) == []


def test_lvef_overdue_when_her2_agent_drafted():
    """safety_checks.lvef-overdue (W3): a drafted HER2 agent with no recent LVEF is info."""
    s = summary(lvef=[(60, ago(200))])
    assert topics(run(s, "order-select", drafts(*THP)))["lvef-monitoring"] == "info"


def test_low_lvef_on_a_her2_draft_carries_override_reasons_and_a_removal():
    """safety_checks.lvef-below-40 (W3) on an order hook: overrideReasons and a suggestion deleting the HER2 draft."""
    out = run(summary(lvef=[(35, ago(5))]), "order-sign", drafts(m.RX_TDXD))
    c = next(c for c in out if c["source"]["topic"]["code"] == "lvef-monitoring")
    assert c["indicator"] == "critical" and c["overrideReasons"]
    assert c["suggestions"][0]["actions"][0]["type"] == "delete"
