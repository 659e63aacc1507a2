"""The same storage behaviours on PostgreSQL (psycopg 3), against a real server.

The session fixture `postgres` (tests/conftest.py) starts Debian's PostgreSQL in a temporary data
directory; each test gets a database of its own. Locally the tests skip (with the reason) when no
PostgreSQL is installed; in CI they fail instead. HER2CDS_TEST_POSTGRES_URL points them at an
existing server instead (its tables are dropped and recreated: use a throw-away database).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from cds_service.auth import ReplayStore
from cds_service.feedback.card_log import CardLog
from cds_service.feedback.report import feedback_report
from cds_service.storage import Database, metadata
from feedback_helpers import PV, accepted, card, feedback_app, issue, overridden, stored



@pytest.fixture
def pg_url(postgres) -> str:
    return postgres.new_database()


@pytest.fixture
def pg(pg_url: str) -> Database:
    database = Database(pg_url)
    metadata.drop_all(database.engine)
    database.create_all()
    database.create_all()
    yield database
    metadata.drop_all(database.engine)
    database.dispose()


def test_feedback_is_stored_once_per_item_on_postgresql(pg):
    client = feedback_app(pg).test_client()
    body = {"feedback": [overridden(), accepted(), overridden()]}
    body["feedback"].append(dict(body["feedback"][0]))
    issue(pg, body["feedback"])
    assert client.post(f"/cds-services/{PV}/feedback", json=body).status_code == 200
    assert client.post(f"/cds-services/{PV}/feedback", json=body).status_code == 200
    assert len(stored(pg)) == 3


def test_concurrent_batches_are_all_stored_on_postgresql(pg):
    client_for = [feedback_app(pg).test_client() for _ in range(4)]
    bodies = [{"feedback": [overridden() for _ in range(50)]} for _ in range(20)]
    issue(pg, [i for b in bodies for i in b["feedback"]])

    def send(n: int) -> int:
        return client_for[n % 4].post(f"/cds-services/{PV}/feedback", json=bodies[n]).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(send, range(20))) == {200}
        assert set(pool.map(send, range(20))) == {200}
    assert len(stored(pg)) == 1000


def test_a_replayed_jti_is_refused_on_postgresql(pg, pg_url):
    store = ReplayStore(pg)
    assert store.first_use("https://client.test", "jti-1", 2_000_000_000)
    other_worker = Database(pg_url)
    assert not ReplayStore(other_worker).first_use("https://client.test", "jti-1", 2_000_000_000)
    other_worker.dispose()


def test_the_report_runs_on_postgresql(pg, pg_url):
    issued = card("her2-next-regimen", suggestions=1)
    CardLog(pg).record(PV, None, [issued])
    feedback_app(pg).test_client().post(f"/cds-services/{PV}/feedback", json={"feedback": [
        accepted(issued["uuid"], suggestions=[issued["suggestions"][0]["uuid"]])]})
    assert "| her2-next-regimen | 1 | 1 | 1 | 0 | 100% | 0% | - |" in feedback_report(pg_url)


def test_long_client_texts_fit_on_postgresql(pg):
    item = overridden(code="c" * 2000, comment="u" * 5000, display="d" * 2000,
                      ts="2026-12-01T10:05:31." + "1" * 60 + "Z")
    item["overrideReason"]["reason"]["system"] = "https://example.org/" + "s" * 2000
    issue(pg, [item])
    client = feedback_app(pg).test_client()
    assert client.post(f"/cds-services/{PV}/feedback", json={"feedback": [item]}).status_code == 200
    assert len(stored(pg)) == 1
