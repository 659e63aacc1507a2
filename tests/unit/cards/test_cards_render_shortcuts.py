"""The render step's shortcuts (issue 15) give what the plain forms they replace give: the facts table's cells
escaped in one pass, the order facts are left out in and the rows kept."""
from __future__ import annotations

import pytest

from cards.decision import FactRow
from cards_testkit import summary
from cards.detail import MAX_VALUE, _cell, _cells, _drop_order, _FactsTable, RecordText

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


def _plain_drop_order(facts):
    """The drop order as first written: sorted by (priority, -index)."""
    from cards.detail import _priority
    return [-i for _, i in sorted((_priority(f.label), -i) for i, f in enumerate(facts))]


DROP_CASES = {
    "no facts": [],
    "no low-priority facts": ["HER2", "ER", "LVEF (latest)"],
    "every kind": ["HER2", "Prior HER2-directed agent", "Breast cancer", "HR status (ER or PR positive)",
                   "Prior HER2-directed agent", "Metastatic line 1", "Breast cancer", "LVEF (latest)"],
}


@pytest.mark.parametrize("labels", DROP_CASES.values(), ids=DROP_CASES.keys())
def test_facts_are_left_out_lowest_priority_first_then_from_the_end(labels):
    facts = [FactRow(label, str(i)) for i, label in enumerate(labels)]
    assert _drop_order(facts) == _plain_drop_order(facts)


def test_a_shortened_table_keeps_the_other_facts_in_their_order_and_counts_the_rest():
    labels = ["HER2", "Prior HER2-directed agent", "Breast cancer", "Metastatic line 1", "LVEF (latest)"]
    facts = [FactRow(label, str(i)) for i, label in enumerate(labels)]
    table = _FactsTable(facts, RecordText(summary(), (), ()))
    dropped = set(_plain_drop_order(facts)[:2])
    assert table.rows(3) == [*table.rows(5)[:2], *(line for i, line in enumerate(table.lines) if i not in dropped),
                             "| … | 2 more fact(s) in the explanation view | — |"]


def _plain_issue_line(issue, kind=None):
    """An issue's line as first written: `text` of the source and `_cell` of the problem, one call each."""
    from cards.detail import text
    return f"- {text(issue.source)}" + (f" ({kind})" if kind else "") + f": {_cell(issue.problem, 100)}"


ISSUE_CASES = {
    "none": [],
    "plain": [("Observation/1", "no value")],
    "markdown characters": [("MedicationRequest/a_b", "code *x* [y] | z"), ("Condition/c<d>", "#1 `c` \\")],
    "a problem over the limit": [("MedicationAdministration/1", "medication not in the table: " + LONG)],
    "whitespace to fold": [("Observation/ 2", "a  b\tc\n d "), ("Observation/3", " leading")],
    "the same line twice": [("Observation/1", "no value"), ("Observation/1", "no value")],
    "many": [(f"MedicationAdministration/{i}", f"medication not in the table: drug {i % 3}") for i in range(40)],
}


@pytest.mark.parametrize("issues", ISSUE_CASES.values(), ids=ISSUE_CASES.keys())
def test_record_issues_are_escaped_as_text_and_cell_escape_each(issues):
    from fhir_mappings.model import RecordIssue
    unmapped = tuple(RecordIssue(source, problem) for source, problem in issues)
    by_name = tuple(RecordIssue(source, problem, info=True) for source, problem in issues)
    record = RecordText(summary(unmapped=unmapped), by_name, ())
    plain = list(dict.fromkeys(_plain_issue_line(i, "not mapped") for i in unmapped))
    assert record.issues == (plain if len(plain) <= 6 else plain[:6] + [f"- … and {len(plain) - 6} more"])
    assert record.by_name == list(dict.fromkeys(_plain_issue_line(i) for i in by_name))[:6]
