"""JWKS from an operator-configured URL: fetched with a timeout, cached, refreshed on an unknown kid, never a 500."""
from __future__ import annotations

import json

import pytest
import requests
import responses
from cryptography.hazmat.primitives.asymmetric import ec

from auth_helpers import ISSUER, SigningKey, call, guarded_app, make_settings, mint
from cds_service.auth import Authenticator
from cds_service.jwks import RemoteJwks, load_trusted_issuers

JWKS_URL = "https://client.test/.well-known/jwks.json"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def url_trust_file(tmp_path):
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps([{"iss": ISSUER, "jwks_url": JWKS_URL}]))
    return path


@pytest.fixture
def app_for(url_trust_file, db, clock):
    def build(cache_seconds: int = 3600):
        settings = make_settings(None, trusted_issuers_file=str(url_trust_file), jwks_cache_seconds=cache_seconds)
        issuers = load_trusted_issuers(url_trust_file, cache_seconds=cache_seconds, clock=clock)
        return guarded_app(Authenticator(settings, db, issuers=issuers)).test_client()
    return build


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def jwks(*keys: SigningKey) -> dict:
    return {"keys": [k.jwk() for k in keys]}


def test_the_jwks_is_fetched_once_with_a_timeout_and_then_cached(app_for, mocked, es384):
    mocked.get(JWKS_URL, json=jwks(es384))
    app = app_for()
    assert call(app, mint(es384)).status_code == 200
    assert call(app, mint(es384)).status_code == 200
    assert len(mocked.calls) == 1
    assert mocked.calls[0].request.req_kwargs["timeout"]


def test_the_jwks_is_fetched_again_when_the_cache_has_expired(app_for, mocked, clock, es384):
    mocked.get(JWKS_URL, json=jwks(es384))
    app = app_for(cache_seconds=600)
    assert call(app, mint(es384)).status_code == 200
    clock.now += 601
    assert call(app, mint(es384)).status_code == 200
    assert len(mocked.calls) == 2


def test_an_unknown_kid_triggers_one_refresh_that_finds_a_rotated_key(app_for, mocked, clock, es384):
    rotated = SigningKey("rotated", "ES384", ec.generate_private_key(ec.SECP384R1()))
    mocked.get(JWKS_URL, json=jwks(es384))
    app = app_for()
    assert call(app, mint(es384)).status_code == 200
    mocked.replace(responses.GET, JWKS_URL, json=jwks(es384, rotated))
    clock.now += 31
    assert call(app, mint(rotated)).status_code == 200
    assert len(mocked.calls) == 2


def test_refreshes_on_unknown_kids_are_rate_limited(app_for, mocked, clock, es384):
    mocked.get(JWKS_URL, json=jwks(es384))
    app = app_for()
    assert call(app, mint(es384)).status_code == 200
    clock.now += 31
    for _ in range(5):
        assert call(app, mint(es384, kid="nobody-has-this-kid")).status_code == 401
    assert len(mocked.calls) == 2


@pytest.mark.parametrize("failure", [
    {"body": requests.exceptions.ConnectTimeout("timed out")},
    {"body": requests.exceptions.ReadTimeout("timed out")},
    {"body": requests.exceptions.ConnectionError("refused")},
    {"status": 500, "json": {"error": "down"}},
    {"status": 200, "body": "not json"},
    {"status": 200, "json": {"no": "keys"}},
])
def test_an_unreachable_or_broken_jwks_url_gives_401_not_500(app_for, mocked, es384, failure):
    mocked.get(JWKS_URL, **failure)
    assert call(app_for(), mint(es384)).status_code == 401


def test_a_failed_refresh_keeps_the_keys_fetched_before(app_for, mocked, clock, es384):
    mocked.get(JWKS_URL, json=jwks(es384))
    app = app_for(cache_seconds=600)
    assert call(app, mint(es384)).status_code == 200
    mocked.replace(responses.GET, JWKS_URL, body=requests.exceptions.ConnectTimeout("timed out"))
    clock.now += 601
    assert call(app, mint(es384)).status_code == 200
    assert len(mocked.calls) == 2


def test_a_jwks_larger_than_one_mebibyte_is_refused(mocked, es384, clock):
    mocked.get(JWKS_URL, body=b" " * (1024 * 1024 + 10) + json.dumps(jwks(es384)).encode())
    assert RemoteJwks(JWKS_URL, cache_seconds=60, clock=clock).key_for(es384.kid) is None
