"""Records shaped as EHRs send them, read by the service from a real sekmet-fhir (issue 10, HTTP half).

Shapes and where they come from:
- Drugs named only through `medicationReference` -> `Medication/<id>` held on the server: US Core
  MedicationRequest profile (http://hl7.org/fhir/us/core/StructureDefinition-us-core-medicationrequest.html:
  "if an external reference to Medication is used, the server SHALL support the include parameter"),
  the shape Epic's MedicationRequest / MedicationAdministration use. Built here from the shared
  scenarios by moving each `medicationCodeableConcept` into a Medication resource.
- LVEF as a `component` of an echo report Observation: FHIR R4 Observation.component and the
  `component-code` search parameter (http://hl7.org/fhir/R4/observation.html#search). The panel's own
  code is a test-local code system (example.org), since no echo panel LOINC code is verified for us.

The scenarios' clinical expectations must still hold in both data paths once the drugs are references:
the trastuzumab history is what makes S01 recommend T-DXd and S07 warn about doxorubicin.
"""
from __future__ import annotations

import copy
import json
import re
import time
from typing import Any

import pytest
import requests

from cds_judge import judge
from cds_service.config import load_settings
from cds_service.fhir_client import SessionPool
from cds_service.gather import Gatherer
from cds_service.services import SERVICES
from hook_calls import call, hook_body, prefetch_for, context_for
from sandbox import loader
from support import SCENARIOS, TODAY, load_scenario, require_shared

pytestmark = pytest.mark.integration

PREFIX = "e2ref-"
MEDICATION_TYPES = ("MedicationRequest", "MedicationAdministration", "MedicationStatement")
LVEF_CODES = {"10230-1", "18043-0", "8806-2"}
ECHO_PANEL = {"coding": [{"system": "http://example.org/fhir/CodeSystem/test-local-echo", "code": "echo-report",
                          "display": "Echocardiogram report"}], "text": "Echocardiogram report"}
SCENARIO_CASES = ["S01-2l-after-tch-liver-mets", "S07-doxorubicin-within-washout"]


def _renamed(value: Any) -> Any:
    """Every `Type/id` reference of the record, pointed at the prefixed ids."""
    if isinstance(value, dict):
        out = {k: _renamed(v) for k, v in value.items()}
        ref = out.get("reference")
        if isinstance(ref, str) and re.fullmatch(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]+", ref):
            rtype, rid = ref.split("/")
            out["reference"] = f"{rtype}/{PREFIX}{rid}"
        return out
    if isinstance(value, list):
        return [_renamed(v) for v in value]
    return value


