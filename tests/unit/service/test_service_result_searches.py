"""Fetch mode asks for results the LOINC `code` search cannot find (issue 10): laboratory Observations under
local codes or text, and DiagnosticReports. Both are optional: a server that refuses them leaves a named
data gap on the cards, never a 412."""
from __future__ import annotations

import json
import re

import pytest
import responses

from service_helpers import FHIR, PV, full_prefetch, hook_body


@pytest.mark.parametrize("key, url_pattern, label", [
    ("labObservations", r"/Observation\?.*category=laboratory", "laboratory results under local codes or text"),
    ("diagnosticReports", r"/DiagnosticReport\?", "DiagnosticReports"),
])
def test_a_result_search_the_server_refuses_is_a_named_gap_not_a_412(client, evaluate, fhir, key, url_pattern, label):
    fhir.add(responses.GET, re.compile(re.escape(FHIR) + url_pattern + ".*"), status=400,
             json={"resourceType": "OperationOutcome", "issue": []})
    prefetch = full_prefetch()
    del prefetch[key]
    response = client.post(f"/cds-services/{PV}", data=json.dumps(hook_body(prefetch=prefetch)),
                           content_type="application/json")
    assert response.status_code == 200
    (gap,) = evaluate.record.gaps
    assert gap.source == key and label in gap.problem
