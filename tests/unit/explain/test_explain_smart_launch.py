"""SMART App Launch handshake of the explanation view against `responses`-mocked EHR endpoints
(SMART configuration, token endpoint, FHIR server): the happy path, then each way it must refuse."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from cds_service import create_app
from cds_service.explain import COOKIE
from cds_service.logging_setup import LOGGER_NAME
from support import captured_logs

ISS = "https://ehr.example.org/fhir"
AUTHORIZE = "https://ehr.example.org/oauth/authorize"
TOKEN = "https://ehr.example.org/oauth/token"
OTHER = "https://elsewhere.example.net/fhir"


@pytest.fixture
def app():
    return create_app({"auth_mode": "required", "fhir_servers": ISS, "feedback_db_url": "sqlite:///:memory:",
                       "app_client_id": "her2-cds-test", "public_base_url": "http://localhost"})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def ehr() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{ISS}/.well-known/smart-configuration",
                 json={"authorization_endpoint": AUTHORIZE, "token_endpoint": TOKEN,
                       "code_challenge_methods_supported": ["S256"]})
        empty = {"resourceType": "Bundle", "type": "searchset", "entry": []}
        mock.get(f"{ISS}/Patient/pat-1", json={"resourceType": "Patient", "id": "pat-1"})
        mock.get(re.compile(re.escape(ISS) + r"/(Condition|Observation|Medication\w+)\?.*"), json=empty)
        yield mock


def _launch(client) -> dict[str, list[str]]:
    response = client.get("/app/launch", query_string={"iss": ISS, "launch": "xyz123"})
    assert response.status_code == 302, response.get_data(as_text=True)
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == AUTHORIZE
    return parse_qs(location.query)


def _token_response(ehr: responses.RequestsMock, body: dict, status: int = 200) -> None:
    ehr.post(TOKEN, json=body, status=status)


def test_launch_redirects_to_authorize_with_pkce_state_aud_launch_and_scopes(client, ehr):
    query = _launch(client)
    assert query["response_type"] == ["code"]
    assert query["client_id"] == ["her2-cds-test"]
    assert query["redirect_uri"] == ["http://localhost/app/callback"]
    assert query["aud"] == [ISS] and query["launch"] == ["xyz123"]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) >= 43
    assert len(query["state"][0]) >= 20
    assert {"launch", "patient/Observation.read", "patient/MedicationRequest.read"} <= set(query["scope"][0].split())


def test_successful_launch_keeps_the_token_server_side_and_reads_the_record_with_it(client, ehr, caplog):
    with captured_logs(caplog, LOGGER_NAME) as records:
        _launch_and_read(client, ehr)
    logged = " ".join(str(r.__dict__) for r in records)
    assert "app.page" in logged                         # the service did log the page view ...
    assert "secret-access-token" not in logged and "good-code" not in logged   # ... without token or code


def _launch_and_read(client, ehr) -> None:
    query = _launch(client)
    _token_response(ehr, {"access_token": "secret-access-token", "token_type": "Bearer", "expires_in": 300,
                          "scope": "launch patient/*.read", "patient": "pat-1"})
    callback = client.get("/app/callback", query_string={"code": "good-code", "state": query["state"][0]})
    assert callback.status_code == 302 and callback.headers["Location"] == "/app"
    assert "secret-access-token" not in json.dumps(dict(callback.headers))   # not in the cookie, not in the URL
    token_call = next(c for c in ehr.calls if c.request.url == TOKEN)
    form = parse_qs(token_call.request.body)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(form["code_verifier"][0].encode()).digest()).rstrip(b"=")
    assert challenge.decode() == query["code_challenge"][0]               # PKCE verifier matches the challenge
    assert form["code"] == ["good-code"] and form["grant_type"] == ["authorization_code"]

    page = client.get("/app")
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    assert "pat-1" in page.get_data(as_text=True)
    fhir_calls = [c for c in ehr.calls if c.request.url.startswith(ISS + "/") and ".well-known" not in c.request.url]
    assert fhir_calls and all(c.request.headers["Authorization"] == "Bearer secret-access-token" for c in fhir_calls)
    assert page.headers["Cache-Control"] == "no-store"
    assert "secret-access-token" not in page.get_data(as_text=True)


def test_session_cookie_is_httponly_and_samesite_and_secure_over_https(app, ehr):
    client = app.test_client()
    response = client.get("/app/launch", query_string={"iss": ISS, "launch": "l"}, base_url="https://cds.example.org")
    cookie = response.headers["Set-Cookie"]
    assert COOKIE in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_wrong_state_is_refused_and_no_token_is_requested(client, ehr):
    _launch(client)
    response = client.get("/app/callback", query_string={"code": "good-code", "state": "forged-state"})
    assert response.status_code == 400
    assert "state mismatch" in response.get_data(as_text=True)
    assert not any(c.request.url == TOKEN for c in ehr.calls)
    assert client.get("/app").status_code == 401


def test_expired_code_refused_by_the_token_endpoint_is_a_401_page(client, ehr):
    query = _launch(client)
    _token_response(ehr, {"error": "invalid_grant", "error_description": "authorization code expired"}, status=400)
    response = client.get("/app/callback", query_string={"code": "old-code", "state": query["state"][0]})
    assert response.status_code == 401
    assert "invalid_grant" in response.get_data(as_text=True)
    assert client.get("/app").status_code == 401


def test_token_without_patient_context_is_refused(client, ehr):
    query = _launch(client)
    _token_response(ehr, {"access_token": "secret-access-token", "token_type": "Bearer", "expires_in": 300})
    response = client.get("/app/callback", query_string={"code": "good-code", "state": query["state"][0]})
    assert response.status_code == 400
    assert "no `patient`" in response.get_data(as_text=True)
    assert client.get("/app").status_code == 401


@pytest.mark.parametrize("iss", [OTHER, ISS + ".evil.example", "https://EHR.example.org/other-fhir", ""])
def test_launch_for_an_iss_not_allowed_is_refused_before_any_request(client, iss):
    with responses.RequestsMock() as nothing:       # any outgoing request would fail the test
        response = client.get("/app/launch", query_string={"iss": iss, "launch": "l"})
        assert not nothing.calls
    assert response.status_code in (400, 403)
    assert "Set-Cookie" not in response.headers


def test_callback_without_a_pending_launch_is_refused(client):
    response = client.get("/app/callback", query_string={"code": "c", "state": "s"})
    assert response.status_code == 400


def test_iss_without_smart_configuration_is_a_502_page(client):
    with responses.RequestsMock() as ehr:
        ehr.get(f"{ISS}/.well-known/smart-configuration", status=404)
        response = client.get("/app/launch", query_string={"iss": ISS, "launch": "l"})
    assert response.status_code == 502


def test_open_server_mode_is_refused_when_authentication_is_on(client):
    response = client.get("/app", query_string={"iss": ISS, "patient": "pat-1"})
    assert response.status_code == 403


def test_pages_carry_csp_frame_ancestors_and_no_inline_script(client, ehr):
    response = client.get("/app")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'self'" in csp and "unsafe-eval" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_expired_access_token_ends_the_session(client, ehr, monkeypatch):
    query = _launch(client)
    _token_response(ehr, {"access_token": "t", "token_type": "Bearer", "expires_in": 60, "patient": "pat-1"})
    client.get("/app/callback", query_string={"code": "c", "state": query["state"][0]})
    import cds_service.explain as explain_module
    later = explain_module.time.time() + 61
    monkeypatch.setattr(explain_module.time, "time", lambda: later)
    assert client.get("/app").status_code == 401
