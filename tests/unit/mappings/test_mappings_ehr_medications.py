"""Medications as EHRs send them: referenced Medication resources, drafts' Medications in the draftOrders
Bundle, every product code and name a client sends for our drugs, by-name matches said as information."""
from __future__ import annotations

import pytest

from fhir_mappings import map_draft_orders
from fhir_mappings.model import RX_CAPECITABINE, RX_LAPATINIB, RX_NERATINIB, RX_PERTUZUMAB, RX_TDM1, RX_TDXD, \
    RX_TRASTUZUMAB, RX_TUCATINIB
from fhir_mappings.terminology import drugs_by_name, drugs_by_rxnorm
from mappings_helpers import PID, RXNORM, iso_day, summary

RX_CYCLOPHOSPHAMIDE = "3002"
EPIC_MED_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.2.698288"      # a local (non-RxNorm) medication code system


def medication(mid: str, text: str, *codes: str) -> dict:
    return {"resourceType": "Medication", "id": mid,
            "code": {"coding": [{"system": RXNORM, "code": c} for c in codes] +
                     [{"system": EPIC_MED_SYSTEM, "code": "7001"}], "text": text}}


def administration(aid: str, reference: str, days: int = 60, display: str | None = None, **extra) -> dict:
    ref = {"reference": reference, **({"display": display} if display else {})}
    return {"resourceType": "MedicationAdministration", "id": aid, "status": "completed",
            "subject": {"reference": f"Patient/{PID}"}, "medicationReference": ref,
            "effectiveDateTime": iso_day(days) + "T10:00:00Z", **extra}


# --- codes ------------------------------------------------------------------------------------------
PRODUCT_CODES = [
    # (RxNorm CUI, ingredient(s)) - CUIs from clinical.md §4.2 or openFDA NDC openfda.rxcui (see the data file)
    ("1922509", {RX_TRASTUZUMAB}), ("2119714", {RX_TRASTUZUMAB}), ("2119715", {RX_TRASTUZUMAB}),
    ("2375543", {RX_TRASTUZUMAB}), ("2107053", {RX_TRASTUZUMAB}), ("2280737", {RX_TRASTUZUMAB}),
    ("2289232", {RX_TRASTUZUMAB}), ("2382604", {RX_PERTUZUMAB, RX_TRASTUZUMAB}),
    ("2383305", {RX_PERTUZUMAB, RX_TRASTUZUMAB}), ("2382597", {RX_PERTUZUMAB}), ("1298948", {RX_PERTUZUMAB}),
    ("1658084", {RX_TDM1}), ("1658087", {RX_TDM1}), ("1658091", {RX_TDM1}), ("2267581", {RX_TDXD}),
    ("2361290", {RX_TUCATINIB}), ("2361296", {RX_TUCATINIB}), ("2361300", {RX_TUCATINIB}),
    ("672149", {RX_LAPATINIB}), ("481474", {RX_LAPATINIB}), ("1940648", {RX_NERATINIB}), ("1940642", {RX_NERATINIB}),
    ("200327", {RX_CAPECITABINE}), ("200328", {RX_CAPECITABINE}), ("213293", {RX_CAPECITABINE}),
    ("1734917", {RX_CYCLOPHOSPHAMIDE}), ("1734919", {RX_CYCLOPHOSPHAMIDE}), ("1437968", {RX_CYCLOPHOSPHAMIDE}),
]


@pytest.mark.parametrize("code, ingredients", PRODUCT_CODES, ids=[c[0] for c in PRODUCT_CODES])
def test_product_code_rolls_up_to_its_ingredients(code, ingredients):
    assert {d.rxnorm for d in drugs_by_rxnorm(code)} == ingredients


def test_rxnorm_oid_system_is_rxnorm():
    s = summary({"resourceType": "MedicationStatement", "id": "m", "status": "completed",
                 "subject": {"reference": f"Patient/{PID}"}, "effectivePeriod": {"start": iso_day(90), "end": iso_day(30)},
                 "medicationCodeableConcept": {"coding": [{"system": "urn:oid:2.16.840.1.113883.6.88", "code": "672149"}]}})
    assert s.therapy.ever_given == {RX_LAPATINIB} and s.notes == ()


