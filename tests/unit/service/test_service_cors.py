"""CORS on every endpoint: preflights need no token, list Authorization explicitly; errors carry CORS too."""
from __future__ import annotations

import json

import pytest

from cds_service import create_app
from cds_service.errors import Unauthorized
from service_helpers import PV, SELECT, SIGN, full_prefetch, hook_body

ORIGIN = "https://sandbox.cds-hooks.org"
URLS = ["/cds-services", *(f"/cds-services/{s}" for s in (PV, SELECT, SIGN)),
        *(f"/cds-services/{s}/feedback" for s in (PV, SELECT, SIGN))]


def preflight(client, url, method="POST"):
    return client.options(url, headers={"Origin": ORIGIN, "Access-Control-Request-Method": method,
                                        "Access-Control-Request-Headers": "authorization,content-type"})


def allowed_headers(response) -> set[str]:
    return {h.strip().lower() for h in response.headers.get("Access-Control-Allow-Headers", "").split(",")}


class RejectEverything:
    """Stands in for the JWT authenticator: every request is unauthenticated."""

    def __init__(self) -> None:
        self.calls = 0

    def authenticate(self, request) -> None:
        self.calls += 1
        raise Unauthorized("test")


@pytest.fixture
def locked_client(app):
    authenticator = RejectEverything()
    app.extensions["her2cds"].authenticator = authenticator
    client = app.test_client()
    client.authenticator = authenticator
    return client


@pytest.mark.parametrize("url", URLS)
def test_preflight_is_2xx_without_a_token_and_lists_authorization_explicitly(locked_client, url):
    response = preflight(locked_client, url, "GET" if url == "/cds-services" else "POST")
    assert 200 <= response.status_code < 300
    assert response.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)
    assert {"authorization", "content-type"} <= allowed_headers(response)
    assert "*" not in allowed_headers(response)
    assert {"GET", "POST", "OPTIONS"} <= {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert locked_client.authenticator.calls == 0


def test_unauthenticated_call_is_401_outcome_with_cors_headers(locked_client):
    response = locked_client.post(f"/cds-services/{PV}", data=json.dumps(hook_body(prefetch=full_prefetch())),
                                  content_type="application/json", headers={"Origin": ORIGIN})
    assert response.status_code == 401
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert response.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_discovery_is_authenticated_too(locked_client):
    assert locked_client.get("/cds-services").status_code == 401
    assert locked_client.authenticator.calls == 1


def test_actual_responses_and_errors_carry_allow_origin(client):
    ok = client.get("/cds-services", headers={"Origin": ORIGIN})
    bad = client.post(f"/cds-services/{PV}", data="x", content_type="text/plain", headers={"Origin": ORIGIN})
    missing = client.post("/cds-services/nope", json={}, headers={"Origin": ORIGIN})
    for response in (ok, bad, missing):
        assert response.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)


def test_configured_origins_are_echoed_and_others_refused(settings_overrides, fake_evaluate):
    app = create_app({**settings_overrides, "cors_origins": "https://ehr.example.org, https://other.example.org"})
    client = app.test_client()
    response = client.options(f"/cds-services/{PV}", headers={
        "Origin": "https://ehr.example.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://ehr.example.org"
    assert "Access-Control-Allow-Origin" not in preflight(client, f"/cds-services/{PV}").headers


def test_no_origin_is_allowed_unless_configured(settings_overrides, fake_evaluate):
    """The default: a browser page on any origin cannot read the service's answers (the demo and CI set `*`)."""
    defaults = {k: v for k, v in settings_overrides.items() if k != "cors_origins"}
    client = create_app(defaults).test_client()
    for url in URLS:
        assert "Access-Control-Allow-Origin" not in preflight(client, url).headers
    answer = client.get("/cds-services", headers={"Origin": ORIGIN})
    assert answer.status_code == 200 and "Access-Control-Allow-Origin" not in answer.headers
