"""The demo patients are valid, self-contained FHIR R4 transaction Bundles that never go stale."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class

from cds_service.relative_dates import load_json
from support import SANDBOX, TODAY

PATIENTS = sorted((SANDBOX / "patients").glob("*.json"))
DRAFTS = sorted((SANDBOX / "drafts").glob("*.json"))
CASES = sorted((SANDBOX / "cases").glob("*.json"))
EXPECT_KEYS = {"topics_required", "topics_forbidden", "recommended", "alternatives_include", "not_recommended", "no_regimen"}
TOPICS = {"her2-next-regimen", "anthracycline-her2-cardiotoxicity", "ild-pneumonitis", "lvef-monitoring",
          "her2-status-unknown", "her2-blockade-gap", "tdxd-not-offered", "first-line-restart"}
REQUIRED_SITUATIONS = ("2l-after-tch", "early-relapse", "ild", "brain", "anthracycline", "her2-negative")


def _number(path: Path) -> str:
    return re.match(r"demo-(\d+)", path.name).group(1)


def _references(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def test_there_are_at_least_six_demo_patients_covering_the_main_situations():
    assert len(PATIENTS) >= 6
    for situation in REQUIRED_SITUATIONS:
        assert any(situation in p.name for p in PATIENTS), situation


@pytest.mark.parametrize("path", PATIENTS, ids=lambda p: p.name)
def test_bundle_is_a_transaction_of_puts_at_each_resources_own_id(path):
    bundle = load_json(path, TODAY)
    assert bundle["type"] == "transaction"
    for entry in bundle["entry"]:
        r = entry["resource"]
        assert entry["request"] == {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}


@pytest.mark.parametrize("path", PATIENTS, ids=lambda p: p.name)
def test_every_resource_parses_as_fhir_r4(path):
    bundle = load_json(path, TODAY)
    get_fhir_model_class("Bundle").model_validate(bundle)
    for entry in bundle["entry"]:
        get_fhir_model_class(entry["resource"]["resourceType"]).model_validate(entry["resource"])


@pytest.mark.parametrize("path", PATIENTS, ids=lambda p: p.name)
def test_ids_carry_the_patient_number_and_there_is_exactly_one_patient(path):
    bundle = json.loads(path.read_text(encoding="utf-8"))
    prefix = f"demo-{_number(path)}-"
    assert all(e["resource"]["id"].startswith(prefix) for e in bundle["entry"])
    assert [e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"] == [f"{prefix}pat"]


@pytest.mark.parametrize("path", PATIENTS, ids=lambda p: p.name)
def test_every_reference_resolves_inside_the_bundle(path):
    bundle = json.loads(path.read_text(encoding="utf-8"))
    present = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    assert set(_references(bundle)) <= present


def test_ids_are_unique_across_all_demo_patients():
    ids = [f"{e['resource']['resourceType']}/{e['resource']['id']}"
           for p in PATIENTS for e in json.loads(p.read_text(encoding="utf-8"))["entry"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("path", PATIENTS + DRAFTS, ids=lambda p: p.name)
def test_dates_are_relative_tokens_that_resolve(path):
    text = path.read_text(encoding="utf-8")
    assert "${T" in text
    assert "${" not in json.dumps(load_json(path, TODAY))


@pytest.mark.parametrize("path", DRAFTS, ids=lambda p: p.name)
def test_drafts_are_collections_of_draft_medication_requests_for_a_demo_patient(path):
    bundle = load_json(path, TODAY)
    get_fhir_model_class("Bundle").model_validate(bundle)
    patients = {f"Patient/demo-{_number(p)}-pat" for p in PATIENTS}
    assert bundle["type"] == "collection"
    for entry in bundle["entry"]:
        r = entry["resource"]
        get_fhir_model_class("MedicationRequest").model_validate(r)
        assert (r["status"], r["intent"]) == ("draft", "order")
        assert r["subject"]["reference"] == f"Patient/demo-{_number(path)}-pat" and r["subject"]["reference"] in patients
        assert r["id"].startswith(f"demo-{_number(path)}-draft-")


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_cases_name_an_existing_patient_drafts_and_known_expectations(path):
    spec = json.loads(path.read_text(encoding="utf-8"))
    assert spec["patient"] == f"demo-{_number(path)}-pat"
    for case in spec["cases"]:
        assert case["hook"] in ("patient-view", "order-select", "order-sign")
        assert set(case["expect"]) <= EXPECT_KEYS
        assert set(case["expect"].get("topics_required", {})) | set(case["expect"].get("topics_forbidden", [])) <= TOPICS
        if case["hook"] != "patient-view":
            assert (SANDBOX / case["drafts"]).exists()


@pytest.mark.parametrize("path", PATIENTS, ids=lambda p: p.name)
def test_referenced_resources_come_earlier_in_the_bundle_so_put_each_loading_works(path):
    seen: set[str] = set()
    for entry in json.loads(path.read_text(encoding="utf-8"))["entry"]:
        r = entry["resource"]
        assert set(_references(r)) <= seen, f"{r['resourceType']}/{r['id']} refers forward"
        seen.add(f"{r['resourceType']}/{r['id']}")