NAMES = [
    ("trastuzumab-hyaluronidase-oysk", {RX_TRASTUZUMAB}),
    ("Trastuzumab and hyaluronidase-oysk (HERCEPTIN HYLECTA) 600 mg-10,000 unit/5 mL subcutaneous", {RX_TRASTUZUMAB}),
    ("pertuzumab, trastuzumab, and hyaluronidase-zzxf (PHESGO) 1,200-600 mg", {RX_PERTUZUMAB, RX_TRASTUZUMAB}),
    ("fam-trastuzumab deruxtecan-nxki (ENHERTU) 100 mg IV", {RX_TDXD}),
    ("ado-trastuzumab (KADCYLA) 160 mg", {RX_TDM1}),
    ("Trastuzumab Injection [KADCYLA]", {RX_TDM1}),
    ("trastuzumab-anns (KANJINTI) 420 mg in sodium chloride 0.9 % 250 mL IVPB", {RX_TRASTUZUMAB}),
    ("trastuzumab-strf 150 MG", {RX_TRASTUZUMAB}),
    ("trastuzumab-abcd 420 MG (a biosimilar suffix not yet in the table)", {RX_TRASTUZUMAB}),
    ("lapatinib ditosylate 250 MG Oral Tablet", {RX_LAPATINIB}),
    ("neratinib maleate 40 mg tablet", {RX_NERATINIB}),
    ("TUKYSA 150 mg tablet", {RX_TUCATINIB}),
    ("CAPEcitabine 500 MG tablet", {RX_CAPECITABINE}),
    ("cyclophosphamide 50 MG Oral Capsule", {RX_CYCLOPHOSPHAMIDE}),
    ("DOXOrubicin liposomal 20 mg/10 mL", {"214525"}),
]


@pytest.mark.parametrize("text, ingredients", NAMES, ids=[n[0][:40] for n in NAMES])
def test_suffixes_salts_and_dose_strings_do_not_defeat_name_matching(text, ingredients):
    assert {d.rxnorm for d in drugs_by_name(text)} == ingredients


def test_by_name_match_is_information_not_a_gap():
    s = summary(medication("m1", "trastuzumab-anns (KANJINTI) 420 mg IVPB"), administration("a1", "Medication/m1"))
    assert s.therapy.ever_given == {RX_TRASTUZUMAB}
    assert s.unmapped == () and len(s.notes) == 1 and "identified by name" in s.notes[0].problem


# --- referenced Medication resources ------------------------------------------------------------------
@pytest.mark.parametrize("reference", ["Medication/m1", "https://ehr.example/api/FHIR/R4/Medication/m1",
                                       "Medication/m1/_history/3"])
def test_medication_reference_resolves_against_gathered_medications(reference):
    s = summary(medication("m1", "trastuzumab 150 MG Injection", "1922509"), administration("a1", reference))
    (e,) = s.therapy.exposures
    assert e.drug.rxnorm == RX_TRASTUZUMAB and s.unmapped == () and s.notes == ()


def test_contained_medication_is_resolved():
    a = administration("a1", "#med", contained=[medication("med", "epirubicin 2 MG/ML", "1732186")])
    assert summary(a).therapy.ever_given == {"3995"}


def test_medication_with_only_ingredients_is_resolved():
    med = {"resourceType": "Medication", "id": "mix", "code": {"text": "TCH premix (compounded)"},
           "ingredient": [{"itemCodeableConcept": {"coding": [{"system": RXNORM, "code": "224905"}]}},
                          {"itemCodeableConcept": {"coding": [{"system": RXNORM, "code": "72962"}]}}]}
    assert summary(med, administration("a1", "Medication/mix")).therapy.ever_given == {RX_TRASTUZUMAB, "72962"}


def test_unresolved_reference_is_reported_with_its_date_not_dropped():
    s = summary(administration("a1", "Medication/missing", days=40))
    assert s.therapy.exposures == ()
    (issue,) = s.unmapped
    assert issue.source == "MedicationAdministration/a1" and "Medication/missing" in issue.problem
    assert iso_day(40) in issue.problem


def test_unresolved_reference_with_a_display_is_identified_by_name_and_said():
    s = summary(administration("a1", "Medication/missing", display="trastuzumab-dkst (OGIVRI) 420 mg"))
    assert s.therapy.ever_given == {RX_TRASTUZUMAB}
    assert "not found" in s.notes[0].problem and "identified by name" in s.notes[0].problem


# --- drafts -------------------------------------------------------------------------------------------
def _draft(did: str, reference: str) -> dict:
    return {"resourceType": "MedicationRequest", "id": did, "status": "draft", "intent": "order",
            "subject": {"reference": f"Patient/{PID}"}, "medicationReference": {"reference": reference}}


