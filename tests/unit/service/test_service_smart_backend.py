"""SMART Backend Services (issue 10): a call with `fhirServer` and no `fhirAuthorization`, to a FHIR server the
operator registered, reads FHIR with the service's own token (client_credentials + private_key_jwt), cached
per server until shortly before it expires. The token endpoint is mocked with `responses`; the real
round trip against sekmet-fhir is in tests/integration/test_integration_smart_backend.py."""
from __future__ import annotations

import json
import threading
import time
from urllib.parse import parse_qs

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cds_service import create_app
from cds_service.smart_backend import (ASSERTION_TYPE, BackendConfigError, BackendTokens, BackendTokenUnavailable,
                                       load_registrations)
from service_helpers import FHIR, PV, hook_body, serve_record

TOKEN_URL = "https://auth.fhir.test/token"
CLIENT_ID = "her2-cds-test"


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_key(path, key) -> str:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return str(path)


def write_registrations(tmp_path, key, **fields) -> str:
    entry = {"fhir_server": FHIR, "client_id": CLIENT_ID, "private_key_file": write_key(tmp_path / "key.pem", key),
             "kid": "k1", **fields}
    path = tmp_path / "backend.json"
    path.write_text(json.dumps([entry]))
    return str(path)


def serve_discovery(rsps, token_url: str = TOKEN_URL, **extra) -> None:
    rsps.add(responses.GET, f"{FHIR}/.well-known/smart-configuration",
             json={"token_endpoint": token_url, "token_endpoint_auth_methods_supported": ["private_key_jwt"], **extra})


def serve_token(rsps, *, expires_in: int = 300, status: int = 200, token: str = "backend-token-1") -> list[dict]:
    """Mock the token endpoint; returns the decoded forms it received."""
    forms: list[dict] = []

    def callback(request):
        forms.append({k: v[0] for k, v in parse_qs(request.body).items()})
        if status != 200:
            return status, {}, json.dumps({"error": "invalid_client"})
        return 200, {}, json.dumps({"access_token": token, "token_type": "bearer", "expires_in": expires_in,
                                    "scope": "system/*.read"})

    rsps.add_callback(responses.POST, TOKEN_URL, callback=callback)
    return forms


def authorizations(rsps) -> list[str | None]:
    return [c.request.headers.get("Authorization") for c in rsps.calls
            if c.request.url.startswith(FHIR) and ".well-known" not in c.request.url]


@pytest.fixture
def backend_client(tmp_path, settings_overrides, fake_evaluate, rsa_key):
    app = create_app({**settings_overrides, "fhir_servers": f"{FHIR},http://other.test/fhir",
                      "smart_backend_clients_file": write_registrations(tmp_path, rsa_key)})
    return app.test_client()


def call(client, body):
    return client.post(f"/cds-services/{PV}", data=json.dumps(body), content_type="application/json")


# ---------------------------------------------------------------- the token and its use


def test_a_call_without_fhir_authorization_reads_fhir_with_the_backend_token(backend_client, fhir, rsa_key):
    serve_discovery(fhir)
    forms = serve_token(fhir)
    serve_record(fhir)
    assert call(backend_client, hook_body()).status_code == 200
    assert authorizations(fhir) and set(authorizations(fhir)) == {"Bearer backend-token-1"}
    (form,) = forms
    assert form["grant_type"] == "client_credentials" and form["client_assertion_type"] == ASSERTION_TYPE
    assert form["scope"].split() and all(s.startswith("system/") for s in form["scope"].split())


def test_the_client_assertion_is_a_private_key_jwt_for_the_token_endpoint(backend_client, fhir, rsa_key):
    serve_discovery(fhir)
    forms = serve_token(fhir)
    serve_record(fhir)
    call(backend_client, hook_body())
    assertion = forms[0]["client_assertion"]
    assert jwt.get_unverified_header(assertion) == {"alg": "RS384", "typ": "JWT", "kid": "k1"}
    claims = jwt.decode(assertion, rsa_key.public_key(), algorithms=["RS384"], audience=TOKEN_URL)
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["jti"] and 0 < claims["exp"] - time.time() <= 300


def test_the_token_is_cached_across_calls(backend_client, fhir):
    serve_discovery(fhir)
    forms = serve_token(fhir)
    serve_record(fhir)
    for _ in range(3):
        assert call(backend_client, hook_body()).status_code == 200
    assert len(forms) == 1
    assert sum(".well-known" in c.request.url for c in fhir.calls) == 1


