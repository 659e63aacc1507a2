"""The OpenAPI document against the live app, and property-based fuzzing of the live app from it.

A real `her2-cds serve` (auth off so generated calls get past the JWT check, metrics token set),
on loopback. Schemathesis generates calls for every documented operation, valid and invalid, with a
bounded number of examples each; every answer must be documented (status, content type, schema),
no answer may be a 5xx, and every error must be an OperationOutcome. Generated `fhirServer` URLs
are rewritten to a closed loopback port, so fuzzing never reaches beyond this machine.
"""
from __future__ import annotations

import re
import subprocess
from typing import Any, Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from jsonschema import Draft202012Validator
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from cds_service.openapi import build_document
from cds_service.services import ServiceRegistry
from sandbox.runner import start_service
from sandbox.sekmet import free_port, stop_process, wait_for_http

pytestmark = pytest.mark.integration

METRICS_TOKEN = "fuzz-metrics-token"
CLOSED_FHIR = f"http://127.0.0.1:{free_port()}/fhir"      # nothing listens there: a fetch fails at once
MAX_EXAMPLES = 20      # per operation (plus schemathesis's coverage cases): well under a minute in all


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    env = {"HER2CDS_METRICS_TOKEN": METRICS_TOKEN, "HER2CDS_FHIR_TIMEOUT_SECONDS": "0.5",
           "HER2CDS_FHIR_DEADLINE_SECONDS": "1", "HER2CDS_LOG_LEVEL": "WARNING",
           "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics")}
    with open(work / "service.log", "wb") as log:
        process: subprocess.Popen = start_service(port, work, env=env, log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_for_http(base + "/readyz", 90, process):
            pytest.fail("fuzz target did not start: " + (work / "service.log").read_text(errors="replace")[-3000:])
        yield base
    finally:
        stop_process(process, grace=10)
        errors = [line for line in (work / "service.log").read_text(errors="replace").splitlines()
                  if '"internal.error"' in line]
        assert not errors, f"the service logged internal errors while fuzzed: {errors[:3]}"


@pytest.fixture(scope="module")
def document(fuzz_target: str) -> dict[str, Any]:
    return requests.get(fuzz_target + "/openapi.json", timeout=10).json()


# ------------------------------------------------------------------------- the document vs the app


def test_the_document_is_openapi_3_1_with_valid_json_schemas(document):
    assert document["openapi"].startswith("3.1.")
    for name, schema in document["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)


def test_the_document_lists_discovery_each_service_feedback_health_and_metrics(document, fuzz_target):
    discovery = requests.get(fuzz_target + "/cds-services", timeout=10).json()
    expected = {"/cds-services", "/healthz", "/readyz", "/metrics", "/openapi.json"}
    for service in discovery["services"]:
        expected |= {f"/cds-services/{service['id']}", f"/cds-services/{service['id']}/feedback"}
    assert set(document["paths"]) == expected


@pytest.mark.parametrize("path, headers", [
    ("/cds-services", {}), ("/healthz", {}), ("/readyz", {}), ("/openapi.json", {}),
    ("/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"}),
])
def test_each_get_answers_as_documented(document, fuzz_target, path, headers):
    response = requests.get(fuzz_target + path, headers=headers, timeout=10)
    documented = document["paths"][path]["get"]["responses"][str(response.status_code)]
    assert response.status_code == 200
    media, spec = next(iter(documented["content"].items()))
    assert response.headers["Content-Type"].startswith(media)
    if media == "application/json":     # `#/components/...` references resolve inside the wrapped schema
        schema = {**spec["schema"], "components": document["components"]}
        assert not list(Draft202012Validator(schema).iter_errors(response.json()))


# --------------------------------------------------------------------------------------- fuzzing


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: Any) -> None:
    """Loopback only: a generated fhirServer (e.g. `http://a`) is replaced by a closed local port before
    any call is sent, generated or re-sent by a check."""
    if isinstance(case.body, dict) and "fhirServer" in case.body:
        case.body["fhirServer"] = CLOSED_FHIR


@schemathesis.check
def errors_are_operation_outcomes(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            raise AssertionError(f"{response.status_code} answered with a non-JSON body") from None
        if not (isinstance(body, dict) and body.get("resourceType") == "OperationOutcome" and body.get("issue")):
            raise AssertionError(f"{response.status_code} answered without an OperationOutcome: {str(body)[:200]}")
    return None


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          errors_are_operation_outcomes]
# The document is built in-process (the same function the app serves it with; the test above shows
# the live copy is identical), so the operations are known when pytest collects this module.
_registry = ServiceRegistry()
schema = schemathesis.openapi.from_dict(build_document(_registry.get(i) for i in _registry.ids))


def test_the_live_document_is_the_one_fuzzed(document):
    assert document == build_document(_registry.get(i) for i in _registry.ids)


# The three feedback operations share one handler and one schema, and a feedback item naming a card
# the service never issued waits ~2 s for the card log (cds_service.feedback) before its 404: one of
# them is fuzzed, with generated bodies only (schemathesis's dozens of coverage cases would take minutes).
_FEEDBACK = f"^/cds-services/{re.escape(_registry.ids[0])}/feedback$"
_SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


def _call_and_check(case: Any, base_url: str) -> None:
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"} if case.path == "/metrics" else None
    case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=15)


@schema.exclude(path_regex="/feedback$").parametrize()
@settings(max_examples=MAX_EXAMPLES, phases=[Phase.explicit, Phase.generate], **_SETTINGS)
def test_fuzzing_finds_no_5xx_and_only_operation_outcome_errors(case, fuzz_target):
    _call_and_check(case, fuzz_target)


@schema.include(path_regex=_FEEDBACK).parametrize()
@settings(max_examples=4, phases=[Phase.generate], **_SETTINGS)
def test_fuzzing_feedback_finds_no_5xx_and_only_operation_outcome_errors(case, fuzz_target):
    _call_and_check(case, fuzz_target)
