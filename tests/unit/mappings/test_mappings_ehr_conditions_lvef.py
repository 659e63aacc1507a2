"""Codes over text for problem-list entries, LVEF inside echo panels, coded terms shown cleanly, and every
unreadable shape either mapped or reported (never silently dropped)."""
from __future__ import annotations

import pytest

from fhir_mappings.fhir_json import clean_display
from mappings_helpers import ICD10, LOINC, PID, RXNORM, SNOMED, iso_day, breast, condition, observation, summary

LOCAL = "urn:oid:1.2.840.114350.1.13.0.1.7.2.707679"


@pytest.mark.parametrize("system, code", [(ICD10, "C50.912"), (ICD10, "C50919"), (SNOMED, "254837009")])
def test_breast_cancer_code_named_metastatic_is_breast_cancer_and_metastatic(system, code):
    s = summary(condition(system, code, "Metastatic breast cancer", id="mbc", onset=200))
    assert s.breast_cancer.present and s.breast_cancer.sources == ("Condition/mbc",)
    assert s.metastatic.metastatic and s.metastatic.sites == ()
    assert "Condition/mbc" in s.metastatic.sources and s.metastatic.first_known is not None


@pytest.mark.parametrize("name", ["Non-metastatic breast cancer", "Breast cancer, no distant metastasis",
                                  "Malignant neoplasm of left breast"])
def test_breast_cancer_code_not_named_metastatic_is_not_metastatic(name):
    s = summary(condition(ICD10, "C50.912", name))
    assert s.breast_cancer.present and not s.metastatic.metastatic


def test_secondary_code_still_wins_over_a_breast_word():
    s = summary(breast(), condition(ICD10, "C79.31", "Brain metastasis from breast cancer"))
    assert [site.site for site in s.metastatic.sites] == ["brain"]


def test_uncoded_metastasis_text_is_still_a_site():
    s = summary(breast(), {"resourceType": "Condition", "id": "t", "subject": {"reference": f"Patient/{PID}"},
                           "code": {"text": "Metastatic carcinoma to liver"}})
    assert [site.site for site in s.metastatic.sites] == ["liver"]


@pytest.mark.parametrize("text", ["LV Ejection Fraction", "LVEF (Biplane)", "Left Ventricular Ejection Fraction",
                                  "EF Simpson's biplane"])
def test_lvef_component_with_a_local_code_is_read_by_its_name(text):
    echo = observation("ECHO1", system=LOCAL, component=[
        {"code": {"coding": [{"system": LOCAL, "code": "RV1"}], "text": "RV Fractional Area Change"},
         "valueQuantity": {"value": 40, "unit": "%"}},
        {"code": {"coding": [{"system": LOCAL, "code": "EF1"}], "text": text},
         "valueQuantity": {"value": 36, "unit": "%"}}])
    echo["code"] = {"coding": [{"system": LOCAL, "code": "ECHO1"}], "text": "Transthoracic echocardiogram"}
    assert summary(echo).lvef.latest.value == 36


def test_lvef_loinc_component_of_an_echo_report_is_read():
    echo = observation("34552-0", component=[{"code": {"coding": [{"system": LOINC, "code": "18043-0"}]},
                                              "valueQuantity": {"value": 36, "unit": "%"}}])
    assert summary(echo).lvef.latest.value == 36



def test_an_echo_report_with_one_unreadable_lvef_component_is_reported_and_none_of_it_used():
    # a range bound too large for a float raises while the second component is read: the first one's value
    # must not be kept from an Observation the summary reports as unreadable
    echo = observation("34552-0", id="echo-1", component=[
        {"code": {"coding": [{"system": LOINC, "code": "18043-0"}]}, "valueQuantity": {"value": 36, "unit": "%"}},
        {"code": {"coding": [{"system": LOINC, "code": "10230-1"}]}, "valueRange": {"low": {"value": 10 ** 400}}}])
    s = summary(echo)
    assert s.lvef.measurements == ()
    assert any(i.source == "Observation/echo-1" and "could not be read" in i.problem for i in s.skipped)

def test_right_ventricular_ef_is_not_lvef():
    obs = observation("X", system=LOCAL, valueQuantity={"value": 30, "unit": "%"})
    obs["code"] = {"text": "RV ejection fraction"}
    assert summary(obs).lvef.measurements == ()


@pytest.mark.parametrize("raw, shown", [
    ("Secondary malignant neoplasm of brain (disorder)", "Secondary malignant neoplasm of brain"),
    ("Absent response to treatment (situation)", "Absent response to treatment"),
    ("Interstitial lung disease (disorder) ;", "Interstitial lung disease"),
    (" ; Heart failure ; Heart failure", "Heart failure"),
])
def test_coded_terms_are_shown_without_semantic_tags_or_stray_separators(raw, shown):
    assert clean_display(raw) == shown


def test_displays_on_facts_are_clean():
    s = summary(breast(), condition(SNOMED, "94225005", "Secondary malignant neoplasm of brain (disorder)"),
                condition(SNOMED, "233703007", "Interstitial lung disease (disorder)"))
    assert s.metastatic.sites[0].display == "Secondary malignant neoplasm of brain"
    assert s.ild[0].display == "Interstitial lung disease"


# --- never a silent empty answer ------------------------------------------------------------------------
def _admin(**medication) -> dict:
    return {"resourceType": "MedicationAdministration", "id": "a", "status": "completed",
            "subject": {"reference": f"Patient/{PID}"}, "effectiveDateTime": iso_day(30), **medication}


UNREADABLE_SHAPES = [
    ("unresolved Medication reference", _admin(medicationReference={"reference": "Medication/gone"})),
    ("reference without target or display", _admin(medicationReference={})),
    ("unknown code, no name", _admin(medicationCodeableConcept={"coding": [{"system": RXNORM, "code": "99999999"}]})),
    ("unknown local code and name", _admin(medicationCodeableConcept={"coding": [{"system": LOCAL, "code": "1"}],
                                                                       "text": "investigational agent XY-12"})),
    ("HER2 text nobody can read", observation("48676-1", valueString="see outside report")),
    ("HER2 value missing", observation("85319-2")),
    ("contradictory HER2 text", observation("48676-1", valueString="HER2 positive, not amplified")),
    ("HER2 local code, unreadable value", {**observation("L", system=LOCAL, valueString="pending review"),
                                          "code": {"text": "HER2 IHC"}}),
    ("HER2 report without results", {"resourceType": "DiagnosticReport", "id": "r", "status": "final",
                                     "subject": {"reference": f"Patient/{PID}"}, "code": {"text": "HER2 FISH"},
                                     "result": [{"reference": "Observation/not-here"}]}),
    ("LVEF without a value", observation("10230-1")),
]


@pytest.mark.parametrize("name, resource", UNREADABLE_SHAPES, ids=[u[0] for u in UNREADABLE_SHAPES])
def test_each_unreadable_shape_is_reported_never_silently_dropped(name, resource):
    s = summary(breast(), resource)
    reported = {i.source for i in s.skipped + s.unmapped}
    assert f"{resource['resourceType']}/{resource['id']}" in reported, (s.skipped, s.unmapped)