def test_a_token_near_expiry_is_replaced(backend_client, fhir, monkeypatch):
    serve_discovery(fhir)
    forms = serve_token(fhir, expires_in=100)
    serve_record(fhir)
    call(backend_client, hook_body())
    real = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real() + 85)      # 100 s token, refreshed 20 s before expiry
    call(backend_client, hook_body())
    assert len(forms) == 2


def test_the_ehrs_own_token_wins(backend_client, fhir):
    forms = serve_token(fhir)
    serve_record(fhir)
    body = hook_body(fhirAuthorization={"access_token": "ehr-token", "token_type": "Bearer", "expires_in": 300,
                                        "scope": "patient/*.read", "subject": "her2-cds"})
    assert call(backend_client, body).status_code == 200
    assert forms == [] and set(authorizations(fhir)) == {"Bearer ehr-token"}


def test_an_unregistered_fhir_server_is_read_without_a_token(backend_client, fhir):
    other = "http://other.test/fhir"
    forms = serve_token(fhir)
    serve_record(fhir, base=other)
    assert call(backend_client, hook_body(fhir_server=other)).status_code == 200
    assert forms == [] and all(c.request.headers.get("Authorization") is None for c in fhir.calls)


def test_full_prefetch_fetches_no_token(backend_client, fhir):
    from service_helpers import full_prefetch
    forms = serve_token(fhir)
    assert call(backend_client, hook_body(prefetch=full_prefetch())).status_code == 200
    assert forms == []


@pytest.mark.parametrize("status", [400, 401, 500])
def test_a_refused_token_request_is_a_412_that_says_why(backend_client, fhir, status):
    serve_discovery(fhir)
    serve_token(fhir, status=status)
    seen = serve_record(fhir)
    response = call(backend_client, hook_body())
    assert response.status_code == 412 and seen == []
    assert "SMART Backend Services" in response.get_json()["issue"][0]["details"]["text"]


def test_a_fhir_401_to_the_cached_token_makes_the_next_call_fetch_a_new_one(backend_client, fhir):
    serve_discovery(fhir)
    forms = serve_token(fhir)
    serve_record(fhir, status={"Condition": 401})
    assert call(backend_client, hook_body()).status_code == 412
    call(backend_client, hook_body())
    assert len(forms) == 2


@pytest.mark.parametrize("token_url", ["http://auth.fhir.test/token", "ftp://auth.fhir.test/token"])
def test_a_discovered_token_url_that_is_not_https_is_refused(backend_client, fhir, token_url):
    serve_discovery(fhir, token_url=token_url)
    seen = serve_record(fhir)
    assert call(backend_client, hook_body()).status_code == 412 and seen == []
    assert not [c for c in fhir.calls if c.request.method == "POST"]


def test_a_server_without_private_key_jwt_is_refused(backend_client, fhir):
    serve_discovery(fhir, token_endpoint_auth_methods_supported=["client_secret_basic"])
    serve_record(fhir)
    assert call(backend_client, hook_body()).status_code == 412


# ---------------------------------------------------------------- the cache under concurrency (pure)


class SlowTokenSession:
    """Stands in for requests.Session: the token endpoint takes `delay` seconds; counts requests."""

    def __init__(self, delay: float) -> None:
        self.delay, self.posts, self.lock = delay, 0, threading.Lock()
        self.posting = threading.Event()          # set once a token request is on the wire

    def request(self, method, url, **kwargs):
        response = requests.Response()
        response.status_code = 200
        if method == "POST":
            with self.lock:
                self.posts += 1
            self.posting.set()
            time.sleep(self.delay)
            response._content = json.dumps({"access_token": "t", "token_type": "Bearer",
                                            "expires_in": 300}).encode()
        else:
            response._content = json.dumps({"token_endpoint": TOKEN_URL}).encode()
        return response


def slow_tokens(tmp_path, rsa_key, delay: float) -> tuple[BackendTokens, SlowTokenSession]:
    session = SlowTokenSession(delay)
    return BackendTokens(load_registrations(write_registrations(tmp_path, rsa_key)), lambda: session), session


