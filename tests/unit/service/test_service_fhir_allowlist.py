"""Issue 14: a call may only make the service read from a FHIR server the operator allowed for its client.

The allowlist check itself (`cds_service.fhir_allowlist.check_fhir_server`), the hook endpoint refusing
before any request (auth off: HER2CDS_FHIR_SERVERS; auth required: the issuer's `fhir_servers`), the
TLS rule for access tokens, and the connect-time address check that defeats DNS rebinding.
"""
from __future__ import annotations

import http.server
import json
import threading
import time
from typing import Any, Iterator

import pytest
import requests

from cds_service import create_app, fhir_allowlist
from cds_service.fhir_allowlist import FhirServerNotAllowed, PublicOnlyAdapter, check_fhir_server
from service_helpers import FHIR, PATIENT, PV, full_prefetch, hook_body, log_events, resource, searchset
from support.client_key import ISSUER, signed_token

PUBLIC_V4, PUBLIC_V6 = "93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


def call(client, body, **headers):
    return client.post(f"/cds-services/{PV}", data=json.dumps(body), content_type="application/json",
                       headers=headers)


def refusals(logs) -> list[str]:
    return [e["reason"] for e in log_events(logs) if e["event"].startswith("gather.fhir_server_refused")]


# ------------------------------------------------------------------ check_fhir_server (the shared API)

ALLOWED_EXACT = [
    ("as listed", "https://ehr.example.org/fhir/r4", ["https://ehr.example.org/fhir/r4"]),
    ("trailing slash", "https://ehr.example.org/fhir/r4/", ["https://ehr.example.org/fhir/r4"]),
    ("host and scheme case", "HTTPS://EHR.Example.org/fhir/r4", ["https://ehr.example.org/fhir/r4"]),
    ("default port", "https://ehr.example.org:443/fhir/r4", ["https://ehr.example.org/fhir/r4"]),
    ("listed loopback base", "http://127.0.0.1:8090/fhir", ["http://127.0.0.1:8090/fhir"]),
    ("listed private base", "https://10.1.2.3/fhir", ["https://10.1.2.3/fhir"]),
]


@pytest.mark.parametrize("name,base,allowed", ALLOWED_EXACT, ids=[a[0] for a in ALLOWED_EXACT])
def test_a_listed_base_is_allowed_wherever_it_points(name, base, allowed, monkeypatch):
    monkeypatch.setattr(fhir_allowlist, "resolve", lambda host, port: pytest.fail("exact bases need no DNS"))
    check_fhir_server(base, allowed)


REFUSED = [
    ("empty allowlist", "https://ehr.example.org/fhir", [], "not in the allowlist"),
    ("another base on the same host", "https://ehr.example.org/other", ["https://ehr.example.org/fhir"],
     "not in the allowlist"),
    ("a path under an exact base", "https://ehr.example.org/fhir/x", ["https://ehr.example.org/fhir"],
     "not in the allowlist"),
    ("other port", "https://ehr.example.org:8443/fhir", ["https://ehr.example.org/fhir"], "not in the allowlist"),
    ("other scheme", "http://ehr.example.org/fhir", ["https://ehr.example.org/fhir"], "not in the allowlist"),
    ("user info before a listed host", "https://ehr.example.org@evil.test/fhir", ["https://ehr.example.org/fhir"],
     "user info"),
    ("fragment trick", "https://evil.test#@ehr.example.org/fhir", ["https://evil.test"], "query or fragment"),
    ("query", "https://ehr.example.org/fhir?x=1", ["https://ehr.example.org/fhir"], "query or fragment"),
    ("not http", "file:///etc/passwd", ["*"], "not http(s)"),
    ("no host", "https:///fhir", ["*"], "no host"),
    ("not a URL", "ehr.example.org/fhir", ["*"], "not http(s)"),
]


@pytest.mark.parametrize("name,base,allowed,reason", REFUSED, ids=[r[0] for r in REFUSED])
def test_a_base_not_allowed_is_refused_with_its_reason(name, base, allowed, reason):
    with pytest.raises(FhirServerNotAllowed) as refused:
        check_fhir_server(base, allowed)
    assert reason in refused.value.reason


NON_PUBLIC = ["127.0.0.1", "127.8.9.10", "10.0.0.5", "172.16.3.4", "192.168.1.20", "169.254.169.254",
              "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fc00::7", "::ffff:127.0.0.1", "224.0.0.1"]


@pytest.mark.parametrize("address", NON_PUBLIC)
@pytest.mark.parametrize("pattern", ["*", "https://fhir.example.org/*"])
def test_a_pattern_match_resolving_to_a_non_public_address_is_refused(address, pattern, monkeypatch):
    monkeypatch.setattr(fhir_allowlist, "resolve", lambda host, port: [PUBLIC_V4, address])
    with pytest.raises(FhirServerNotAllowed) as refused:
        check_fhir_server("https://fhir.example.org/tenant-1", [pattern])
    assert "non-public address" in refused.value.reason


