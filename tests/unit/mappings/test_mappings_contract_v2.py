"""New mapping facts for card contract v2: draft timing, pregnancy, HER2 history, disease status."""
from __future__ import annotations

import datetime as dt

import pytest

from fhir_mappings import map_draft_orders
from fhir_mappings.draft_timing import planned_period
from fhir_mappings.model import ReceptorStatus
from mappings_helpers import (AS_OF, ICD10, NEGATIVE, POSITIVE, SNOMED, breast, cc, condition, day, observation,
                              summary)

D = dt.date.fromisoformat


def timing(**repeat):
    return {"timing": {"repeat": repeat}}


@pytest.mark.parametrize("mr, expected", [
    ({"dosageInstruction": [timing(boundsPeriod={"start": "2027-01-08", "end": "2027-03-05"})]},
     (D("2027-01-08"), D("2027-03-05"))),
    ({"dosageInstruction": [timing(boundsPeriod={"start": "2027-01-08"},
                                   boundsDuration={"value": 8, "unit": "weeks", "code": "wk"})]},
     (D("2027-01-08"), D("2027-03-05"))),
    ({"dosageInstruction": [{"timing": {"event": ["2027-02-01", "2027-01-15"]}}]}, (D("2027-01-15"), None)),
    ({"dispenseRequest": {"validityPeriod": {"start": "2027-01-01", "end": "2027-06-30"}}},
     (D("2027-01-01"), D("2027-06-30"))),
    ({"dosageInstruction": [{"text": "doxorubicin 60 mg/m2 every 14 days x 4"}]}, (None, None)),
    ({"authoredOn": "2026-12-01"}, (None, None)),          # authoredOn is not a planned start
])
def test_planned_period_of_a_draft(mr, expected):
    assert planned_period(mr) == expected


def test_draft_orders_carry_their_planned_period():
    mr = {"resourceType": "MedicationRequest", "id": "d1", "status": "draft", "intent": "order",
          "medicationCodeableConcept": cc("http://www.nlm.nih.gov/research/umls/rxnorm", "3639", "doxorubicin"),
          "dosageInstruction": [timing(boundsPeriod={"start": "2027-01-08", "end": "2027-03-05"})]}
    (d,), _ = map_draft_orders({"resourceType": "Bundle", "entry": [{"resource": mr}]}, None)
    assert (d.planned_start, d.planned_end) == (D("2027-01-08"), D("2027-03-05"))


def pregnancy_obs(answer: str, days: int):
    return observation("82810-3", days=days, **{"valueCodeableConcept": cc("http://loinc.org", answer)})


@pytest.mark.parametrize("resources, current", [
    ([condition(ICD10, "Z33.1", "Pregnant state, incidental", onset=140)], True),
    ([condition(SNOMED, "77386006", "Pregnant", onset=60)], True),
    ([condition(ICD10, "O09.521", "Supervision of elderly primigravida", onset=90)], True),
    ([condition(ICD10, "Z33.1", onset=400)], False),                                    # older than 10 months
    ([condition(ICD10, "Z33.1", onset=140, clinical="resolved")], False),
    ([condition(ICD10, "Z33.1", onset=140, abatementDateTime="2026-05-01")], False),
    ([condition(ICD10, "Z33.1", onset=200), condition(ICD10, "O80", "Full-term uncomplicated delivery", onset=20)],
     False),
    ([condition(ICD10, "Z33.1", onset=140, verification="refuted")], False),
    ([condition(ICD10, "Z33.1", onset=200), condition(ICD10, "O80", onset=20, verification="entered-in-error")],
     True),                                                                              # a delivery entered in error
    ([pregnancy_obs("LA15173-0", 30)], True),
    ([pregnancy_obs("LA15173-0", 300)], False),                                          # older than 9 months
    ([condition(ICD10, "Z33.1", onset=140), pregnancy_obs("LA26683-5", 10)], False),     # later not-pregnant result
])
def test_current_pregnancy(resources, current):
    assert (summary(*resources).pregnancy is not None) is current


def test_pregnancy_reports_weeks_since_the_recorded_onset():
    p = summary(condition(ICD10, "Z33.1", onset=140)).pregnancy
    assert p.gestational_weeks == 20 and p.since == day(140)


def test_her2_history_keeps_each_episode_definitive_result():
    her2 = "85319-2"
    s = summary(breast(), observation(her2, days=736, **POSITIVE), observation(her2, days=30, **NEGATIVE))
    assert [r.status for r in s.her2_history] == [ReceptorStatus.POSITIVE, ReceptorStatus.NEGATIVE]
    assert s.her2.status == ReceptorStatus.NEGATIVE


@pytest.mark.parametrize("code, value, found", [
    ("97509-4", "271299001", True),      # mCODE cancer disease status: patient's condition worsened
    ("88040-1", "271299001", True),      # the same, STU1/2 code
    ("97509-4", "359746009", False),     # stable
])
def test_disease_status_progression_observations(code, value, found):
    s = summary(breast(), observation(code, days=10, valueCodeableConcept=cc(SNOMED, value)))
    assert (s.progression_dates == ((day(10), s.progression_dates[0][1]),) if found else s.progression_dates == ())