def token_request_in_flight(tokens: BackendTokens, session: SlowTokenSession) -> threading.Thread:
    """A thread waiting for the token endpoint's answer for FHIR's token (its request is on the wire:
    waited for, not slept for, so the tests below cannot pass before the request has started)."""
    thread = threading.Thread(target=lambda: tokens.token_for(FHIR, deadline=time.monotonic() + 5))
    thread.start()
    assert session.posting.wait(5)
    return thread


def test_concurrent_calls_share_one_token_request(tmp_path, rsa_key):
    tokens, session = slow_tokens(tmp_path, rsa_key, 0.3)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(tokens.token_for(FHIR, deadline=time.monotonic() + 5)))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["t"] * 6 and session.posts == 1


def test_the_lock_is_not_held_during_the_token_request(tmp_path, rsa_key):
    tokens, session = slow_tokens(tmp_path, rsa_key, 1.0)
    worker = token_request_in_flight(tokens, session)
    started = time.monotonic()
    assert tokens.registration_for("http://unregistered.test/fhir") is None
    tokens.forget("http://unregistered.test/fhir")       # takes the lock: must not wait for the network
    assert time.monotonic() - started < 0.5              # were the lock held through the request: ~1 s
    worker.join()


def test_a_waiter_gives_up_at_its_deadline(tmp_path, rsa_key):
    tokens, session = slow_tokens(tmp_path, rsa_key, 1.0)
    leader = token_request_in_flight(tokens, session)
    started = time.monotonic()
    with pytest.raises(BackendTokenUnavailable):
        tokens.token_for(FHIR, deadline=time.monotonic() + 0.2)
    assert time.monotonic() - started < 0.6
    leader.join()


# ---------------------------------------------------------------- configuration


def test_an_ec_key_signs_with_es384(tmp_path):
    key = ec.generate_private_key(ec.SECP384R1())
    (registration,) = load_registrations(write_registrations(tmp_path, key)).values()
    assert registration.alg == "ES384"


@pytest.mark.parametrize("field,url,message", [
    ("token_url", "http://127.0.0.1:1/token", "https"),
    # our Backend Services token is a bearer credential: it goes over TLS only, like fhirAuthorization's
    ("fhir_server", "http://ehr.test/fhir", "FHIR server 'http://ehr.test/fhir' must be https"),
], ids=["token-url", "fhir-server"])
def test_an_http_url_needs_the_explicit_insecure_allowance(tmp_path, rsa_key, field, url, message):
    with pytest.raises(BackendConfigError, match=message):
        load_registrations(write_registrations(tmp_path, rsa_key, **{field: url}))
    ok = load_registrations(write_registrations(tmp_path, rsa_key, allow_insecure_http=True, **{field: url}))
    assert getattr(next(iter(ok.values())), field) == url


@pytest.mark.parametrize("fields,message", [
    ({"client_id": ""}, "client_id"),
    ({"alg": "ES384"}, "does not fit"),
    ({"surprise": 1}, "unknown"),
    ({"private_key_file": "/nonexistent.pem"}, "PEM"),
])
def test_an_invalid_registration_stops_startup(tmp_path, rsa_key, settings_overrides, fields, message):
    path = write_registrations(tmp_path, rsa_key, **fields)
    with pytest.raises(BackendConfigError, match=message):
        create_app({**settings_overrides, "smart_backend_clients_file": path})


def test_the_registration_matches_the_fhir_server_however_it_is_spelled(tmp_path, rsa_key):
    tokens = BackendTokens(load_registrations(write_registrations(tmp_path, rsa_key)), lambda: None)
    assert tokens.registration_for(FHIR + "/") is not None
    assert tokens.registration_for(FHIR.replace("fhir.test", "FHIR.TEST")) is not None
    assert tokens.registration_for(FHIR + "2") is None


def test_the_private_key_never_shows_in_repr(tmp_path, rsa_key):
    (registration,) = load_registrations(write_registrations(tmp_path, rsa_key)).values()
    assert "PRIVATE" not in repr(registration) and "private_key" not in repr(registration)


def test_a_refused_token_request_is_logged_with_its_reason_and_no_secret(backend_client, fhir, logs):
    serve_discovery(fhir)
    serve_token(fhir, status=401)
    serve_record(fhir)
    call(backend_client, hook_body())
    (line,) = [json.loads(x) for x in logs.getvalue().splitlines() if "smart_backend.token_failed" in x]
    assert line["fhir_server"] == FHIR and "HTTP 401" in line["reason"]
    assert "client_assertion" not in logs.getvalue() and "PRIVATE" not in logs.getvalue()