@pytest.mark.parametrize("pattern", ["*", "https://fhir.example.org/*", "https://fhir.example.org/tenant-1/*"])
def test_a_pattern_match_resolving_to_public_addresses_is_allowed(pattern, monkeypatch):
    monkeypatch.setattr(fhir_allowlist, "resolve", lambda host, port: [PUBLIC_V4, PUBLIC_V6])
    check_fhir_server("https://fhir.example.org/tenant-1", [pattern])


def test_a_prefix_pattern_does_not_match_a_sibling_path(monkeypatch):
    monkeypatch.setattr(fhir_allowlist, "resolve", lambda host, port: [PUBLIC_V4])
    with pytest.raises(FhirServerNotAllowed, match="not in the allowlist"):
        check_fhir_server("https://fhir.example.org/tenant-10", ["https://fhir.example.org/tenant-1/*"])


def test_a_host_that_does_not_resolve_is_refused_under_a_pattern(monkeypatch):
    def fail(host, port):
        raise OSError("no such host")
    monkeypatch.setattr(fhir_allowlist, "resolve", fail)
    with pytest.raises(FhirServerNotAllowed, match="does not resolve"):
        check_fhir_server("https://nowhere.example/fhir", ["*"])


def test_a_dns_lookup_that_hangs_is_refused_after_the_dns_timeout(monkeypatch):
    """getaddrinfo has no timeout of its own: a slow name server must not hold the hook call with it."""
    release = threading.Event()
    monkeypatch.setattr(fhir_allowlist.socket, "getaddrinfo", lambda *args, **kwargs: release.wait(5) and [])
    started = time.monotonic()
    try:
        with pytest.raises(FhirServerNotAllowed, match=r"does not resolve \(TimeoutError\)"):
            fhir_allowlist.public_addresses("slow.example", 443,
                                            lambda host, port: fhir_allowlist.resolve(host, port, timeout=0.2))
    finally:
        release.set()
    assert time.monotonic() - started < 2


# ------------------------------------------------------------------ a real server that counts what reaches it


class RecordingFhir:
    """A loopback FHIR stand-in answering every GET with the patient or an empty searchset, counting them."""

    def __init__(self) -> None:
        outer = self
        self.requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.requests.append(self.path)
                document = resource("Patient", PATIENT) if "/Patient/" in self.path else searchset([])
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}/fhir"

    def __enter__(self) -> "RecordingFhir":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recording_fhir() -> Iterator[RecordingFhir]:
    with RecordingFhir() as server:
        yield server


# ------------------------------------------------------------------ the hook endpoint, auth off (HER2CDS_FHIR_SERVERS)


def test_a_fhir_server_not_in_HER2CDS_FHIR_SERVERS_is_refused_before_any_request(client_for, recording_fhir, capture):
    client = client_for("http://127.0.0.1:1/fhir", FHIR)
    logs = capture()
    response = call(client, hook_body(fhir_server=recording_fhir.base))
    assert response.status_code == 403
    assert response.get_json()["issue"][0]["code"] == "forbidden"
    time.sleep(0.2)
    assert recording_fhir.requests == []
    assert refusals(logs) == ["fhirServer is not in the allowlist of this client"]
    assert log_events(logs, "hook.call")[-1]["status"] == 403


# Calls that really read the recording server: a real socket and nine queries, for which the service tests'
# 1 s deadline is too short on a loaded 2-core machine (a 412 seen in CI). Refused calls send no request.
READS_REAL_SOCKET = {"fhir_deadline_seconds": 10.0, "fhir_timeout_seconds": 5.0}


def test_a_listed_loopback_fhir_server_is_read(client_for, recording_fhir, evaluate):
    client = client_for(recording_fhir.base, **READS_REAL_SOCKET)
    response = call(client, hook_body(fhir_server=recording_fhir.base))
    assert response.status_code == 200 and recording_fhir.requests


def test_a_complete_prefetch_does_not_excuse_a_fhir_server_that_is_not_allowed(client_for, recording_fhir, capture):
    client = client_for(FHIR)
    logs = capture()
    response = call(client, hook_body(fhir_server=recording_fhir.base, prefetch=full_prefetch()))
    assert response.status_code == 403 and recording_fhir.requests == []
    assert refusals(logs) == ["fhirServer is not in the allowlist of this client"]


def test_a_prefetch_only_call_without_fhir_server_works_with_an_empty_allowlist(client_for, evaluate):
    response = call(client_for(), hook_body(fhir_server=None, prefetch=full_prefetch()))
    assert response.status_code == 200


def test_a_malformed_HER2CDS_FHIR_SERVERS_entry_stops_start_up(settings_overrides):
    with pytest.raises(ValueError, match="HER2CDS_FHIR_SERVERS"):
        create_app({**settings_overrides, "fhir_servers": "ftp://fhir.example.org"})


# ------------------------------------------------------------------ tokens only over TLS

TLS = [
    ("token to http refused", "http", None, False, 403),
    ("token to http allowed by HER2CDS_ALLOW_INSECURE_FHIR", "http", None, True, 200),
    ("no token to http", "http", "no-token", False, 200),
]


