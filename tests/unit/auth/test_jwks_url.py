"""JWKS from an operator-configured URL: fetched with a timeout, cached, refreshed on an unknown kid, never a 500."""
from __future__ import annotations

import json

import pytest
import requests
import responses
from cryptography.hazmat.primitives.asymmetric import ec

from auth_helpers import ISSUER, SigningKey, call, guarded_app, make_settings, mint
from cds_service.auth import Authenticator
from cds_service.jwks import RemoteJwks, TrustConfigError, load_trusted_issuers

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


# ------------------------------------------------------------------ issue 14: how keys may be fetched and kept


@pytest.mark.parametrize("url", ["http://client.test/jwks.json", "ftp://client.test/jwks.json", "client.test/jwks"])
def test_a_jwks_url_that_is_not_https_stops_start_up(tmp_path, url):
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps([{"iss": ISSUER, "jwks_url": url}]))
    with pytest.raises(TrustConfigError, match="must be an https URL"):
        load_trusted_issuers(path)


def test_a_redirect_from_the_jwks_url_is_not_followed(mocked, es384, clock, caplog):
    caplog.set_level("WARNING", logger="her2cds.jwks")
    mocked.get(JWKS_URL, status=302, headers={"Location": "https://elsewhere.test/jwks.json"})
    mocked.get("https://elsewhere.test/jwks.json", json=jwks(es384))
    assert RemoteJwks(JWKS_URL, cache_seconds=60, clock=clock).key_for(es384.kid) is None
    assert [c.request.url for c in mocked.calls] == [JWKS_URL]
    assert any("jwks.fetch_failed" in r.getMessage() and "302" in r.error for r in caplog.records)


def test_proxy_environment_variables_are_ignored_for_the_jwks_fetch(monkeypatch, es384, clock):
    """A real local JWKS server and HTTP(S)_PROXY pointing at a closed port: the fetch goes direct."""
    import http.server
    import socket
    import threading

    document = json.dumps(jwks(es384)).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            proxy = f"http://127.0.0.1:{probe.getsockname()[1]}"     # closed once the block ends
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"   # RemoteJwks itself takes any URL
        assert RemoteJwks(url, cache_seconds=60, clock=clock).key_for(es384.kid) is not None
    finally:
        server.shutdown()
        server.server_close()


def test_keys_older_than_the_maximum_staleness_are_dropped_when_refreshes_keep_failing(mocked, es384, clock, caplog):
    caplog.set_level("WARNING", logger="her2cds.jwks")
    mocked.get(JWKS_URL, json=jwks(es384))
    source = RemoteJwks(JWKS_URL, cache_seconds=600, max_stale_seconds=3600, clock=clock)
    assert source.key_for(es384.kid) is not None
    mocked.replace(responses.GET, JWKS_URL, body=requests.exceptions.ConnectionError("down"))
    clock.now += 1800                      # refresh due and failing, keys 30 min old: still used
    assert source.key_for(es384.kid) is not None
    clock.now += 1801                      # keys over an hour old, issuer still unreachable: dropped
    assert source.key_for(es384.kid) is None
    assert any(r.getMessage() == "jwks.stale_keys_dropped" for r in caplog.records)


def test_the_max_staleness_setting_reaches_the_key_source(tmp_path, url_trust_file):
    issuers = load_trusted_issuers(url_trust_file, max_stale_seconds=7200, min_refresh_seconds=45)
    source = issuers[ISSUER].keys
    assert source.max_stale_seconds == 7200 and source.min_refresh_seconds == 45


def test_a_slow_refresh_does_not_hold_up_tokens_whose_key_is_known(es384, es256):
    """The lock is not held across the network call: while one thread waits for a slow JWKS (an
    unknown kid), a token with a known kid is verified at once."""
    import threading
    import time

    gate, refreshing = threading.Event(), threading.Event()

    class SlowSession(requests.Session):
        calls = 0

        def get(self, url, **kwargs):      # first fetch answers at once, the refresh waits on `gate`
            SlowSession.calls += 1
            if SlowSession.calls > 1:
                refreshing.set()
                gate.wait(5)
            response = requests.Response()
            response.status_code = 200
            response.raw = __import__("io").BytesIO(json.dumps(jwks(es384)).encode())
            return response

    source = RemoteJwks(JWKS_URL, cache_seconds=3600, min_refresh_seconds=0, session=SlowSession())
    assert source.key_for(es384.kid) is not None
    refresher = threading.Thread(target=source.key_for, args=("never-seen-kid",))
    refresher.start()
    assert refreshing.wait(5)              # the refresh is now blocked inside the network call
    started = time.monotonic()
    try:
        assert source.key_for(es384.kid) is not None
        assert time.monotonic() - started < 0.5
    finally:
        gate.set()
        refresher.join(5)
    assert SlowSession.calls == 2
