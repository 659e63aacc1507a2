"""The sandbox loader against a real FHIR server: both load paths store the same record, repeatably."""
from __future__ import annotations

import pytest
import requests

from sandbox import loader
from support import TODAY

pytestmark = pytest.mark.integration


def _count(base: str, query: str) -> int:
    return requests.get(f"{base}/{query}&_summary=count", timeout=10).json()["total"]


def test_loading_the_demo_patients_again_changes_nothing(fhir_server):
    before = _count(fhir_server, "MedicationAdministration?patient=demo-4-pat")
    loader.load_directory(fhir_server, today=TODAY)
    assert _count(fhir_server, "MedicationAdministration?patient=demo-4-pat") == before == 44


def test_put_each_stores_every_entry_like_the_transaction(fhir_server):
    name, bundle = loader.read_bundles([loader.bundle_files()[1]], TODAY)[0]
    stored = loader.put_each(requests.Session(), fhir_server, bundle, timeout=10, name=name)
    assert stored == len(bundle["entry"])
    assert _count(fhir_server, "Condition?patient=demo-2-pat") == 3
