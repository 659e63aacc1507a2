"""`parse_date` is anchored: a value that is not a FHIR date is None (not the 1st of January of its first four
digits), and `summarize` reports it as a gap instead of silently moving treatment dates."""
from __future__ import annotations

import datetime as dt

import pytest

from fhir_mappings import summarize
from fhir_mappings.fhir_json import choice_dates, is_malformed_date, parse_date, period


@pytest.mark.parametrize("value, start, end", [
    ("2024", dt.date(2024, 1, 1), dt.date(2024, 12, 31)),
    ("2024-05", dt.date(2024, 5, 1), dt.date(2024, 5, 31)),
    ("2024-05-10", dt.date(2024, 5, 10), dt.date(2024, 5, 10)),
    ("2024-05-10T23:30:00Z", dt.date(2024, 5, 10), dt.date(2024, 5, 10)),
    ("2024-05-10T23:30:00.123+02:00", dt.date(2024, 5, 10), dt.date(2024, 5, 10)),
    (" 2024-05-10 ", dt.date(2024, 5, 10), dt.date(2024, 5, 10)),
])
def test_fhir_dates_are_read_as_written(value, start, end):
    assert parse_date(value) == start
    assert parse_date(value, end=True) == end
    assert not is_malformed_date(value)


@pytest.mark.parametrize("value", [
    "20240510",                 # basic ISO format: not FHIR
    "2024-5-1",                 # unpadded month and day
    "2024-05-1",
    "2024-02-30",               # no such day
    "2024-13",
    "2024-05-10T25:00:00Z",
    "2024-05-10 10:00:00",      # space instead of T
    "2024-05-10garbage",
    "10/05/2024",
    "",
])
def test_a_malformed_date_is_none_and_reported_as_malformed(value):
    assert parse_date(value) is None
    assert parse_date(value, end=True) is None
    assert is_malformed_date(value)


def test_an_absent_date_is_not_malformed():
    assert not is_malformed_date(None)


def test_a_malformed_treatment_date_is_reported_as_a_gap_naming_the_element():
    statement = {"resourceType": "MedicationStatement", "id": "ms1", "status": "completed",
                 "subject": {"reference": "Patient/p1"}, "effectivePeriod": {"start": "20240510"},
                 "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                           "code": "224905"}]}}
    summary = summarize([{"resourceType": "Patient", "id": "p1"}, statement], "p1", dt.date(2026, 1, 1))
    problems = [(i.source, i.problem) for i in summary.skipped]
    assert ("MedicationStatement/ms1",
            "effectivePeriod.start '20240510' is not a FHIR date; that date is not used") in problems


PERIODS = [
    # (name, Period value): a string read from its cache directly, anything else through parse_date
    ("two dates", {"start": "2024-05", "end": "2024-06"}),
    ("start only", {"start": "2024-05-10T23:30:00Z"}),
    ("malformed end", {"start": "2024", "end": "2024-13"}),
    ("date objects", {"start": dt.date(2024, 5, 1), "end": dt.datetime(2024, 6, 1, 10, 0)}),
    ("numbers", {"start": 2024, "end": None}),
    ("not a Period", "2024-05-10"),
    ("nothing", None),
]


@pytest.mark.parametrize("name, value", PERIODS, ids=[c[0] for c in PERIODS])
def test_a_period_is_read_as_parse_date_reads_its_ends(name, value):
    p = value if isinstance(value, dict) else {}
    assert period(value) == (parse_date(p.get("start")), parse_date(p.get("end"), end=True))


CHOICES = [
    ("dateTime", {"onsetDateTime": "2024-05-10"}, (dt.date(2024, 5, 10), dt.date(2024, 5, 10))),
    ("malformed dateTime, then a Period", {"onsetDateTime": "2024-5", "onsetPeriod": {"start": "2024-05", "end": "2024-06"}},
     (dt.date(2024, 5, 1), dt.date(2024, 6, 30))),
    ("date object", {"onsetDateTime": dt.date(2024, 5, 10)}, (dt.date(2024, 5, 10), dt.date(2024, 5, 10))),
    ("string", {"onsetString": "2019-05"}, (dt.date(2019, 5, 1), dt.date(2019, 5, 1))),
    ("Age", {"onsetAge": {"value": 50}}, (None, None)),
]


@pytest.mark.parametrize("name, resource, read", CHOICES, ids=[c[0] for c in CHOICES])
def test_a_choice_element_is_read_from_its_first_usable_form(name, resource, read):
    assert choice_dates(resource, "onset") == read
    assert choice_dates({k.replace("onset", "birth"): v for k, v in resource.items()}, "birth") == read   # any prefix