def ehr_shaped(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same record, with drugs as referenced Medications and LVEF inside an echo report panel."""
    out: list[dict[str, Any]] = []
    medications: dict[str, dict[str, Any]] = {}
    for original in resources:
        resource = _renamed(copy.deepcopy(original))
        resource["id"] = PREFIX + resource["id"]
        concept = resource.get("medicationCodeableConcept")
        if resource["resourceType"] in MEDICATION_TYPES and isinstance(concept, dict):
            code = concept["coding"][0]["code"]
            mid = f"{PREFIX}med-{code}"
            medications.setdefault(mid, {"resourceType": "Medication", "id": mid, "code": concept})
            del resource["medicationCodeableConcept"]
            # no `display`: the drug must come from the Medication itself (a display would be matched by name)
            resource["medicationReference"] = {"reference": f"Medication/{mid}"}
        if resource["resourceType"] == "Observation" and \
                {c.get("code") for c in resource.get("code", {}).get("coding", [])} & LVEF_CODES:
            value = {k: resource.pop(k) for k in list(resource) if k.startswith("value")}
            resource["component"] = [{"code": resource["code"], **value}]
            resource["code"] = ECHO_PANEL
        out.append(resource)
    return out + list(medications.values())


def transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                      for r in resources]}


@pytest.fixture(scope="module")
def ehr_records(fhir_server: str) -> dict[str, tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """Scenario folder -> (patient id, cases.json, the EHR-shaped resources loaded into sekmet)."""
    require_shared(SCENARIOS)
    records = {}
    for folder in SCENARIO_CASES:
        resources, spec = load_scenario(SCENARIOS / folder, TODAY)
        shaped = ehr_shaped(resources)
        loader.load_bundle(fhir_server, transaction(shaped), name=f"{folder} (EHR-shaped)")
        records[folder] = (PREFIX + spec["patient"], spec, shaped)
    return records


def gatherer(**settings: Any) -> Gatherer:
    return Gatherer(load_settings({"fhir_deadline_seconds": 10, "fhir_timeout_seconds": 5, **settings}),
                    SessionPool())


def ids_of(resources: Any) -> set[str]:
    return {f"{r['resourceType']}/{r['id']}" for r in resources}


# ---------------------------------------------------------------- what the gather step reads from sekmet


def test_fetch_mode_reads_the_referenced_medications_through_include(fhir_server, ehr_records):
    patient, _, shaped = ehr_records["S07-doxorubicin-within-washout"]
    body = {"hook": "patient-view", "hookInstance": "i", "fhirServer": fhir_server,
            "context": {"patientId": patient, "userId": "Practitioner/x"}}
    record, report = gatherer().gather(SERVICES[0], body, [fhir_server])
    wanted = {f"Medication/{r['id']}" for r in shaped if r["resourceType"] == "Medication"}
    assert wanted and wanted <= ids_of(record.resources)
    assert record.gaps == () and "referencedMedications" not in report.fetched   # `_include` sufficed


def test_prefetch_without_the_medications_is_completed_by_id(fhir_server, ehr_records):
    patient, _, shaped = ehr_records["S07-doxorubicin-within-washout"]
    context = context_for("patient-view", patient, [])
    prefetch = prefetch_for(SERVICES[0].discovery(), fhir_server, context)
    for value in prefetch.values():       # a client that prefetched without honouring `_include`
        if value.get("resourceType") == "Bundle":
            value["entry"] = [e for e in value.get("entry", []) if e["resource"]["resourceType"] != "Medication"]
    body = {"hook": "patient-view", "hookInstance": "i", "fhirServer": fhir_server, "context": context,
            "prefetch": prefetch}
    record, report = gatherer().gather(SERVICES[0], body, [fhir_server])
    wanted = {f"Medication/{r['id']}" for r in shaped if r["resourceType"] == "Medication"}
    assert wanted <= ids_of(record.resources)
    assert report.fetched == ("referencedMedications",) and record.gaps == ()


def test_lvef_inside_an_echo_panel_is_found_by_the_component_search(fhir_server, ehr_records):
    patient, _, shaped = ehr_records["S07-doxorubicin-within-washout"]
    echo = {f"Observation/{r['id']}" for r in shaped if r.get("code") == ECHO_PANEL}
    assert echo
    body = {"hook": "patient-view", "hookInstance": "i", "fhirServer": fhir_server,
            "context": {"patientId": patient, "userId": "Practitioner/x"}}
    record, _ = gatherer().gather(SERVICES[0], body, [fhir_server])
    assert echo <= ids_of(record.resources)


def test_sekmet_accepts_every_template_as_written(fhir_server, ehr_records):
    """No `not-supported` warning from sekmet for `_include` or `component-code` (it would add one)."""
    patient, _, _ = ehr_records["S07-doxorubicin-within-washout"]
    for query in SERVICES[0].queries:
        if query.is_read:
            continue
        url = f"{fhir_server}/{query.template.replace('{{context.patientId}}', patient)}"
        strict = requests.get(url, headers={"Prefer": "handling=strict"}, timeout=10)
        assert strict.status_code == 200, (query.key, strict.text[:300])
        lenient = requests.get(url, timeout=10).json()
        outcomes = [e for e in lenient.get("entry", []) if e.get("search", {}).get("mode") == "outcome"]
        assert outcomes == [], (query.key, outcomes)


# ---------------------------------------------------------------- the cards, through the live service


def _cases() -> list[Any]:
    out = []
    for folder in SCENARIO_CASES:
        for mode in ("fetch", "prefetch"):
            out.append(pytest.param(folder, mode, id=f"{folder[:3]}/{mode}"))
    return out


@pytest.mark.parametrize("folder,mode", _cases())
def test_scenario_expectations_hold_when_drugs_are_referenced(fhir_server, live_service, ehr_records, folder, mode):
    patient, spec, _ = ehr_records[folder]
    for case in spec["cases"]:
        drafts = _renamed(copy.deepcopy(case.get("draftOrders", [])))
        service = live_service.service(case["hook"])
        response = call(live_service.base, service, hook_body(service, fhir_server, patient, drafts, mode))
        assert response.status_code == 200, response.text[:500]
        cards = response.json()["cards"]
        assert judge(cards, case["expect"]) == [], (case["name"], [c["summary"] for c in cards])


# ---------------------------------------------------------------- routing against the real HTTP server


@pytest.mark.parametrize("path", ["/cds-services/", f"/cds-services//{SERVICES[0].id}",
                                  f"/cds-services/{SERVICES[0].id}/", f"/cds-services//{SERVICES[0].id}//feedback"])
def test_preflight_with_extra_slashes_reaches_the_real_server(live_service, path):
    response = requests.options(live_service.base + path, timeout=10, headers={
        "Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert 200 <= response.status_code < 300 and response.headers.get("Access-Control-Allow-Origin")


def test_discovery_with_a_trailing_slash_on_the_real_server(live_service):
    response = requests.get(live_service.base + "/cds-services/", timeout=10)
    assert response.status_code == 200 and len(response.json()["services"]) == 3


def test_hook_call_with_a_doubled_slash_on_the_real_server(fhir_server, live_service, ehr_records):
    patient, _, _ = ehr_records["S07-doxorubicin-within-washout"]
    service = live_service.service("patient-view")
    response = requests.post(f"{live_service.base}/cds-services//{service['id']}", timeout=15,
                             json=hook_body(service, fhir_server, patient, [], "fetch"))
    assert response.status_code == 200 and isinstance(response.json()["cards"], list)
