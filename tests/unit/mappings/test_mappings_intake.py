"""What `summarize` accepts: other patients ignored, duplicates once, Bundles unwrapped, junk reported."""
from __future__ import annotations

import datetime as dt

import pytest

from fhir_mappings import dedupe_resources, summarize
from fhir_mappings.summary import _dedupe_walk
from fhir_mappings.model import ReceptorStatus
from mappings_helpers import AS_OF, ICD10, PID, POSITIVE, breast, condition, ma, observation, summary


@pytest.mark.parametrize("reference", ["Patient/other", "http://ehr.example/fhir/Patient/other",
                                       "Patient/other/_history/2"])
def test_resources_of_another_patient_are_ignored(reference):
    obs = observation("48676-1", **POSITIVE)
    obs["subject"] = {"reference": reference}
    assert summary(obs).her2.status == ReceptorStatus.UNKNOWN


@pytest.mark.parametrize("reference", ["Patient/p1", "http://ehr.example/fhir/Patient/p1", "Patient/p1/_history/3",
                                       "urn:uuid:4a1b", None])
def test_resources_of_this_patient_or_without_a_patient_reference_are_used(reference):
    obs = observation("48676-1", **POSITIVE)
    if reference is None:
        del obs["subject"]
    else:
        obs["subject"] = {"reference": reference}
    assert summary(obs).her2.status == ReceptorStatus.POSITIVE


def test_medication_statement_patient_element_is_honoured():
    stmt = ma("224905", 10)
    del stmt["subject"]
    stmt["patient"] = {"reference": "Patient/other"}
    assert summary(stmt).therapy.exposures == ()


def test_patient_id_may_be_given_as_a_reference():
    s = summarize([breast()], "Patient/p1", AS_OF)
    assert s.patient_id == PID and s.breast_cancer.present


def test_duplicates_by_type_and_id_are_used_once():
    a = ma("224905", 10, id="same")
    s = summary(a, dict(a), dict(a))
    assert len(s.therapy.exposures) == 1


def _r(rtype, rid=None, n=0):
    return {"resourceType": rtype, "n": n} if rid is None else {"resourceType": rtype, "id": rid, "n": n}


@pytest.mark.parametrize("resources", [
    [],
    [_r("Observation", "a"), _r("Observation", "b"), _r("Condition", "a")],                      # nothing repeated
    [_r("Observation", "a", 1), _r("Condition", "b"), _r("Observation", "a", 2), _r("Condition", "b", 3)],
    [_r("Observation", "a", 1), _r("Observation"), _r("Observation"), _r("Observation", "a", 2)],  # ids missing
    [_r("Observation", "", 1), _r("Observation", "", 2)],                                      # empty ids: all kept
    [_r("Observation", 7, 1), _r("Observation", 7, 2), _r("Observation", "7", 3)],             # not strings: kept
    [_r("Observation", ["x"], 1), _r("Observation", "a", 2), _r("Observation", "a", 3)],       # unhashable id
], ids=["empty", "distinct", "repeats", "no-id", "empty-id", "int-id", "list-id"])
def test_dedupe_keeps_each_type_and_string_id_once_first_copy_in_order(resources):
    out = dedupe_resources(iter(resources))
    assert out == _dedupe_walk(resources)
    assert all(a is b for a, b in zip(out, _dedupe_walk(resources)))     # the first copy itself, not an equal one


def test_same_id_of_different_types_are_both_used():
    s = summary(condition(ICD10, "C50.912", id="x"), observation("48676-1", id="x", **POSITIVE))
    assert s.breast_cancer.present and s.her2.status == ReceptorStatus.POSITIVE


def test_bundles_are_unwrapped():
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": breast()}, {"fullUrl": "x"},
                                                                       {"resource": observation("48676-1", **POSITIVE)}]}
    s = summarize([bundle], PID, AS_OF)
    assert s.breast_cancer.present and s.her2.status == ReceptorStatus.POSITIVE


@pytest.mark.parametrize("junk", [None, 42, "text", [1, "a", None], {"no": "type"}, [{"resourceType": 3}]])
def test_junk_input_is_reported_never_raised(junk):
    s = summarize(junk, PID, AS_OF)
    assert not s.breast_cancer.present and s.her2.status == ReceptorStatus.UNKNOWN


@pytest.mark.parametrize("code", ["O²1", "C²1", "O٢١", "C٢١", "O8", "C5"])
def test_icd10_codes_with_digits_other_than_ascii_are_not_read_as_numbers_and_never_raise(code):
    s = summarize([breast(), condition(ICD10, code, "odd code")], PID, AS_OF)
    assert s.breast_cancer.present and s.breast_cancer.other_primaries == () and s.pregnancy is None


def test_non_resource_items_are_listed_as_skipped():
    s = summarize([breast(), 5, "x", {"id": "1"}], PID, AS_OF)
    assert s.breast_cancer.present
    assert [i.source for i in s.skipped] == ["input[1]", "input[2]", "input[3]"]


def test_a_generator_is_accepted():
    s = summarize((r for r in [breast()]), PID, AS_OF)
    assert s.breast_cancer.present


def test_a_datetime_as_of_is_reduced_to_its_date():
    s = summarize([breast()], PID, dt.datetime(2026, 6, 1, 12, 0))
    assert s.as_of == dt.date(2026, 6, 1)


def test_partial_dates_are_read():
    cond = condition(ICD10, "C78.7", onset=None, onsetDateTime="2025-03")
    s = summary(breast(), cond)
    assert s.metastatic.first_known == dt.date(2025, 3, 1)
