"""Durability under load: 1,000 items in 20 concurrent requests to a real threaded WSGI server, then retried."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from werkzeug.serving import make_server

from cds_service.storage import Database
from feedback_helpers import PV, accepted, feedback_app, issue, overridden, stored

REQUESTS = 20
ITEMS_PER_REQUEST = 50


@pytest.fixture
def server_url(db: Database) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, feedback_app(db), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def send_all(url: str, bodies: list[dict]) -> list[int]:
    def send(body: dict) -> int:
        with requests.Session() as session:
            return session.post(url, json=body, timeout=30).status_code
    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        return list(pool.map(send, bodies))


def test_a_thousand_items_in_twenty_concurrent_requests_are_all_stored_and_retries_add_none(server_url, db):
    bodies = [{"feedback": [overridden(ts=f"2026-12-01T10:{n % 60:02d}:00Z") if n % 2 else accepted()
                            for n in range(ITEMS_PER_REQUEST)]} for _ in range(REQUESTS)]
    issue(db, [i for b in bodies for i in b["feedback"]])
    url = f"{server_url}/cds-services/{PV}/feedback"
    assert send_all(url, bodies) == [200] * REQUESTS
    rows = stored(db)
    assert len(rows) == REQUESTS * ITEMS_PER_REQUEST
    assert {r.card_uuid for r in rows} == {i["card"] for b in bodies for i in b["feedback"]}

    assert send_all(url, bodies) == [200] * REQUESTS
    assert len(stored(db)) == REQUESTS * ITEMS_PER_REQUEST


def test_writers_in_two_databases_on_one_file_do_not_lose_items(db_url):
    """Two worker processes' engines on one SQLite file writing at the same time (WAL + busy_timeout)."""
    first, second = Database(db_url), Database(db_url)
    first.create_all()
    apps = [feedback_app(first).test_client(), feedback_app(second).test_client()]
    bodies = [{"feedback": [overridden() for _ in range(25)]} for _ in range(20)]
    issue(first, [i for b in bodies for i in b["feedback"]])

    def send(n: int) -> int:
        return apps[n % 2].post(f"/cds-services/{PV}/feedback", json=bodies[n]).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert list(pool.map(send, range(len(bodies)))) == [200] * len(bodies)
    assert len(stored(first)) == 500
    first.dispose()
    second.dispose()
