"""Therapy history: exposures from the three medication resources, regimens, settings, lines, derived facts."""
from __future__ import annotations

import pytest

from fhir_mappings import model as m
from fhir_mappings.model import Setting
from mappings_helpers import (CURATIVE, ICD10, NO_RESPONSE, PALLIATIVE, RXNORM, iso_day, breast, condition, day, ma, mr,
                              ms, summary, surgery)

TRAS, PER, TDM1, TDXD = m.RX_TRASTUZUMAB, m.RX_PERTUZUMAB, m.RX_TDM1, m.RX_TDXD
DOC, CAPE, TUC = m.RX_DOCETAXEL, m.RX_CAPECITABINE, m.RX_TUCATINIB


def liver(onset: int) -> dict:
    return condition(ICD10, "C78.7", onset=onset, related="bc")


# --- exposures -----------------------------------------------------------------------------------------

EXPOSURE_DATES = [
    ("statement period", ms(TRAS, 300, 100), day(300), day(100), False),
    ("statement dateTime", ms(TRAS, effectiveDateTime=iso_day(50)), day(50), day(50), False),
    ("active statement without end", ms(TRAS, 300, status="active"), day(300), None, True),
    ("request bounds", mr(TRAS, 300, 100), day(300), day(100), False),
    ("active request without end", mr(TRAS, 300, status="active"), day(300), None, True),
    ("request authoredOn only", mr(TRAS, authoredOn=iso_day(90)), day(90), None, False),
    ("request validityPeriod", mr(TRAS, dispenseRequest={"validityPeriod": {"start": iso_day(200), "end": iso_day(20)}}),
     day(200), day(20), False),
    ("request boundsDuration", mr(TRAS, dosageInstruction=[{"timing": {"repeat": {
        "boundsPeriod": {"start": iso_day(400)}, "boundsDuration": {"value": 52, "unit": "weeks", "code": "wk"}}}}]),
     day(400), day(400 - 364), False),
    ("request count x period", mr(TRAS, dosageInstruction=[{"timing": {"repeat": {
        "boundsPeriod": {"start": iso_day(400)}, "count": 6, "period": 3, "periodUnit": "wk"}}}]),
     day(400), day(400 - 105), False),
    ("administration", ma(TRAS, 30), day(30), day(30), False),
    ("active request ending in the future", mr(TRAS, 100, status="active",
                                                dosageInstruction=[{"timing": {"repeat": {"boundsPeriod": {
                                                    "start": iso_day(100), "end": "2099-01-01"}}}}]), day(100), None, True),
]


@pytest.mark.parametrize("name, resource, start, end, ongoing", EXPOSURE_DATES, ids=[c[0] for c in EXPOSURE_DATES])
def test_exposure_dates_from_each_resource_shape(name, resource, start, end, ongoing):
    (e,) = summary(resource).therapy.exposures
    assert (e.start, e.end, e.ongoing) == (start, end, ongoing)
    assert e.drug.rxnorm == TRAS and e.source.endswith(resource["id"])


NOT_HISTORY = [
    ("entered-in-error statement", ms(TRAS, 100, 50, status="entered-in-error")),
    ("not-taken statement", ms(TRAS, 100, 50, status="not-taken")),
    ("intended statement", ms(TRAS, 100, status="intended")),
    ("draft request", mr(TRAS, 100, status="draft")),
    ("cancelled request", mr(TRAS, 100, status="cancelled")),
    ("active proposal request", mr(TRAS, 100, request_intent="proposal", status="active")),
    ("active plan request", mr(TRAS, 100, request_intent="plan", status="active")),
    ("draft plan request", mr(TRAS, 100, request_intent="plan", status="draft")),
    ("not-done administration", ma(TRAS, 30, status="not-done")),
    ("entered-in-error administration", ma(TRAS, 30, status="entered-in-error")),
]


@pytest.mark.parametrize("name, resource", NOT_HISTORY, ids=[c[0] for c in NOT_HISTORY])
def test_withdrawn_planned_or_proposed_medications_are_not_history(name, resource):
    t = summary(resource).therapy
    assert t.exposures == () and t.ever_given == frozenset()


def test_request_without_intent_is_history():
    r = mr(TRAS, 100, 50)
    del r["intent"]
    assert summary(r).therapy.ever_given == {TRAS}


def test_future_dated_order_is_reported_not_history():
    s = summary(mr(TRAS, -30, status="active"))
    assert s.therapy.exposures == () and "planned" in s.skipped[0].problem


def test_combination_product_gives_one_exposure_per_ingredient():
    exps = summary(ms("2382605", 200, 100, display="Phesgo")).therapy.exposures
    assert {e.drug.rxnorm for e in exps} == {PER, TRAS}


