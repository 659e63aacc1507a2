"""HER2CDS_PLAN_AT_PROGRESSION_CARD: parsed strictly, default off, reaches the clinical policy."""
from __future__ import annotations

import pytest

from cds_service.config import load_settings


@pytest.mark.parametrize("raw, expected", [("true", True), ("TRUE", True), ("1", True), ("false", False),
                                           ("0", False), (" False ", False)])
def test_plan_at_progression_card_accepts_true_false_1_0(raw, expected):
    assert load_settings(environ={"HER2CDS_PLAN_AT_PROGRESSION_CARD": raw}).plan_at_progression_card is expected


@pytest.mark.parametrize("raw", ["yes", "on", "2", "ture", "enabled"])
def test_plan_at_progression_card_rejects_anything_else(raw):
    with pytest.raises(ValueError, match="HER2CDS_PLAN_AT_PROGRESSION_CARD"):
        load_settings(environ={"HER2CDS_PLAN_AT_PROGRESSION_CARD": raw})


def test_plan_at_progression_card_is_off_by_default():
    assert load_settings(environ={}).plan_at_progression_card is False
