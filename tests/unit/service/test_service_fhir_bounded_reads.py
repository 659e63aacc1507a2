"""Issue 14: every FHIR read is bounded (bytes per answer, bytes per call, read deadline, reads in flight),
and the 412 names the missing data, never the network error class (no port-scan oracle)."""
from __future__ import annotations

import json
import re
import socket
import threading
import time
from typing import Iterator

import pytest
import requests
import responses

from cds_service import fhir_client as fc
from service_helpers import FHIR, PATIENT, PV, SEARCH_KEYS, HangingServer, closed_port, hook_body, log_events, \
    resource, searchset, serve_record


def call(client, body):
    return client.post(f"/cds-services/{PV}", data=json.dumps(body), content_type="application/json")


class DrippingServer(HangingServer):
    """Answers 200 with a large Content-Length, then sends one byte every `interval` s (for `seconds` s)."""

    def __init__(self, interval: float = 0.05, seconds: float = 6.0) -> None:
        super().__init__()
        self.interval, self.seconds = interval, seconds
        self.reading: set[socket.socket] = set()      # connections whose reader has not hung up yet

    def handle(self, conn: socket.socket) -> None:
        threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        self.reading.add(conn)
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: 100000\r\n\r\n")
            end = time.monotonic() + self.seconds
            while time.monotonic() < end and not self.stop.is_set():
                conn.sendall(b" ")
                time.sleep(self.interval)
        except OSError:
            pass
        finally:
            self.reading.discard(conn)
            conn.close()


@pytest.fixture
def dripping() -> Iterator[DrippingServer]:
    with DrippingServer() as server:
        yield server


# ------------------------------------------------------------------ read deadline


