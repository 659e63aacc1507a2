"""Issue 14: slow clients (slow-loris) cannot stall the live service (`her2-cds serve`, real gunicorn)."""
from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import pytest
import requests

from sandbox.runner import start_service
from sandbox.sekmet import free_port, stop_process, wait_for_http

pytestmark = pytest.mark.integration


def slow_loris(base: str, path: str, how: str) -> socket.socket:
    """A connection that sends part of a request and then nothing (headers unfinished, or a body promised)."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    if how == "headers":
        sock.sendall(head + b"X-Slow: ")
    else:                                   # auth is off here: the service reads the body it was promised
        sock.sendall(head + b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
    return sock


def assert_new_connections_answered_at_once(base: str, timeout: float) -> None:
    """Six discovery calls, each on a new connection (spread over the workers), each answered within 2 s."""
    for _ in range(6):
        started = time.monotonic()
        response = requests.get(f"{base}/cds-services", timeout=timeout, headers={"Connection": "close"})
        assert response.status_code == 200
        assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("kinds", [("headers", "headers"), ("headers", "body")], ids=["2-slow-headers", "slow-headers-and-body"])
def test_two_slow_loris_connections_do_not_stall_the_service(live_service, kinds):
    """With one connection per worker (gunicorn sync, 2 workers) these two would hold the whole service."""
    path = f"/cds-services/{live_service.service('patient-view')['id']}"
    held = [slow_loris(live_service.base, path, kind) for kind in kinds]
    try:
        time.sleep(0.5)                      # both are now inside the server
        assert_new_connections_answered_at_once(live_service.base, timeout=5)
    finally:
        for sock in held:
            sock.close()


def test_idle_connections_do_not_hold_the_services_threads(live_service):
    """Connections opened and left silent (a client's spare pooled connections, a pre-connect, a port scan)
    wait in the workers' pollers: with more of them than both workers have threads (2 x 2), a call still
    answers at once. gunicorn's own gthread worker gave each to a thread for 5 s: this call waited ~5 s."""
    host, port = live_service.base.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(24)]
    try:
        time.sleep(0.5)                      # all accepted by now, or queued for a worker with a free thread
        assert_new_connections_answered_at_once(live_service.base, timeout=10)
    finally:
        for sock in idle:
            sock.close()


class _SlowFhirHandler(http.server.BaseHTTPRequestHandler):
    """A FHIR server that answers every read after `DELAY_S`: the patient, else an empty search result."""

    DELAY_S = 0.3
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        time.sleep(self.DELAY_S)
        resource = ({"resourceType": "Patient", "id": "slow-1"} if "/Patient/" in self.path
                    else {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []})
        body = json.dumps(resource).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def service_reading_a_slow_fhir_server(tmp_path):
    """A service of its own (2 workers x 2 threads) whose calls each wait 0.3 s on their FHIR reads."""
    fhir = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowFhirHandler)
    threading.Thread(target=fhir.serve_forever, daemon=True).start()
    fhir_base = f"http://127.0.0.1:{fhir.server_address[1]}/fhir"
    port = free_port()
    with open(tmp_path / "service.log", "wb") as log:
        process = start_service(port, tmp_path, fhir_servers=[fhir_base], env={"HER2CDS_THREADS": "2"}, log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for_http(f"{base}/cds-services", 60, process), (tmp_path / "service.log").read_text()[-3000:]
        yield base, fhir_base
    finally:
        stop_process(process, grace=10)
        fhir.shutdown()
        fhir.server_close()


def test_a_new_connection_is_answered_while_kept_alive_clients_keep_every_thread_busy(service_reading_a_slow_fhir_server):
    """Eight kept-alive clients keep more calls in flight than the 4 threads: no worker ever has a free thread.
    A worker that stopped listening until one had left a new connection in the kernel's queue until the load
    ended (~5 s here; 3-6 s in the bench's no-prefetch runs); one that listens again after a short pause
    answers it behind the calls already queued (~0.1 s + two 0.3 s calls)."""
    base, fhir_base = service_reading_a_slow_fhir_server
    body = {"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", "fhirServer": fhir_base,
            "context": {"userId": "Practitioner/example", "patientId": "slow-1"}}
    url = f"{base}/cds-services/{_service_id(base, 'patient-view')}"
    load_ends = time.monotonic() + 5.0
    statuses: list[int] = []

    def kept_alive_client() -> None:
        with requests.Session() as session:
            while time.monotonic() < load_ends:
                statuses.append(session.post(url, json=body, timeout=15).status_code)

    clients = [threading.Thread(target=kept_alive_client) for _ in range(8)]
    for client in clients:
        client.start()
    try:
        time.sleep(1.0)                      # every client has its connection and a call in flight
        started = time.monotonic()
        response = requests.get(f"{base}/cds-services", timeout=15, headers={"Connection": "close"})
        waited = time.monotonic() - started
    finally:
        for client in clients:
            client.join()
    assert response.status_code == 200
    assert statuses and set(statuses) == {200}
    assert waited < 2.0, f"a new connection waited {waited:.1f} s behind the kept-alive clients' load"


def _service_id(base: str, hook: str) -> str:
    return next(s["id"] for s in requests.get(f"{base}/cds-services", timeout=10).json()["services"] if s["hook"] == hook)
