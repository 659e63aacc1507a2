"""Breast cancer, distant metastasis (regional nodes and other primaries apart), ILD, heart failure, LVEF."""
from __future__ import annotations

import pytest

from mappings_helpers import ICD10, LOINC, SNOMED, breast, cc, condition, day, observation, summary

BREAST_CASES = [
    ("ICD-10-CM C50.912", condition(ICD10, "C50.912"), True),
    ("ICD-10-CM without dot", condition(ICD10, "C50911"), True),
    ("SNOMED 254837009", condition(SNOMED, "254837009", "Malignant neoplasm of breast"), True),
    ("SNOMED primary left breast", condition(SNOMED, "353431000119107"), True),
    ("SNOMED infiltrating duct carcinoma", condition(SNOMED, "408643008"), True),
    ("SNOMED HER2+ carcinoma of breast", condition(SNOMED, "427685000"), True),
    ("generic malignancy + breast bodySite",
     condition(SNOMED, "363346000", "Malignant neoplastic disease", body_site=cc(SNOMED, "80248007", "Left breast")), True),
    ("generic malignancy, no site", condition(SNOMED, "363346000", "Malignant neoplastic disease"), False),
    ("personal history of breast cancer Z85.3", condition(ICD10, "Z85.3"), True),
    ("family history of breast cancer", condition(SNOMED, "429740004", "Family history of malignant neoplasm of breast"), False),
    ("carcinoma in situ", condition(ICD10, "D05.10", "Intraductal carcinoma in situ of unspecified breast"), False),
    ("lung cancer", condition(ICD10, "C34.90", "Malignant neoplasm of lung"), False),
    ("refuted breast cancer", condition(ICD10, "C50.912", verification="refuted"), False),
    ("entered-in-error breast cancer", condition(ICD10, "C50.912", verification="entered-in-error"), False),
    ("Synthea 'Neoplasm of breast' may be benign", condition(SNOMED, "126926005", "Neoplasm of breast (disorder)"), False),
    ("uncoded text", {"resourceType": "Condition", "id": "t", "subject": {"reference": "Patient/p1"},
                      "code": {"text": "Invasive ductal carcinoma of the left breast"}}, True),
]


@pytest.mark.parametrize("name, cond, present", BREAST_CASES, ids=[c[0] for c in BREAST_CASES])
def test_breast_cancer_presence(name, cond, present):
    assert summary(cond).breast_cancer.present is present


def test_other_primaries_are_listed_apart_with_onset_of_breast_cancer():
    s = summary(breast(onset=300), condition(ICD10, "C34.90", "Malignant neoplasm of lung"))
    assert s.breast_cancer.onset == day(300)
    assert s.breast_cancer.other_primaries == ("Malignant neoplasm of lung",)


METASTASIS_CASES = [
    # (name, condition, metastatic, site, cns)
    ("liver C78.7", condition(ICD10, "C78.7"), True, "liver", False),
    ("bone C79.51", condition(ICD10, "C79.51"), True, "bone", False),
    ("lung C78.01", condition(ICD10, "C78.01"), True, "lung", False),
    ("brain C79.31", condition(ICD10, "C79.31"), True, "brain", True),
    ("meninges C79.32", condition(ICD10, "C79.32"), True, "cerebral meninges", True),
    ("nervous system C79.49", condition(ICD10, "C79.49"), True, "nervous system", True),
    ("brain SNOMED 94225005", condition(SNOMED, "94225005"), True, "brain", True),
    ("liver SNOMED 94381002", condition(SNOMED, "94381002"), True, "liver", False),
    ("bone SNOMED 94222008", condition(SNOMED, "94222008"), True, "bone", False),
    ("distant nodes C77.1", condition(ICD10, "C77.1"), True, "distant lymph node", False),
    ("axillary nodes C77.3 are regional", condition(ICD10, "C77.3"), False, None, False),
    ("axillary nodes SNOMED 94181007 are regional", condition(SNOMED, "94181007"), False, None, False),
    ("refuted brain metastasis", condition(ICD10, "C79.31", verification="refuted"), False, None, False),
    ("text-only secondary", {"resourceType": "Condition", "id": "x", "code": {"text": "Metastatic carcinoma to liver"}},
     True, "liver", False),
]


