"""Operations endpoints: /healthz, /readyz (no JWT, no configuration revealed) and /metrics (token)."""
from __future__ import annotations

import pytest

from cds_service import create_app
from service_helpers import CARD, PV, full_prefetch, hook_body, serve_record

TOKEN = "s3cret-metrics-token"


@pytest.fixture
def secured_app(secured_app_for, fake_evaluate):
    """Auth required with no usable issuer: every API call is refused, the health endpoints still answer."""
    return secured_app_for({}, metrics_token=TOKEN)


@pytest.fixture
def metered(settings_overrides, fake_evaluate):
    return create_app({**settings_overrides, "metrics_token": TOKEN}).test_client()


def scrape(client) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_healthz_answers_without_a_token(secured_app):
    response = secured_app.test_client().get("/healthz")
    assert (response.status_code, response.json) == (200, {"status": "ok"})


def test_readyz_is_ready_when_database_knowledge_and_keys_are(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready", "checks": {"database": "ok", "knowledge": "ok", "trusted_keys": "ok"}}


def test_readyz_is_503_with_an_operation_outcome_when_no_trusted_keys(secured_app):
    response = secured_app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["resourceType"] == "OperationOutcome"
    assert "trusted_keys" in response.json["issue"][0]["details"]["text"]


def test_readyz_is_503_when_the_database_is_unreachable(settings_overrides, fake_evaluate):
    app = create_app({**settings_overrides})
    app.extensions["her2cds"].database.url = app.extensions["her2cds"].database.url.set(
        database="/nonexistent-dir/x/y.sqlite3")
    app.extensions["her2cds"].database.dispose()
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert "database" in response.json["issue"][0]["details"]["text"]


def test_readyz_reveals_no_configuration(secured_app, tmp_path):
    text = secured_app.test_client().get("/readyz").get_data(as_text=True)
    for secret in (str(tmp_path), "cds.example.org", "sqlite", TOKEN, "issuers.json"):
        assert secret not in text


def test_metrics_are_off_without_a_configured_token(client):
    response = client.get("/metrics")
    assert response.status_code == 404
    assert response.json["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_metrics_need_the_token(metered, header):
    response = metered.get("/metrics", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.json["resourceType"] == "OperationOutcome"


def test_metrics_count_hook_calls_by_service_and_status(metered):
    metered.post(f"/cds-services/{PV}", json=hook_body(fhir_server=None, prefetch=full_prefetch()))
    metered.post(f"/cds-services/{PV}", json={"hook": "patient-view"})
    text = scrape(metered)
    assert f'her2cds_hook_calls_total{{service="{PV}",status="200"}} 1.0' in text
    assert f'her2cds_hook_calls_total{{service="{PV}",status="400"}} 1.0' in text
    assert f'her2cds_hook_call_duration_seconds_count{{service="{PV}"}} 2.0' in text


def test_metrics_label_unknown_service_ids_as_unknown(metered):
    metered.post("/cds-services/not-a-service-" + "x" * 50, json={})
    assert 'her2cds_hook_calls_total{service="unknown",status="404"} 1.0' in scrape(metered)


def test_metrics_count_cards_by_topic_and_indicator(metered, fake_evaluate):
    metered.post(f"/cds-services/{PV}", json=hook_body(fhir_server=None, prefetch=full_prefetch()))
    assert f'her2cds_cards_total{{indicator="{CARD["indicator"]}",topic="none"}} 1.0' in scrape(metered)


def test_metrics_count_what_the_mapping_could_not_read_by_kind(metered, fake_evaluate):
    fake_evaluate.record_issues.update(unreadable=2, unmapped=0, by_name=1)
    metered.post(f"/cds-services/{PV}", json=hook_body(fhir_server=None, prefetch=full_prefetch()))
    text = scrape(metered)
    assert 'her2cds_record_issues_total{kind="unreadable"} 2.0' in text
    assert 'her2cds_record_issues_total{kind="by_name"} 1.0' in text
    assert 'kind="unmapped"' not in text


def test_metrics_count_fhir_reads_by_outcome(metered, fhir):
    serve_record(fhir, status={"Observation": 503})
    metered.post(f"/cds-services/{PV}", json=hook_body())
    text = scrape(metered)
    assert 'her2cds_fhir_reads_total{outcome="ok"}' in text
    assert 'her2cds_fhir_reads_total{outcome="server-error-5xx"}' in text
    assert 'her2cds_fhir_read_duration_seconds_count{outcome="ok"}' in text


def test_metrics_count_feedback_items_by_outcome(metered):
    metered.post(f"/cds-services/{PV}", json=hook_body(fhir_server=None, prefetch=full_prefetch()))  # issues CARD
    item = {"card": CARD["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-12-01T10:00:00Z"}
    assert metered.post(f"/cds-services/{PV}/feedback", json={"feedback": [item]}).status_code == 200
    metered.post(f"/cds-services/{PV}/feedback", json={"feedback": "no"})
    text = scrape(metered)
    assert 'her2cds_feedback_items_total{outcome="overridden"} 1.0' in text
    assert 'her2cds_feedback_requests_total{status="200"} 1.0' in text
    assert 'her2cds_feedback_requests_total{status="400"} 1.0' in text


def test_metrics_count_auth_rejections_by_reason(secured_app):
    client = secured_app.test_client()
    client.get("/cds-services")
    client.get("/cds-services", headers={"Authorization": "Basic abc"})
    text = scrape(client)
    assert 'her2cds_auth_rejections_total{reason="missing-token"} 1.0' in text
    assert 'her2cds_auth_rejections_total{reason="malformed-header"} 1.0' in text


def test_a_metrics_scrape_is_not_counted_as_a_jwt_refusal(secured_app):
    client = secured_app.test_client()
    client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert "her2cds_auth_rejections_total{" not in scrape(client)


def test_settings_repr_hides_the_metrics_token(secured_app):
    assert TOKEN not in repr(secured_app.extensions["her2cds"].settings)
