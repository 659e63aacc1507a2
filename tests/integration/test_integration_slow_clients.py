"""Issue 14: slow clients (slow-loris) cannot stall the live service (`her2-cds serve`, real gunicorn)."""
from __future__ import annotations

import socket
import time

import pytest
import requests

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
    wait in the workers' pollers: with more of them than both workers have threads (2 x 4), a call still
    answers at once. gunicorn's own gthread worker gave each to a thread for 5 s: this call waited ~5 s."""
    host, port = live_service.base.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(24)]
    try:
        time.sleep(0.5)                      # all accepted by now, or queued for a worker with a free thread
        assert_new_connections_answered_at_once(live_service.base, timeout=10)
    finally:
        for sock in idle:
            sock.close()