@pytest.mark.parametrize("name, cond, metastatic, site, cns", METASTASIS_CASES, ids=[c[0] for c in METASTASIS_CASES])
def test_distant_metastasis_from_secondary_cancer_conditions(name, cond, metastatic, site, cns):
    met = summary(breast(), cond).metastatic
    assert met.metastatic is metastatic
    if site:
        assert met.sites[0].site == site and met.brain is cns


def test_first_known_date_is_the_earliest_metastatic_evidence():
    met = summary(breast(), condition(ICD10, "C78.7", onset=200), condition(ICD10, "C79.31", onset=30)).metastatic
    assert met.first_known == day(200) and met.brain
    assert [s.site for s in met.sites] == ["liver", "brain"]


def test_recorded_date_is_used_when_onset_is_missing():
    cond = condition(ICD10, "C78.7", onset=None, recordedDate="2026-02-03")
    assert summary(breast(), cond).metastatic.first_known.isoformat() == "2026-02-03"


def test_metastasis_linked_to_a_non_breast_primary_is_not_breast_metastasis():
    nsclc = condition(SNOMED, "254637007", "Non-small cell lung cancer", id="nsclc")
    brain = condition(SNOMED, "94225005", related="nsclc")
    met = summary(breast(), nsclc, brain).metastatic
    assert not met.metastatic and not met.brain


def test_metastasis_linked_to_the_breast_primary_counts():
    met = summary(breast(id="bc"), condition(ICD10, "C79.31", related="bc")).metastatic
    assert met.metastatic and met.brain


def test_axillary_nodes_with_distant_site_count_only_the_distant_site():
    met = summary(breast(), condition(ICD10, "C77.3", onset=300), condition(ICD10, "C78.7", onset=50)).metastatic
    assert met.first_known == day(50) and [s.site for s in met.sites] == ["liver"]


@pytest.mark.parametrize("stage, metastatic", [
    (cc("http://cancerstaging.org", "IV"), True),
    (cc(SNOMED, "1222806003", "American Joint Committee on Cancer stage IIIC (qualifier value)"), False),
    ({"text": "Stage IV"}, True),
    ({"text": "Stage IIB"}, False),
])
def test_stage_iv_on_the_breast_condition(stage, metastatic):
    cond = condition(ICD10, "C50.912", onset=100, stage=stage)
    met = summary(cond).metastatic
    assert met.metastatic is metastatic
    if metastatic:
        assert met.first_known == day(100) and "stage IV" in met.evidence


@pytest.mark.parametrize("code, value, metastatic", [
    ("21908-9", cc("http://cancerstaging.org", "IV", "Stage IV"), True),
    ("399537006", cc(SNOMED, "1222769001", "American Joint Committee on Cancer stage IIB (qualifier value)"), False),
    ("21907-1", cc("http://cancerstaging.org", "cM1", "cM1"), True),
    ("399387003", cc(SNOMED, "1229901006", "American Joint Committee on Cancer cM0 (qualifier value)"), False),
    ("21901-4", {"text": "pM1"}, True),
])
def test_stage_group_and_m_category_observations(code, value, metastatic):
    system = SNOMED if code.startswith("3") else LOINC
    obs = observation(code, system=system, days=60, valueCodeableConcept=value)
    met = summary(breast(), obs).metastatic
    assert met.metastatic is metastatic
    if metastatic:
        assert met.first_known == day(60)


def test_mcode_history_of_metastatic_cancer_observation():
    obs = observation("1", system=SNOMED, days=90, meta={"profile": [
        "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-history-of-metastatic-cancer"]})
    met = summary(breast(), obs).metastatic
    assert met.metastatic and met.first_known == day(90) and "history of metastatic" in met.evidence


ILD_CASES = [
    ("J84.9", ICD10), ("J84.10", ICD10), ("J84.89", ICD10), ("J70.2", ICD10), ("J70.3", ICD10), ("J70.4", ICD10),
    ("J70.0", ICD10), ("J70.1", ICD10), ("J84.116", ICD10),       # radiation pneumonitis / fibrosis, organising pneumonia
    ("233703007", SNOMED), ("427046006", SNOMED),
]


@pytest.mark.parametrize("code, system", ILD_CASES)
def test_ild_and_pneumonitis_codes(code, system):
    ild = summary(condition(system, code)).ild
    assert len(ild) == 1 and ild[0].kind == "ild" and ild[0].code == code