@pytest.mark.parametrize("name,scheme,token,insecure,status", TLS, ids=[t[0] for t in TLS])
def test_an_access_token_is_only_sent_over_tls(name, scheme, token, insecure, status, client_for, recording_fhir,
                                                 capture, evaluate):
    client = client_for(recording_fhir.base, allow_insecure_fhir=insecure, **READS_REAL_SOCKET)
    logs = capture()
    extra = {} if token == "no-token" else {"fhirAuthorization": {"access_token": "tok-123", "token_type": "Bearer"}}
    response = call(client, hook_body(fhir_server=recording_fhir.base, **extra))
    assert response.status_code == status
    if status == 403:
        assert recording_fhir.requests == []
        assert refusals(logs) and "clear text" in refusals(logs)[0]


def test_allowing_insecure_fhir_is_logged_loudly_at_start_up(client_for, logs):
    client_for()                          # the factory's handler is in place: `logs` now sees the next one
    client_for(allow_insecure_fhir=True)
    assert any(e["event"].startswith("fhir.insecure_allowed") and e["level"] == "warning" for e in log_events(logs))


# ------------------------------------------------------------------ the hook endpoint, auth required (per issuer)

@pytest.fixture
def two_issuer_client(secured_app_for, evaluate, recording_fhir):
    """The test key trusted under two issuers: one may name the recording server, the other may not."""
    app = secured_app_for({ISSUER: [FHIR], "https://allowed.invalid": [recording_fhir.base]},
                          fhir_servers="", **READS_REAL_SOCKET)
    return app.test_client()


@pytest.mark.parametrize("iss,status", [(ISSUER, 403), ("https://allowed.invalid", 200)],
                         ids=["issuer-without-that-server", "issuer-listing-it"])
def test_the_allowlist_is_the_one_of_the_tokens_issuer(two_issuer_client, recording_fhir, capture, iss, status):
    logs = capture()
    aud = f"https://cds.example.org/cds-services/{PV}"
    response = call(two_issuer_client, hook_body(fhir_server=recording_fhir.base),
                    Authorization=f"Bearer {signed_token(aud, iss)}")
    assert response.status_code == status
    assert bool(recording_fhir.requests) == (status == 200)
    assert refusals(logs) == ([] if status == 200 else ["fhirServer is not in the allowlist of this client"])


def test_a_trusted_issuers_entry_with_a_malformed_fhir_server_stops_start_up(secured_app_for):
    with pytest.raises(ValueError, match="fhir_servers"):
        secured_app_for({ISSUER: ["https://user@ehr.example.org/fhir"]})


# ------------------------------------------------------------------ DNS rebinding: the address is checked at connect


def test_the_public_only_session_refuses_a_name_that_now_resolves_to_loopback(recording_fhir, monkeypatch):
    monkeypatch.setattr(fhir_allowlist, "resolve", lambda host, port: ["127.0.0.1"])
    session = requests.Session()
    session.mount("http://", PublicOnlyAdapter(max_retries=0))
    with pytest.raises(FhirServerNotAllowed, match="non-public address"):
        session.get(f"http://rebind.test:{recording_fhir.port}/fhir/metadata", timeout=2)
    assert recording_fhir.requests == []


def test_the_public_only_session_connects_to_the_address_it_checked(recording_fhir, monkeypatch):
    """The name is resolved once per connection, checked, and that very address is dialled: here the
    checked "public" answer is mapped to the local test server to observe it (no second lookup)."""
    answers = iter([[PUBLIC_V4]])
    monkeypatch.setattr(fhir_allowlist, "resolve", lambda host, port: next(answers))
    dialled: list[tuple[str, int]] = []
    import urllib3.util.connection as u3conn
    real = u3conn.create_connection

    def create_connection(address, *args, **kwargs):
        dialled.append(address)
        return real(("127.0.0.1", address[1]), *args, **kwargs)

    monkeypatch.setattr(u3conn, "create_connection", create_connection)
    import urllib3.connection
    monkeypatch.setattr(urllib3.connection.connection, "create_connection", create_connection)
    session = requests.Session()
    session.mount("http://", PublicOnlyAdapter(max_retries=0))
    assert session.get(f"http://rebind.test:{recording_fhir.port}/fhir/metadata", timeout=2).status_code == 200
    assert dialled == [(PUBLIC_V4, recording_fhir.port)]


def test_dns_rebinding_after_the_check_is_caught_at_connect_and_is_a_412(client_for, recording_fhir, monkeypatch,
                                                                         capture):
    """Allowed by `*` because the name resolved to a public address at check time; at connect time it
    resolves to loopback (rebinding): nothing reaches the loopback server, the data is missing (412)."""
    client = client_for("*")
    logs = capture()
    answers = iter([[PUBLIC_V4]])
    monkeypatch.setattr(fhir_allowlist, "resolve", lambda host, port: next(answers, ["127.0.0.1"]))
    base = f"http://rebind.test:{recording_fhir.port}/fhir"
    response = call(client, hook_body(fhir_server=base))
    assert response.status_code == 412 and recording_fhir.requests == []
    failures = log_events(logs, "hook.call")[-1]["prefetch"]["failures"]
    assert set(failures.values()) == {"address-not-allowed"}