def test_a_slow_drip_cannot_stretch_one_read_past_its_deadline(dripping):
    client = fc.FhirClient(requests.Session(), dripping.base, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(fc.Timeout):
        client.get("Patient/p1", what="patient")
    assert time.monotonic() - started < 0.5 + 0.3


def test_no_fhir_read_outlives_its_hook_call_by_more_than_the_read_deadline(client_for, dripping):
    client = client_for(dripping.base)               # test app: 0.5 s read deadline, 1.0 s call deadline
    started = time.monotonic()
    response = call(client, hook_body(fhir_server=dripping.base))
    assert response.status_code == 412 and time.monotonic() - started < 1.0 + 0.5
    answered = time.monotonic()
    while dripping.reading and time.monotonic() - answered < 3:
        time.sleep(0.05)
    assert not dripping.reading, "FHIR reads still going on"
    assert time.monotonic() - answered <= 0.5 + 0.3


# ------------------------------------------------------------------ byte caps


def big_bundle(n: int, pad: int = 1000) -> dict:
    return searchset([{**resource("Observation", f"o{i}"), "note": [{"text": "x" * pad}]} for i in range(n)])


@pytest.mark.parametrize("stream", [False, True], ids=["content-length", "no-content-length"])
def test_an_answer_over_the_response_cap_is_too_large(fhir, stream):
    body = json.dumps(big_bundle(30)).encode()
    headers = {} if stream else {"Content-Length": str(len(body))}     # declared: refused before reading
    fhir.add(responses.GET, f"{FHIR}/Observation", body=body, content_type="application/fhir+json", headers=headers)
    client = fc.FhirClient(requests.Session(), FHIR, timeout=2, max_response_bytes=10_000)
    with pytest.raises(fc.TooLarge):
        client.get("Observation", what="observations")


def test_a_required_answer_over_the_cap_is_a_412_and_the_log_says_too_large(client_for, fhir, capture):
    client = client_for(FHIR, fhir_max_response_bytes=10_000)
    logs = capture()
    serve_record(fhir)
    fhir.replace(responses.GET, re.compile(re.escape(f"{FHIR}/Observation") + r"([/?].*)?$"),
                 json=big_bundle(30), content_type="application/fhir+json")
    response = call(client, hook_body())
    assert response.status_code == 412
    assert "observations (Observation)" in response.get_json()["issue"][0]["details"]["text"]
    assert log_events(logs, "hook.call")[-1]["prefetch"]["failures"]["observations"] == "too-large"


def test_the_answers_of_one_call_share_a_byte_budget(client_for, fhir, capture, evaluate):
    """Each answer is under the per-answer cap, together they exceed the per-call budget."""
    client = client_for(FHIR, fhir_max_response_bytes=50_000, fhir_max_call_bytes=60_000, fhir_max_workers=1)
    logs = capture()
    for rtype in ["Patient", *SEARCH_KEYS.values()]:
        document = resource("Patient", PATIENT) if rtype == "Patient" else big_bundle(20)   # ~22 kB each
        fhir.add(responses.GET, re.compile(re.escape(f"{FHIR}/{rtype}") + r"([/?].*)?$"), json=document)
    response = call(client, hook_body())
    failures = log_events(logs, "hook.call")[-1]["prefetch"].get("failures", {})
    assert "too-large" in failures.values()
    assert response.status_code in (200, 412)   # which keys fail depends on the order the answers arrive


# ------------------------------------------------------------------ reads in flight per process


def test_the_fhir_requests_in_flight_per_process_are_bounded():
    pool = fc.SessionPool(max_concurrent_reads=2)
    active, peak, lock = [0], [0], threading.Lock()

    with responses.RequestsMock() as rsps:
        def slow(request):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.1)
            with lock:
                active[0] -= 1
            return 200, {}, json.dumps(searchset([]))

        rsps.add_callback(responses.GET, re.compile(re.escape(FHIR) + r"/.*"), callback=slow)
        clients = [fc.FhirClient(pool.session(), FHIR, timeout=5, read_slots=pool.read_slots) for _ in range(6)]
        threads = [threading.Thread(target=c.get, args=("Condition",), kwargs={"what": "c"}) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
    assert peak[0] == 2


def test_no_free_read_slot_before_the_deadline_is_a_busy_failure():
    pool = fc.SessionPool(max_concurrent_reads=1)
    assert pool.read_slots.acquire(timeout=1)
    client = fc.FhirClient(pool.session(), FHIR, timeout=0.2, read_slots=pool.read_slots)
    with pytest.raises(fc.Busy):
        client.get("Condition", what="conditions")


# ------------------------------------------------------------------ the 412 is no port-scan oracle


@pytest.fixture
def failing_bases(fhir) -> Iterator[dict[str, str]]:
    """FHIR bases failing in different ways: closed port, never answers, 401, 500."""
    fhir.add_passthru("http://127.0.0.1")        # the closed port and the hanging server are real sockets
    with HangingServer() as hanging:
        for host, status in (("unauthorized.test", 401), ("broken.test", 500)):
            fhir.add(responses.GET, re.compile(rf"https://{host}/fhir/.*"), status=status, json={})
        yield {"closed-port": f"http://127.0.0.1:{closed_port()}/fhir",
               "hangs": hanging.base,
               "unauthorized-401": "https://unauthorized.test/fhir",
               "server-error-5xx": "https://broken.test/fhir"}


def test_the_412_text_is_the_same_whatever_the_network_failure_while_the_log_keeps_it(client_for, failing_bases,
                                                                                     capture):
    client = client_for(*failing_bases.values())
    logs = capture()
    texts, kinds = {}, {}
    for name, base in failing_bases.items():
        response = call(client, hook_body(fhir_server=base))
        assert response.status_code == 412, name
        texts[name] = response.get_json()["issue"][0]["details"]["text"]
        kinds[name] = log_events(logs, "hook.call")[-1]["prefetch"]["failures"]["patient"]
    assert len(set(texts.values())) == 1, texts
    text = next(iter(texts.values()))
    assert "patient (Patient)" in text and "could not be read from fhirServer" in text
    for word in ("timeout", "unreachable", "401", "5xx", "refused", "in time", "reached"):
        assert word not in text
    assert kinds == {"closed-port": "unreachable", "hangs": "timeout", "unauthorized-401": "unauthorized-401",
                     "server-error-5xx": "server-error-5xx"}
