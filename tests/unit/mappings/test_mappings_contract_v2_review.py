"""Card contract v2, independent review (issue 16): mapping gaps found against contract/cards.md."""
from __future__ import annotations

import pytest

from fhir_mappings.model import ReceptorStatus as S
from mappings_helpers import ICD10, NEGATIVE, POSITIVE, SNOMED, breast, coded, condition, observation, summary

INTERP, IHC, ISH = "48676-1", "85319-2", "85318-4"


def obs(code, days, value, id_):
    return observation(code, days=days, id=id_, **value)


# Contract v2, her2-status-discordant: "Results that disagree on the same date are her2-status-unknown; a later
# positive after an earlier negative is simply positive" (her2-status-unknown: "conflicting on the same date").
HER2_DATES = [
    ("interpretations disagree on one date",
     [obs(INTERP, 30, POSITIVE, "a"), obs(INTERP, 30, NEGATIVE, "b")], S.UNKNOWN, True),
    ("IHC 3+ and ISH not amplified on one date",
     [obs(IHC, 30, {"valueQuantity": {"value": 3}}, "a"), obs(ISH, 30, {"valueString": "not amplified"}, "b")],
     S.UNKNOWN, True),
    ("IHC 1+ and ISH amplified on one date",
     [obs(IHC, 30, {"valueQuantity": {"value": 1}}, "a"), obs(ISH, 30, {"valueString": "greater than 2.2"}, "b")],
     S.UNKNOWN, True),
    ("same-date clash on the latest specimen hides an earlier positive",
     [obs(INTERP, 700, POSITIVE, "old"), obs(INTERP, 30, POSITIVE, "a"), obs(INTERP, 30, NEGATIVE, "b")],
     S.UNKNOWN, True),
    ("a later positive after an earlier negative is simply positive",
     [obs(INTERP, 700, NEGATIVE, "a"), obs(INTERP, 30, POSITIVE, "b")], S.POSITIVE, True),
    ("a later result on another date settles an earlier same-date clash",
     [obs(IHC, 50, {"valueQuantity": {"value": 1}}, "a"), obs(ISH, 50, {"valueString": "greater than 2.2"}, "b"),
      obs(INTERP, 40, POSITIVE, "c")], S.POSITIVE, True),
    ("IHC 2+ and ISH amplified on one date agree (equivocal resolved)",
     [obs(IHC, 30, {"valueQuantity": {"value": 2}}, "a"), obs(ISH, 30, {"valueString": "greater than 2.2"}, "b")],
     S.POSITIVE, False),
    ("the overall interpretation settles a disagreeing IHC of the same date",
     [obs(IHC, 30, {"valueQuantity": {"value": 1}}, "a"), obs(INTERP, 30, POSITIVE, "b")], S.POSITIVE, True),
    ("agreeing results on one date",
     [obs(IHC, 30, {"valueQuantity": {"value": 3}}, "a"), obs(INTERP, 30, POSITIVE, "b")], S.POSITIVE, False),
]


@pytest.mark.parametrize("name, resources, status, conflict", HER2_DATES, ids=[c[0] for c in HER2_DATES])
def test_her2_results_by_date(name, resources, status, conflict):
    her2 = summary(breast(), *resources).her2
    assert (her2.status, her2.conflict) == (status, conflict)


def test_same_date_clash_reason_names_both_results():
    her2 = summary(breast(), obs(INTERP, 30, POSITIVE, "a"), obs(INTERP, 30, NEGATIVE, "b")).her2
    assert "same date" in her2.reason and "Observation/a" in her2.reason and "Observation/b" in her2.reason
    assert set(her2.sources) == {"Observation/a", "Observation/b"}


def test_same_date_clash_is_not_a_definitive_result_in_the_her2_history():
    s = summary(breast(), obs(INTERP, 700, POSITIVE, "old"), obs(INTERP, 30, POSITIVE, "a"),
                obs(INTERP, 30, NEGATIVE, "b"))
    assert [h.source for h in s.her2_history] == ["Observation/old"]


@pytest.mark.parametrize("resources, status", [
    ([condition(ICD10, "Z17.31", onset=30), condition(ICD10, "Z17.32", onset=30)], S.UNKNOWN),
    ([condition(ICD10, "Z17.32", onset=300), condition(ICD10, "Z17.31", onset=30)], S.POSITIVE),
    ([condition(SNOMED, "427685000", onset=30), condition(ICD10, "Z17.31", onset=30)], S.POSITIVE),
])
def test_her2_from_coded_conditions_disagreeing_on_one_date_is_unknown(resources, status):
    assert summary(breast(), *resources).her2.status == status


def test_undated_her2_results_that_disagree_are_unknown():
    a, b = obs(INTERP, 30, POSITIVE, "a"), obs(INTERP, 30, NEGATIVE, "b")
    for r in (a, b):
        del r["effectiveDateTime"]
    assert summary(breast(), a, b).her2.status == S.UNKNOWN


# her2-status-discordant: "the card names both results with their dates and specimens".
@pytest.mark.parametrize("extra, specimen", [
    ({"bodySite": {"text": "Liver, segment VI"}}, "Liver, segment VI"),
    ({"specimen": {"reference": "Specimen/x", "display": "Bone biopsy (decalcified)"}}, "Bone biopsy (decalcified)"),
    ({"note": [{"text": "Core biopsy of the primary tumour, right breast."}]},
     "Core biopsy of the primary tumour, right breast."),
    ({"note": [{"text": "x" * 150}]}, "x" * 99 + "…"),
    ({}, ""),
])
def test_her2_history_names_the_specimen_as_the_record_does(extra, specimen):
    s = summary(breast(), observation(IHC, days=30, id="a", valueQuantity={"value": 1}, **extra))
    assert s.her2_history[-1].specimen == specimen


# pregnancy: "no later delivery, termination, abatement or not-pregnant result".
@pytest.mark.parametrize("later, current", [
    (condition(ICD10, "O03.9", "Complete or unspecified spontaneous abortion without complication", onset=20), False),
    (condition(ICD10, "O04.80", "(Induced) termination of pregnancy with unspecified complications", onset=20), False),
    (condition(ICD10, "Z33.2", "Encounter for elective termination of pregnancy", onset=20), False),
    (condition(ICD10, "O07.4", "Failed attempted termination of pregnancy without complication", onset=20), True),
])
def test_a_later_termination_ends_the_pregnancy(later, current):
    s = summary(condition(ICD10, "Z33.1", "Pregnant state, incidental", onset=60), later)
    assert (s.pregnancy is not None) is current


def test_a_termination_code_alone_is_not_a_current_pregnancy():
    assert summary(condition(ICD10, "O03.9", onset=20)).pregnancy is None


# heart-failure: "not refuted, not entered-in-error" (the mapping drops them), "not resolved" (a card rule).
@pytest.mark.parametrize("verification, kept", [("confirmed", True), ("refuted", False), ("entered-in-error", False),
                                                ("provisional", True)])
def test_heart_failure_conditions_kept_unless_refuted_or_entered_in_error(verification, kept):
    s = summary(condition(ICD10, "I50.22", "Chronic systolic (congestive) heart failure", verification=verification))
    assert bool(s.heart_failure) is kept
