"""The database: SQLite file by default (directory created, WAL), PostgreSQL by URL, safe across fork."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from cds_service.feedback.store import FeedbackItem, FeedbackStore
from cds_service.storage import Database
from feedback_helpers import PV, overridden, stored


def test_the_parent_directory_of_the_sqlite_file_is_created(tmp_path):
    Database(f"sqlite:///{tmp_path / 'a' / 'b' / 'db.sqlite3'}").create_all()
    assert (tmp_path / "a" / "b" / "db.sqlite3").exists()


def test_create_all_is_idempotent(db):
    db.create_all()
    db.create_all()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(db):
    with db.begin() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


@pytest.mark.parametrize("url", ["postgresql://u:p@db.example/her2", "postgres://u:p@db.example/her2"])
def test_a_postgresql_url_uses_psycopg_3_without_connecting_at_construction(url):
    database = Database(url)
    assert database.url.drivername == "postgresql+psycopg"
    assert "p@" not in repr(database)


def test_an_explicit_driver_in_the_url_is_kept():
    assert Database("postgresql+psycopg2://u@h/d").url.drivername == "postgresql+psycopg2"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_database_used_before_fork_works_in_the_child_and_still_in_the_parent(db):
    """gunicorn --preload: create_app (and create_all) run in the master, then workers are forked."""
    store = FeedbackStore(db)
    store.save([FeedbackItem.from_json(PV, None, overridden())])
    parent_engine = db.engine
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must build its own engine and write through it
        status = 1
        try:
            os.close(read)
            store.save([FeedbackItem.from_json(PV, None, overridden())])
            status = 0 if db.engine is not parent_engine else 2
        finally:
            os.write(write, bytes([status]))
            os._exit(0)
    os.close(write)
    child_status = os.read(read, 1)
    os.waitpid(pid, 0)
    os.close(read)
    assert child_status == bytes([0])
    assert db.engine is parent_engine
    store.save([FeedbackItem.from_json(PV, None, overridden())])
    assert len(stored(db)) == 3


def test_an_in_memory_sqlite_database_is_one_shared_database():
    database = Database("sqlite://")
    database.create_all()
    FeedbackStore(database).save([FeedbackItem.from_json(PV, None, overridden())])
    with database.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM cds_feedback")).scalar_one() == 1