def test_contained_medication_reference():
    r = ms("x", 200, 100)
    del r["medicationCodeableConcept"]
    r["contained"] = [{"resourceType": "Medication", "id": "m1",
                       "code": {"coding": [{"system": RXNORM, "code": "1658086", "display": "Trastuzumab Injection [KADCYLA]"}]}}]
    r["medicationReference"] = {"reference": "#m1"}
    assert summary(r).therapy.ever_given == {TDM1}


def test_bundled_medication_reference_and_ingredient_only_medication():
    r = ms("x", 200, 100)
    del r["medicationCodeableConcept"]
    r["medicationReference"] = {"reference": "http://ehr.example/fhir/Medication/med-7"}
    med = {"resourceType": "Medication", "id": "med-7", "ingredient": [
        {"itemCodeableConcept": {"coding": [{"system": RXNORM, "code": "2267577", "display": "Enhertu"}]}}]}
    assert summary(r, med).therapy.ever_given == {TDXD}


def test_unresolvable_medication_reference_is_reported_as_unmapped():
    r = ms("x", 200, 100)
    del r["medicationCodeableConcept"]
    r["medicationReference"] = {"reference": "Medication/missing", "display": "something"}
    s = summary(r)
    assert s.therapy.exposures == () and "not found" in s.unmapped[0].problem


def test_unknown_code_is_reported_as_unmapped_never_dropped_silently():
    s = summary(ms("26225", 100, 50, display="ondansetron"))
    assert s.therapy.exposures == ()
    assert s.unmapped[0].source.startswith("MedicationStatement/") and "ondansetron" in s.unmapped[0].problem


def test_unknown_code_with_known_name_maps_by_name_and_is_reported_as_information():
    s = summary(ms("9999999", 100, 50, display="Trastuzumab Injection [KADCYLA]"))
    assert s.therapy.ever_given == {TDM1}
    assert s.unmapped == ()                       # not missing: read, from the name
    assert "identified by name" in s.notes[0].problem and s.notes[0].info


def test_code_display_conflict_trusts_the_code_and_reports_it():
    s = summary(ms(TRAS, 100, 50, display="Kadcyla"))
    assert s.therapy.ever_given == {TRAS} and "conflict" in s.unmapped[0].problem


def test_status_reason_and_intent_are_kept_on_the_exposure():
    (e,) = summary(mr(TRAS, 300, 100, status="stopped", reason=NO_RESPONSE, intent=PALLIATIVE)).therapy.exposures
    assert e.progressed and e.intent == "palliative" and "Absent response" in e.status_reason


# --- regimens and lines ---------------------------------------------------------------------------------

def test_agents_starting_within_21_days_form_one_regimen():
    t = summary(mr(DOC, 300, 200), mr(TRAS, 290, 100), mr(PER, 280, 100)).therapy
    assert len(t.regimens) == 1 and t.regimens[0].rxnorm == {DOC, TRAS, PER}


def test_an_agent_starting_later_opens_a_new_regimen():
    t = summary(breast(), liver(400), mr(DOC, 300, 200), mr(CAPE, 250, 100)).therapy
    assert [r.rxnorm for r in t.regimens] == [{DOC}, {CAPE}]


def test_undated_exposures_form_one_last_regimen_and_every_list_is_in_date_order():
    t = summary(breast(), liver(400), ms(TUC, status="active", id="ms-b"), mr(CAPE, 250, 100, id="mr-c"),
                ms(TRAS, id="ms-a"), mr(DOC, 300, 200, id="mr-d"), mr(PER, 300, 200, id="mr-a")).therapy
    assert [r.rxnorm for r in t.regimens] == [{DOC, PER}, {CAPE}, {TUC, TRAS}]
    assert [r.start for r in t.regimens] == [day(300), day(250), None]
    assert [e.source for e in t.regimens[0].exposures] == ["MedicationRequest/mr-a", "MedicationRequest/mr-d"]
    assert [e.source for e in t.regimens[2].exposures] == ["MedicationStatement/ms-a", "MedicationStatement/ms-b"]
    assert [e.source for e in t.exposures] == ["MedicationRequest/mr-a", "MedicationRequest/mr-d",
                                               "MedicationRequest/mr-c", "MedicationStatement/ms-a",
                                               "MedicationStatement/ms-b"]
    assert t.regimens[2].ongoing and t.regimens[2].end is None


def test_a_series_of_administrations_of_the_same_drug_is_one_regimen():
    t = summary(breast(), liver(400), *[ma(TRAS, d) for d in range(300, 0, -21)]).therapy
    assert len(t.regimens) == 1 and t.regimens[0].start == day(300) and t.metastatic_lines == 1


def test_endocrine_therapy_added_to_running_maintenance_is_not_a_new_line():
    t = summary(breast(), liver(500), ms("56946", 470, 300), ms(PER, 470, 28), ms(TRAS, 470, 28),
                ms("72965", 290, 28)).therapy
    assert t.metastatic_lines == 1 and "72965" in t.regimens[0].rxnorm