@pytest.mark.parametrize("code", ["J18.9", "J44.9"])
def test_other_lung_codes_are_not_ild(code):
    assert summary(condition(ICD10, code)).ild == ()


def test_a_code_outside_the_ild_list_is_trusted_over_a_pneumonitis_display():
    assert summary(condition(ICD10, "J18.9", "Pneumonia, unspecified organism (pneumonitis?)")).ild == ()


def test_an_uncoded_ild_text_counts():
    cond = {"resourceType": "Condition", "id": "u", "code": {"text": "Interstitial lung disease (CT 2025)"}}
    assert [f.kind for f in summary(cond).ild] == ["ild"]


@pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
def test_refuted_or_erroneous_ild_is_ignored(verification):
    assert summary(condition(ICD10, "J84.9", verification=verification)).ild == ()


@pytest.mark.parametrize("clinical", ["resolved", "inactive", "remission", "active", ""])
def test_resolved_ild_still_counts_as_history_with_its_clinical_status(clinical):
    ild = summary(condition(ICD10, "J70.4", clinical=clinical)).ild
    assert len(ild) == 1 and ild[0].clinical_status == clinical


def test_unconfirmed_ild_is_kept():
    assert len(summary(condition(ICD10, "J84.9", verification="provisional")).ild) == 1


@pytest.mark.parametrize("code, system, kind", [
    ("I50.32", ICD10, "heart-failure"), ("I50.9", ICD10, "heart-failure"), ("I50.22", ICD10, "heart-failure"),
    ("42343007", SNOMED, "heart-failure"), ("88805009", SNOMED, "heart-failure"),
    ("I42.7", ICD10, "cardiomyopathy"), ("I42.0", ICD10, "cardiomyopathy"), ("85898001", SNOMED, "cardiomyopathy"),
])
def test_heart_failure_and_cardiomyopathy(code, system, kind):
    hf = summary(condition(system, code)).heart_failure
    assert [f.kind for f in hf] == [kind]


def test_hypertensive_heart_disease_without_failure_is_not_heart_failure():
    assert summary(condition(ICD10, "I11.9"), condition(SNOMED, "77970009")).heart_failure == ()


LVEF_CODES = ["10230-1", "18043-0", "8806-2", "77891-0", "77889-4", "8808-8", "8809-6", "18045-5", "8811-2", "79991-6"]


@pytest.mark.parametrize("code", LVEF_CODES)
def test_every_lvef_code_is_read(code):
    lvef = summary(observation(code, valueQuantity={"value": 55, "unit": "%"})).lvef
    assert lvef.latest.value == 55 and lvef.latest.code == code


@pytest.mark.parametrize("value, expected", [
    (dict(valueQuantity={"value": 0.55}), 55.0),
    (dict(valueQuantity={"value": 62, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}), 62.0),
    (dict(valueString="55-60%"), 57.5),
    (dict(valueString="45 %"), 45.0),
    (dict(valueRange={"low": {"value": 50}, "high": {"value": 55}}), 52.5),
    (dict(valueInteger=48), 48.0),
])
def test_lvef_value_shapes(value, expected):
    assert summary(observation("10230-1", **value)).lvef.latest.value == expected


def test_lvef_series_is_chronological_with_baseline_latest_and_drop():
    s = summary(observation("10230-1", days=10, valueQuantity={"value": 48}),
                observation("18043-0", days=400, valueQuantity={"value": 62}),
                observation("10230-1", days=100, valueQuantity={"value": 58}))
    assert [m.value for m in s.lvef.measurements] == [62, 58, 48]
    assert s.lvef.baseline.date == day(400) and s.lvef.latest.date == day(10)
    assert s.lvef.drop_from_baseline == 14


def test_implausible_or_undated_lvef_is_reported_not_used():
    undated = observation("10230-1", valueQuantity={"value": 55})
    del undated["effectiveDateTime"]
    s = summary(observation("10230-1", valueQuantity={"value": 250}), undated)
    assert s.lvef.measurements == ()
    assert len([i for i in s.skipped if "LVEF" in i.problem]) == 2


def test_lvef_in_an_echo_panel_component():
    panel = observation("34552-0", component=[{"code": cc(LOINC, "10230-1"), "valueQuantity": {"value": 51}}])
    assert summary(panel).lvef.latest.value == 51
