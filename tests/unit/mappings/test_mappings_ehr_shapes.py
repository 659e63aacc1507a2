"""Records shaped as Epic and Oracle Health publish FHIR R4 (tests/fixtures/ehr_shapes, see its README):
the facts the mapping reads from them, and the cards the whole pipeline gives (judged like the probe)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from cds_service import pipeline
from cds_service.services import service_for_hook
from cds_service.gather import GatheredRecord
from cds_service.relative_dates import load_json
from fhir_mappings import summarize
from fhir_mappings.model import ReceptorStatus as S
from support import REPO, TODAY, bundle_resources

SHAPES = REPO / "tests" / "fixtures" / "ehr_shapes"


def _judge():
    spec = importlib.util.spec_from_file_location("cds_judge", REPO / "tests" / "integration" / "cds_judge.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.judge


def load(folder: str) -> tuple[list[dict], dict]:
    return (bundle_resources(load_json(SHAPES / folder / "bundle.json", TODAY)),
            load_json(SHAPES / folder / "cases.json", TODAY))


def test_epic_shape_facts():
    resources, cases = load("epic-her2-positive-second-line")
    s = summarize(resources, cases["patient"], TODAY)
    assert s.breast_cancer.present and s.metastatic.metastatic and s.metastatic.sites == ()
    assert s.her2.status == S.POSITIVE and s.her2.method in ("ISH", "interpretation")
    assert (s.er.status, s.pr.status) == (S.NEGATIVE, S.NEGATIVE)
    assert s.therapy.ever_given >= {"224905", "72962", "40048"} and s.therapy.metastatic_lines == 1
    assert s.lvef.latest.value == 58
    assert s.unmapped == () and s.skipped == ()


def test_epic_shape_without_the_medication_resources_reports_each_unread_medication():
    resources, cases = load("epic-her2-positive-second-line")
    s = summarize([r for r in resources if r["resourceType"] != "Medication"], cases["patient"], TODAY)
    # the references carry displays: identified by name and said so; nothing silently dropped
    assert s.therapy.ever_given >= {"224905", "72962", "40048"}
    assert {n.source for n in s.notes} == {"MedicationRequest/e1-epic-mr-tras", "MedicationRequest/e1-epic-mr-doce",
                                          "MedicationRequest/e1-epic-mr-carbo", "MedicationAdministration/e1-epic-ma-tras"}


def test_oracle_health_shape_facts():
    resources, cases = load("oracle-health-her2-negative")
    s = summarize(resources, cases["patient"], TODAY)
    assert s.her2.status == S.NEGATIVE and "1.3" in s.her2.detail
    assert (s.er.status, s.pr.status) == (S.POSITIVE, S.POSITIVE)
    assert [site.site for site in s.metastatic.sites] == ["bone"]
    assert "194000" in s.therapy.ever_given          # outside-institution statement counts
    assert s.metastatic.sites[0].display == "Secondary malignant neoplasm of bone"


def _cases():
    out = []
    for folder in sorted(p.name for p in SHAPES.iterdir() if p.is_dir()):
        _, spec = load(folder)
        out += [pytest.param(folder, case, id=f"{spec['id']}/{case['hook']}/{case['name'][:40]}") for case in spec["cases"]]
    return out


@pytest.mark.parametrize("folder, case", _cases())
def test_ehr_shaped_record_gives_the_expected_cards(folder, case):
    resources, spec = load(folder)
    context = {"userId": "Practitioner/u", "patientId": spec["patient"]}
    if "draftOrders_bundle" in case:
        context["draftOrders"] = case["draftOrders_bundle"]
        context["selections"] = [f"MedicationRequest/{e['resource']['id']}" for e in case["draftOrders_bundle"]["entry"]
                                 if e["resource"]["resourceType"] == "MedicationRequest"]
    evaluation = pipeline.evaluate(service_for_hook(case["hook"]), context, GatheredRecord(spec["patient"], tuple(resources)),
                                   today=TODAY)
    cards, counts = evaluation.cards, evaluation.issue_counts
    assert _judge()(cards, case["expect"]) == [], json.dumps(cards, indent=1)[:3000]
    assert counts["unreadable"] == 0 and counts["unmapped"] == 0
    assert counts["drafts_unread"] == case.get("drafts_unread", 0)    # a case about an unidentifiable draft says so


def test_unread_draft_next_to_a_readable_one_is_said_on_the_cards_and_counted():
    resources, spec = load("epic-her2-positive-second-line")
    drafts = [{"resourceType": "MedicationRequest", "id": "d-doxo", "status": "draft", "intent": "order",
               "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                         "code": "3639"}]}},
              {"resourceType": "MedicationRequest", "id": "d-unknown", "status": "draft", "intent": "order",
               "medicationReference": {"reference": "Medication/not-sent", "display": "investigational anthracycline XY-7"}}]
    evaluation = pipeline.evaluate(service_for_hook("order-select"), {"userId": "Practitioner/u", "patientId": spec["patient"],
                                               "draftOrders": {"resourceType": "Bundle",
                                                               "entry": [{"resource": d} for d in drafts]}},
                                   GatheredRecord(spec["patient"], tuple(resources)), today=TODAY)
    cards, counts = evaluation.cards, evaluation.issue_counts
    assert cards and counts["drafts_unread"] == 1
    assert all("Medication/not-sent" in c["detail"] and "probably an anthracycline" in c["detail"] for c in cards)


CODINGS_CASES = [
    # (name, concept, (system, code, display) read)
    ("one coding", {"coding": [{"system": " http://loinc.org ", "code": " 1-8 ", "display": "X"}]}, [("http://loinc.org", "1-8", "X")]),
    ("no display", {"coding": [{"system": "s", "code": "c"}]}, [("s", "c", "")]),
    ("blank code", {"coding": [{"system": "s", "code": "  ", "display": "X"}]}, []),
    ("numeric code", {"coding": [{"system": "s", "code": 12, "display": "X"}]}, [("s", "12", "X")]),
    ("no system", {"coding": [{"code": "c", "display": "X"}]}, [("", "c", "X")]),
    ("display not text", {"coding": [{"system": "s", "code": "c", "display": 5}]}, [("s", "c", "")]),
    ("two codings", {"coding": [{"system": "a", "code": "1"}, {"system": "b", "code": "2", "display": "Y"}]},
     [("a", "1", ""), ("b", "2", "Y")]),
    ("coding as one object", {"coding": {"system": "s", "code": "c"}}, [("s", "c", "")]),
    ("list of concepts", [{"coding": [{"system": "s", "code": "c"}]}, None, {"coding": [{"code": "d"}]}],
     [("s", "c", ""), ("", "d", "")]),
    ("not a coding", {"coding": ["c"]}, []),
    ("no codings", {"coding": []}, []),
    ("no concept", None, []),
]


@pytest.mark.parametrize("name, concept, read", CODINGS_CASES, ids=[c[0] for c in CODINGS_CASES])
def test_codings_reads_every_usable_coding_of_any_shape(name, concept, read):
    from fhir_mappings.fhir_json import codings
    assert codings(concept) == tuple(read)


ODD_CONCEPT_CASES = [
    # (name, concept, read): shapes the one-coding lookups of `codings` refuse, read the general way
    ("coding as an object with one key", {"coding": {"code": "c"}}, [("", "c", "")]),
    ("coding as a one-letter string", {"coding": "c"}, []),
    ("a one-letter string", "c", []),
    ("a number", 5, []),
    ("a list of one concept", [{"coding": [{"code": "c", "display": "X"}]}], [("", "c", "X")]),
    ("a coding that is a list", {"coding": [[{"code": "c"}]]}, []),
    ("a coding without a code", {"coding": [{"system": "s", "display": "X"}]}, []),
    ("no coding", {"text": "X"}, []),
]


@pytest.mark.parametrize("name, concept, read", ODD_CONCEPT_CASES, ids=[c[0] for c in ODD_CONCEPT_CASES])
def test_codings_of_odd_shapes_are_what_the_general_reader_reads(name, concept, read):
    from fhir_mappings.fhir_json import _codings, codings
    assert codings(concept) == tuple(_codings(concept)) == tuple(read)


@pytest.mark.parametrize("name, concept, read", CODINGS_CASES + ODD_CONCEPT_CASES,
                         ids=[c[0] for c in CODINGS_CASES + ODD_CONCEPT_CASES])
@pytest.mark.parametrize("text", [None, "", "Typed text", 5])
def test_all_text_of_one_concept_is_what_the_general_reader_reads(name, concept, read, text):
    from fhir_mappings.fhir_json import all_text
    if isinstance(concept, dict):
        concept = {**concept, "text": text}
    assert all_text(concept) == all_text([concept] if isinstance(concept, dict) else concept)
    if isinstance(concept, dict):                   # the general reader, by hand: text, then every display
        displays = [d for _, _, d in read if d]
        assert all_text(concept) == " ; ".join(([text] if isinstance(text, str) and text else []) + displays)


ONE_CODING_CASES = [
    # (name, the one coding) read from the process-wide cache, or passed over to the general reader
    ("strings", {"system": " http://loinc.org ", "code": " 1-8 ", "display": "X"}),
    ("blank code", {"system": "s", "code": " "}),
    ("more keys", {"system": "s", "code": "c", "version": "2024", "userSelected": True}),
    ("display not text", {"system": "s", "code": "c", "display": 5}),
    ("system not text", {"system": 1, "code": "c"}),
    ("integer code", {"system": "s", "code": 1}),
    ("boolean code", {"system": "s", "code": True}),
    ("float code", {"system": "s", "code": 1.0}),
    ("list display", {"system": "s", "code": "c", "display": ["X"]}),
    ("no code", {"system": "s", "display": "X"}),
    ("not an object", "c"),
    ("a list", [{"system": "s", "code": "c"}]),
]


@pytest.mark.parametrize("name, coding", ONE_CODING_CASES, ids=[c[0] for c in ONE_CODING_CASES])
def test_codings_of_one_coding_are_what_the_general_reader_reads(name, coding):
    from fhir_mappings.fhir_json import _codings, codings
    for _ in range(2):                      # the second call is answered from the cache
        assert codings({"coding": [coding]}) == tuple(_codings({"coding": [coding]}))


def test_codings_of_equal_numbers_are_not_mixed_up():
    from fhir_mappings.fhir_json import codings
    assert codings({"coding": [{"system": "s", "code": 1}]}) == (("s", "1", ""),)
    assert codings({"coding": [{"system": "s", "code": True}]}) == ()
    assert codings({"coding": [{"system": "s", "code": 1.0}]}) == ()


@pytest.mark.parametrize("name, concept, read", CODINGS_CASES[:-2], ids=[c[0] for c in CODINGS_CASES[:-2]])
@pytest.mark.parametrize("text", [None, "", "Typed text", 5])
def test_coded_text_of_a_concept_is_its_all_text(name, concept, read, text):
    from fhir_mappings.fhir_json import all_text, coded_text, codings
    if isinstance(concept, dict):
        concept = {**concept, "text": text}
    else:
        concept = {"coding": [c for cc in concept if isinstance(cc, dict) for c in cc["coding"]], "text": text}
    assert coded_text(text if isinstance(text, str) else "", codings(concept)) == all_text(concept)
