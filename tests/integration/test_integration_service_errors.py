"""How the live service answers when the FHIR server cannot be used."""
from __future__ import annotations

import pytest
import requests

from hook_calls import call, hook_body
from sandbox.sekmet import free_port

pytestmark = pytest.mark.integration


def test_patient_view_without_prefetch_and_a_closed_fhir_port_is_412(live_service):
    service = live_service.service("patient-view")
    response = call(live_service.base, service, hook_body(service, live_service.closed_fhir, "demo-1-pat", [], "fetch"))
    assert response.status_code == 412


def test_discovery_lists_one_service_per_hook(live_service):
    assert sorted(live_service.services) == ["order-select", "order-sign", "patient-view"]


def test_demo_patient_is_readable_on_the_fixture_fhir_server(fhir_server):
    response = requests.get(f"{fhir_server}/Patient/demo-1-pat", timeout=10)
    assert response.status_code == 200 and response.json()["id"] == "demo-1-pat"
