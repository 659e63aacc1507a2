"""GET /cds-services: one service per hook, 2.0-only prefetch templates, valid against the probe schema."""
from __future__ import annotations

import json
import re

import pytest
from jsonschema import Draft202012Validator

from cds_service.services import SERVICES
from fhir_mappings import RELEVANT_OBSERVATION_CODES, observation_search_tokens
from support import SHARED, require_shared

ALLOWED_TOKENS = {"context.patientId", "context.userId", "context.encounterId", "userPractitionerId",
                  "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"}


def services(client) -> list[dict]:
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()["services"]


def test_exactly_one_service_per_hook_with_stable_ids(client):
    by_hook = {s["hook"]: s["id"] for s in services(client)}
    assert by_hook == {"patient-view": "her2-next-regimen-patient-view", "order-select": "her2-order-select",
                       "order-sign": "her2-order-sign"}


def test_discovery_is_valid_against_the_probe_services_schema(client):
    schema_path = require_shared(SHARED / "probe" / "schemas" / "services.schema.json")
    validator = Draft202012Validator(json.loads(schema_path.read_text()))
    assert list(validator.iter_errors(client.get("/cds-services").get_json())) == []


def test_discovery_has_no_empty_values(client):
    def walk(value, path="$"):
        assert value not in (None, "", [], {}), path
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")
    walk(services(client))


def test_services_carry_3_0_version_and_hook_version(client):
    for service in services(client):
        assert service["version"] and service["hookVersion"] == "1.0"


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.id)
def test_prefetch_templates_are_relative_and_use_only_2_0_tokens(service):
    for query in service.queries:
        assert not re.match(r"^[a-z]+://", query.template, re.I)
        assert set(t.strip() for t in re.findall(r"\{\{(.*?)\}\}", query.template)) <= ALLOWED_TOKENS
        assert "draftOrders" not in query.template and "today()" not in query.template


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.id)
def test_every_search_is_by_patient_with_a_page_size(service):
    reads = [q for q in service.queries if q.is_read]
    searches = [q for q in service.queries if not q.is_read]
    assert [q.template for q in reads] == ["Patient/{{context.patientId}}"]
    assert {q.resource_type for q in searches} == {"Condition", "Observation", "DiagnosticReport", "MedicationRequest",
                                                   "MedicationStatement", "MedicationAdministration"}
    for query in searches:
        assert query.template.startswith(f"{query.resource_type}?patient={{{{context.patientId}}}}&")
        assert "&_count=200" in query.template


def test_observation_template_asks_for_exactly_the_codes_the_mapping_reads():
    template = next(q.template for q in SERVICES[0].queries if q.key == "observations")
    codes = re.search(r"code=([^&]+)", template).group(1).split(",")
    assert codes == list(observation_search_tokens())
    assert {c.split("|")[1] for c in codes} == RELEVANT_OBSERVATION_CODES
    for wanted in ("48676-1", "85337-4", "85339-0", "85319-2", "85318-4", "10230-1", "18043-0", "21908-9"):
        assert f"http://loinc.org|{wanted}" in codes
    assert "http://snomed.info/sct|399537006" in codes      # AJCC stage group, SNOMED-coded


def test_required_policy_is_declared_per_query():
    policy = {q.key: q.required for q in SERVICES[0].queries}
    assert policy == {"patient": True, "conditions": True, "observations": True, "observationComponents": False,
                      "labObservations": False, "diagnosticReports": False, "medicationRequests": True, "medicationStatements": True, "medicationAdministrations": False}


def test_fetch_mode_asks_for_locally_coded_lab_results_and_reports():
    """HER2/ER/PR under local codes or text, and receptor DiagnosticReports, are invisible to the LOINC
    `code` search (issue 10): an optional laboratory-category search and a DiagnosticReport search find them."""
    templates = {q.key: q.template for q in SERVICES[0].queries}
    assert templates["labObservations"] == "Observation?patient={{context.patientId}}&category=laboratory&_count=200"
    assert templates["diagnosticReports"] == "DiagnosticReport?patient={{context.patientId}}&_count=200"