def test_a_gap_longer_than_the_continuation_window_separates_neoadjuvant_and_adjuvant_trastuzumab():
    t = summary(breast(600), condition(ICD10, "C79.51", onset=20), ms(DOC, 500, 395), ms("101306", 500, 395),
                surgery(360), ms("101306", 331, 142)).therapy
    assert [r.setting for r in t.regimens] == [Setting.NEOADJUVANT, Setting.ADJUVANT]
    assert t.early_her2_end == day(142) and t.tfi_months == round(122 / 30.4375, 1)
    assert t.metastatic_lines == 0


SETTING_CASES = [
    ("palliative intent", dict(intent=PALLIATIVE), None, Setting.METASTATIC),
    ("curative intent before metastasis", dict(intent=CURATIVE), 100, Setting.EARLY),
    ("dates: after metastatic date", {}, 400, Setting.METASTATIC),
    ("dates: before metastatic date", {}, 100, Setting.EARLY),
    ("no metastasis at all", {}, None, Setting.EARLY),
]


@pytest.mark.parametrize("name, kw, met_onset, setting", SETTING_CASES, ids=[c[0] for c in SETTING_CASES])
def test_regimen_setting_from_intent_and_dates(name, kw, met_onset, setting):
    resources = [breast(900), mr(TRAS, 300, 200, **kw)]
    if met_onset is not None:
        resources.append(liver(met_onset))
    assert summary(*resources).therapy.regimens[0].setting == setting


def test_metastatic_with_unknown_date_and_no_intent_is_unknown_setting():
    assert summary(breast(), liver(0) | {"onsetDateTime": None}, mr(TRAS, 300, 200)).therapy.regimens[0].setting \
        == Setting.UNKNOWN


def test_metastatic_lines_are_numbered_in_order_and_earlier_lines_progressed():
    t = summary(breast(), liver(1100), mr(DOC, 1090, 985, intent=PALLIATIVE), mr(TRAS, 1090, 700, intent=PALLIATIVE),
                mr(TDXD, 680, 330, intent=PALLIATIVE), mr(TUC, 312, status="active", intent=PALLIATIVE),
                mr(CAPE, 312, status="active", intent=PALLIATIVE), *[ma(TRAS, d) for d in (312, 291, 270)]).therapy
    assert [r.line for r in t.regimens] == [1, 2, 3]
    assert [r.progressed for r in t.regimens] == [True, True, False]
    assert t.metastatic_lines == 3 and t.current_line_ongoing
    assert t.regimens[2].rxnorm == {TUC, CAPE, TRAS}
    assert t.her2_agents_metastatic == {TRAS, TDXD, TUC}


def test_progression_from_status_reason_ends_the_current_line():
    t = summary(breast(), liver(500), mr(TRAS, 400, 30, status="stopped", reason=NO_RESPONSE)).therapy
    assert t.regimens[0].progressed and not t.current_line_ongoing


def test_ongoing_line_without_progression_is_current_and_ongoing():
    t = summary(breast(), liver(500), mr(TRAS, 400, status="active"), mr(PER, 400, status="active")).therapy
    assert t.current_line_ongoing and t.regimens[0].ongoing and t.regimens[0].end is None


def test_recent_administrations_keep_a_regimen_ongoing():
    t = summary(breast(), liver(500), *[ma(TDXD, d) for d in (84, 63, 42, 21)]).therapy
    assert t.regimens[0].ongoing and t.current_line_ongoing and t.her2_therapy_ongoing


def test_administrations_that_stopped_long_ago_are_not_ongoing():
    t = summary(breast(), liver(500), *[ma(TDXD, d) for d in (190, 169, 148)]).therapy
    assert not t.regimens[0].ongoing and not t.current_line_ongoing and not t.her2_therapy_ongoing


# --- derived facts ---------------------------------------------------------------------------------------

def test_last_trastuzumab_dose_counts_unconjugated_trastuzumab_only():
    t = summary(ms(TRAS, 400, 200, id="h"), ms(TDM1, 150, 20), ms(TDXD, 100, 10)).therapy
    assert t.last_trastuzumab_dose == day(200) and t.last_trastuzumab_source == "MedicationStatement/h"
    assert t.last_her2_dose == day(10)


def test_last_trastuzumab_dose_includes_biosimilars_sc_and_phesgo():
    t = summary(ms("2280733", 400, 300), ms("2119714", 300, 200), ms("2382605", 200, 90, id="phesgo")).therapy
    assert t.last_trastuzumab_dose == day(90) and t.last_trastuzumab_source == "MedicationStatement/phesgo"


