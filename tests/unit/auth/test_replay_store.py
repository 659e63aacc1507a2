"""The JWT replay store: one table shared by every worker process, rows kept until the token expires."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import func, select

from cds_service.auth import ReplayStore
from cds_service.storage import Database, used_jwt_ids_table

ISS = "https://client.test"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rows(db: Database) -> int:
    with db.begin() as conn:
        return conn.execute(select(func.count()).select_from(used_jwt_ids_table)).scalar_one()


def test_the_first_use_of_a_jti_is_accepted_and_the_second_refused(db):
    store = ReplayStore(db)
    assert store.first_use(ISS, "jti-1", expires_at=2_000_000_000)
    assert not store.first_use(ISS, "jti-1", expires_at=2_000_000_000)


def test_a_jti_whose_recorded_token_has_expired_may_be_used_again(db):
    clock = Clock(1_000_000)
    store = ReplayStore(db, clock=clock, purge_interval_seconds=10**9)
    assert store.first_use(ISS, "jti-1", expires_at=1_000_100)
    clock.now = 1_000_200
    assert store.first_use(ISS, "jti-1", expires_at=1_000_500)
    assert not store.first_use(ISS, "jti-1", expires_at=1_000_500)


def test_expired_rows_are_purged_opportunistically(db):
    clock = Clock(1_000_000)
    store = ReplayStore(db, clock=clock, purge_interval_seconds=60)
    for n in range(5):
        store.first_use(ISS, f"old-{n}", expires_at=1_000_010)
    assert rows(db) == 5
    clock.now = 1_000_100
    store.first_use(ISS, "new", expires_at=1_000_400)
    assert rows(db) == 1


def test_a_replay_in_another_process_sharing_the_sqlite_file_is_refused(tmp_path: Path):
    """What two gunicorn workers do: separate processes, separate engines, one database file."""
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    db = Database(url)
    db.create_all()
    assert ReplayStore(db).first_use(ISS, "cross-process", expires_at=2_000_000_000)
    script = textwrap.dedent(f"""
        from cds_service.auth import ReplayStore
        from cds_service.storage import Database
        db = Database({url!r})
        store = ReplayStore(db)
        print(store.first_use({ISS!r}, "cross-process", 2_000_000_000), store.first_use({ISS!r}, "fresh", 2_000_000_000))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "True"]
    assert not ReplayStore(db).first_use(ISS, "fresh", expires_at=2_000_000_000)
    db.dispose()