def test_draft_resolves_against_medication_entries_of_the_same_bundle():
    bundle = {"resourceType": "Bundle", "entry": [{"resource": _draft("d1", "Medication/epi")},
                                                  {"resource": medication("epi", "EPIrubicin 2 mg/mL", "1732186")}]}
    drafts, issues = map_draft_orders(bundle, None)
    assert [d.resource_id for d in drafts] == ["MedicationRequest/d1"]
    assert [x.rxnorm for x in drafts[0].drugs] == ["3995"] and issues == []


def test_draft_resolves_against_a_bundle_full_url():
    bundle = {"resourceType": "Bundle", "entry": [
        {"fullUrl": "urn:uuid:5d1e", "resource": {**medication("x", "DOXOrubicin 2 mg/mL", "1790099"), "id": None}},
        {"resource": _draft("d1", "urn:uuid:5d1e")}]}
    drafts, _ = map_draft_orders(bundle, None)
    assert [x.rxnorm for x in drafts[0].drugs] == ["3639"]


def test_draft_resolves_against_medications_gathered_with_the_record():
    drafts, _ = map_draft_orders({"resourceType": "Bundle", "entry": [{"resource": _draft("d1", "Medication/t")}]},
                                 None, {"t": medication("t", "trastuzumab", "224905")})
    assert [x.rxnorm for x in drafts[0].drugs] == [RX_TRASTUZUMAB]


def test_unresolvable_draft_is_reported():
    drafts, issues = map_draft_orders({"resourceType": "Bundle", "entry": [{"resource": _draft("d1", "Medication/zz")}]},
                                      None)
    assert drafts[0].unmapped and "Medication/zz" in issues[0].problem and not issues[0].info


@pytest.mark.parametrize("concept, hint, candidates", [
    ({"coding": [{"system": "http://www.whocc.no/atc", "code": "L01DB99"}]}, "an anthracycline",
     {"doxorubicin", "epirubicin", "idarubicin", "mitoxantrone"}),
    ({"coding": [{"system": "http://www.whocc.no/atc", "code": "L01FD99"}]}, "a HER2-targeted antibody or conjugate",
     {"trastuzumab", "pertuzumab", "ado-trastuzumab emtansine", "fam-trastuzumab deruxtecan"}),
    ({"coding": [{"system": "http://www.whocc.no/atc", "code": "L01CD99"}]}, "a taxane", {"docetaxel", "paclitaxel"}),
    ({"text": "investigational anthracycline XY-7"}, "an anthracycline",
     {"doxorubicin", "epirubicin", "idarubicin", "mitoxantrone"}),
    ({"text": "pixantrone-free valrubicin analogue"}, "an anthracycline",
     {"doxorubicin", "epirubicin", "idarubicin", "mitoxantrone"}),
    ({"text": "cabazitaxel 60 mg/1.5 mL injection"}, "a taxane", {"docetaxel", "paclitaxel"}),
    ({"text": "investigational anti-HER2 antibody ZW-1"}, "a HER2-targeted agent",
     {"trastuzumab", "pertuzumab", "ado-trastuzumab emtansine", "fam-trastuzumab deruxtecan", "tucatinib",
      "lapatinib", "neratinib"}),
])
def test_unidentified_draft_of_a_known_oncology_class_says_what_it_probably_is(concept, hint, candidates):
    draft = {"resourceType": "MedicationRequest", "id": "d", "status": "draft", "intent": "order",
             "medicationCodeableConcept": concept}
    drafts, issues = map_draft_orders({"resourceType": "Bundle", "entry": [{"resource": draft}]}, None)
    assert drafts[0].unmapped and f"probably {hint}" in issues[0].problem and "by hand" in issues[0].problem
    assert {d.name for d in drafts[0].probable_class.candidates} == candidates     # the known drugs it is checked as


def test_unidentified_draft_of_no_recognisable_class_has_no_candidates():
    draft = {"resourceType": "MedicationRequest", "id": "d", "status": "draft", "intent": "order",
             "medicationCodeableConcept": {"coding": [{"system": "urn:oid:1.2.3", "code": "99123"}],
                                           "text": "XYZ-123 injection"}}
    drafts, issues = map_draft_orders({"resourceType": "Bundle", "entry": [{"resource": draft}]}, None)
    assert drafts[0].unmapped and drafts[0].probable_class is None and not issues[0].info