def test_ongoing_order_uses_its_latest_administration_as_last_dose():
    t = summary(mr(TRAS, 410, status="active"), ma(TRAS, 31), ma(TRAS, 10, id="last")).therapy
    assert t.last_trastuzumab_dose == day(10) and t.last_trastuzumab_source == "MedicationAdministration/last"
    assert t.trastuzumab_ongoing


def test_ongoing_order_without_administrations_counts_as_given_until_as_of():
    t = summary(mr(TRAS, 410, status="active")).therapy
    assert t.last_trastuzumab_dose == day(0) and t.trastuzumab_ongoing


@pytest.mark.parametrize("last_dose, ongoing", [(42, True), (43, False), (10, True), (200, False)])
def test_her2_therapy_ongoing_means_active_or_dosed_in_the_last_42_days(last_dose, ongoing):
    t = summary(ma(PER, last_dose)).therapy
    assert t.her2_therapy_ongoing is ongoing
    assert t.trastuzumab_ongoing is False


def test_trastuzumab_ongoing_for_a_recent_trastuzumab_dose():
    assert summary(ma(TRAS, 20)).therapy.trastuzumab_ongoing
    assert not summary(ma(TRAS, 60)).therapy.trastuzumab_ongoing


def test_ever_given_covers_every_setting():
    t = summary(breast(), liver(30), ms(TDM1, 400, 250, intent=CURATIVE), ms(TUC, 20, status="active")).therapy
    assert t.ever_given == {TDM1, TUC}


@pytest.mark.parametrize("early_end, met_onset, tfi", [
    (944, 30, round(914 / 30.4375, 1)),          # S03-like: 30 months
    (142, 20, round(122 / 30.4375, 1)),          # S02-like: 4 months
    (30, 60, 0.0),                               # relapse during adjuvant therapy: never negative
])
def test_tfi_months_from_end_of_early_her2_therapy_to_metastatic_diagnosis(early_end, met_onset, tfi):
    t = summary(breast(1400), liver(met_onset), mr(TRAS, 1280, early_end, intent=CURATIVE)).therapy
    assert t.tfi_months == tfi


def test_no_tfi_without_early_her2_therapy_or_without_metastasis():
    assert summary(breast(), liver(30), mr(DOC, 1280, 1175, intent=CURATIVE)).therapy.tfi_months is None
    assert summary(breast(), mr(TRAS, 1280, 900, intent=CURATIVE)).therapy.tfi_months is None


def test_early_her2_with_pertuzumab():
    t = summary(breast(), liver(30), ms("2382605", 700, 400, intent=CURATIVE, id="ph")).therapy
    assert t.early_her2_with_pertuzumab and t.early_her2_end == day(400)
    assert t.early_her2_sources == ("MedicationStatement/ph",)


def test_metastatic_her2_therapy_is_not_early():
    t = summary(breast(), liver(500), mr(TRAS, 400, 100, intent=PALLIATIVE)).therapy
    assert t.early_her2_end is None and t.tfi_months is None and t.her2_agents_metastatic == {TRAS}


def test_trastuzumab_continued_beyond_progression_joins_the_new_line():
    t = summary(breast(), liver(700), mr(DOC, 600, 500, intent=PALLIATIVE), mr(PER, 600, 300, intent=PALLIATIVE),
                *[ma(TRAS, d) for d in range(600, 0, -21)], mr(CAPE, 290, status="active", intent=PALLIATIVE)).therapy
    assert [r.line for r in t.regimens] == [1, 2]
    assert t.regimens[1].rxnorm == {CAPE, TRAS} and TRAS in t.regimens[0].rxnorm
    assert t.regimens[0].progressed and t.current_line_ongoing


REPORTED_HISTORY = [
    # (name, resource): outside records and completed plans are therapy that happened (issue 10)
    ("completed plan request", mr(TRAS, 200, 100, request_intent="plan", status="completed")),
    ("completed proposal request", mr(TRAS, 200, 100, request_intent="proposal", status="completed")),
    ("reportedBoolean active plan", mr(TRAS, 200, request_intent="plan", status="active", reportedBoolean=True)),
    ("reportedReference stopped plan", mr(TRAS, 200, 100, request_intent="plan", status="stopped",
                                          reportedReference={"reference": "Organization/outside-hospital"})),
    ("reported order", mr(TRAS, 200, 100, status="completed", reportedBoolean=True)),
    ("statement from another institution", ms(TRAS, 200, 100, status="completed",
                                              informationSource={"reference": "Organization/outside-hospital"})),
]


@pytest.mark.parametrize("name, resource", REPORTED_HISTORY, ids=[c[0] for c in REPORTED_HISTORY])
def test_reported_or_completed_history_counts_as_therapy_given(name, resource):
    assert summary(resource).therapy.ever_given == {TRAS}


def test_reported_plan_not_yet_active_is_not_history():
    assert summary(mr(TRAS, 200, request_intent="plan", status="draft", reportedBoolean=True)).therapy.ever_given == frozenset()
