"""The real pipeline behind the endpoint: the committed synthetic record (tests/fixtures/records) gives the
same cards by prefetch and by fetch."""
from __future__ import annotations

import responses

from service_helpers import PV, RECORD_PATIENT, full_prefetch, hook_body, log_events, prefetch_for, serve_resources, synthetic_record


def signature(doc: dict) -> list[tuple]:
    return sorted((c["source"]["topic"]["code"], c["indicator"], c["summary"]) for c in doc["cards"])


def test_record_cards_agree_between_prefetch_and_fetch(client):
    resources, patient = synthetic_record(), RECORD_PATIENT
    prefetch = prefetch_for(resources, patient)
    by_prefetch = client.post(f"/cds-services/{PV}",
                              json=hook_body(patient=patient, fhir_server=None, prefetch=prefetch))
    assert by_prefetch.status_code == 200, by_prefetch.get_json()
    assert "her2-next-regimen" in {c["source"]["topic"]["code"] for c in by_prefetch.get_json()["cards"]}

    with responses.RequestsMock(assert_all_requests_are_fired=False) as fhir:
        serve_resources(fhir, resources, patient)
        by_fetch = client.post(f"/cds-services/{PV}", json=hook_body(patient=patient))
    assert by_fetch.status_code == 200, by_fetch.get_json()
    assert signature(by_fetch.get_json()) == signature(by_prefetch.get_json())


def test_issued_cards_are_logged_so_feedback_can_be_reported_per_topic(client):
    from sqlalchemy import select

    from cds_service.storage import issued_cards_table

    response = client.post(f"/cds-services/{PV}", json=hook_body(
        patient=RECORD_PATIENT, fhir_server=None, prefetch=prefetch_for(synthetic_record(), RECORD_PATIENT)))
    cards = response.get_json()["cards"]
    state = client.application.extensions["her2cds"]
    assert state.card_log.flush()          # written in the background, after the answer
    with state.database.begin() as conn:
        logged = {row.card_uuid: row.topic_code for row in conn.execute(select(issued_cards_table))}
    assert logged == {c["uuid"]: c["source"]["topic"]["code"] for c in cards}


def test_the_call_log_times_each_phase_of_the_pipeline(client, logs):
    client.post(f"/cds-services/{PV}", json=hook_body(
        patient=RECORD_PATIENT, fhir_server=None, prefetch=prefetch_for(synthetic_record(), RECORD_PATIENT)))
    (line,) = log_events(logs, "hook.call")
    assert set(line["timing_ms"]) == {"gather", "map", "decide", "render", "evaluate", "total"}


def test_without_a_public_base_url_the_launch_link_is_on_the_host_each_call_was_made_to(client, fake_evaluate):
    body = hook_body(fhir_server=None, prefetch=full_prefetch())
    for base in ("http://localhost", "https://cds.example.org:8443", "http://localhost", "https://xn--bcher-kva.example"):
        assert client.post(f"/cds-services/{PV}", json=body, base_url=base).status_code == 200
    assert [c["app_launch_url"] for c in fake_evaluate.calls] == [
        "http://localhost/app/launch", "https://cds.example.org:8443/app/launch", "http://localhost/app/launch",
        "https://bücher.example/app/launch"]


def test_with_a_public_base_url_the_launch_link_is_on_it_whatever_host_was_called(secured_app_for, fake_evaluate):
    from support.client_key import signed_token

    client = secured_app_for(public_base_url="https://cds.example.org/").test_client()
    url = f"https://cds.example.org/cds-services/{PV}"
    response = client.post(url, json=hook_body(fhir_server=None, prefetch=full_prefetch()), base_url="http://internal:8080",
                           headers={"Authorization": f"Bearer {signed_token(url)}"})
    assert response.status_code == 200, response.get_json()
    assert fake_evaluate.calls[-1]["app_launch_url"] == "https://cds.example.org/app/launch"
