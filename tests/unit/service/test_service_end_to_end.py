"""The real pipeline behind the endpoint: a scenario record gives the same cards by prefetch and by fetch."""
from __future__ import annotations

import json
import re

import pytest
import responses

from cds_service import create_app
from cds_service.services import SERVICES
from service_helpers import FHIR, PV, hook_body, searchset
from support import load_scenario, require_shared, scenario_dirs


@pytest.fixture
def real_client(settings_overrides):
    return create_app(settings_overrides).test_client()


def s01():
    require_shared()
    directory = next(d for d in scenario_dirs() if d.name.startswith("S01-"))
    resources, cases = load_scenario(directory)
    return resources, cases["patient"]


def prefetch_for(resources: list[dict], patient: str) -> dict:
    out: dict = {}
    for query in SERVICES[0].queries:
        of_type = [r for r in resources if r["resourceType"] == query.resource_type]
        if query.is_read:
            out[query.key] = next((r for r in of_type if r.get("id") == patient), None)
        else:
            out[query.key] = searchset(of_type)
    return out


def signature(doc: dict) -> list[tuple]:
    return sorted((c["source"]["topic"]["code"], c["indicator"], c["summary"]) for c in doc["cards"])


def test_scenario_cards_agree_between_prefetch_and_fetch(real_client):
    resources, patient = s01()
    prefetch = prefetch_for(resources, patient)
    by_prefetch = real_client.post(f"/cds-services/{PV}",
                                   json=hook_body(patient=patient, fhir_server=None, prefetch=prefetch))
    assert by_prefetch.status_code == 200, by_prefetch.get_json()
    assert "her2-next-regimen" in {c["source"]["topic"]["code"] for c in by_prefetch.get_json()["cards"]}

    with responses.RequestsMock(assert_all_requests_are_fired=False) as fhir:
        for query in SERVICES[0].queries:
            path = query.template.split("?")[0].replace("{{context.patientId}}", patient)
            fhir.add(responses.GET, re.compile(re.escape(f"{FHIR}/{path}") + r"(\?.*)?$"),
                     body=json.dumps(prefetch[query.key]), content_type="application/fhir+json")
        by_fetch = real_client.post(f"/cds-services/{PV}", json=hook_body(patient=patient))
    assert by_fetch.status_code == 200, by_fetch.get_json()
    assert signature(by_fetch.get_json()) == signature(by_prefetch.get_json())


def test_issued_cards_are_logged_so_feedback_can_be_reported_per_topic(real_client):
    from sqlalchemy import select

    from cds_service.storage import issued_cards_table

    resources, patient = s01()
    response = real_client.post(f"/cds-services/{PV}",
                                json=hook_body(patient=patient, fhir_server=None,
                                               prefetch=prefetch_for(resources, patient)))
    cards = response.get_json()["cards"]
    state = real_client.application.extensions["her2cds"]
    assert state.card_log.flush()          # written in the background, after the answer
    with state.database.begin() as conn:
        logged = {row.card_uuid: row.topic_code for row in conn.execute(select(issued_cards_table))}
    assert logged == {c["uuid"]: c["source"]["topic"]["code"] for c in cards}


def test_the_call_log_times_each_phase_of_the_pipeline(real_client, logs):
    from service_helpers import log_events

    resources, patient = s01()
    real_client.post(f"/cds-services/{PV}",
                     json=hook_body(patient=patient, fhir_server=None, prefetch=prefetch_for(resources, patient)))
    (line,) = log_events(logs, "hook.call")
    assert set(line["timing_ms"]) == {"gather", "map", "decide", "render", "evaluate", "total"}
