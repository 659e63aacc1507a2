"""The render step's shortcuts (issue 15) give what the plain forms they replace give: the facts table's cells
escaped in one pass."""
from __future__ import annotations

import pytest

from cards.decision import FactRow
from cards.detail import MAX_VALUE, _cell, _cells

LONG = "trastuzumab deruxtecan (2025-01-02 to 2025-07-13, metastatic; progression; 12 records) " * 2

CELL_CASES = {
    "plain": ["positive (IHC 3+), by IHC", "negative", "65%"],
    "markdown characters": ["a|b", "*bold* _x_ [y](z) <b> #1 `c` \\"],
    "one value over the limit": ["short", LONG, "62% (150 days ago)"],
    "a value exactly at the limit": ["x" * MAX_VALUE, "y" * (MAX_VALUE + 1)],
    "a space before the cut": ["a" * (MAX_VALUE - 2) + "  b" * 5],
    "an empty value": ["", "a", ""],
    "only an empty value": [""],
    "doubled space": ["a  b", "c"],
    "leading space": [" a", "b"],
    "trailing space": ["a ", "b"],
    "leading space after the first": ["a", " b"],
    "trailing space on the last": ["a", "b "],
    "newline": ["a\nb", "c"],
    "tab": ["a\tb"],
    "other Unicode space": ["a\u00a0b", "a\u2028b"],
    "non-ASCII": ["ré…sumé", "≥ 50%"],
    "none": [],
}


@pytest.mark.parametrize("values", CELL_CASES.values(), ids=CELL_CASES.keys())
def test_cells_escape_and_clip_each_value_as_cell_does(values):
    assert _cells(values, MAX_VALUE) == [_cell(v, MAX_VALUE) for v in values]
