"""Retention: issued cards and feedback older than the configured age, and replay rows of expired tokens,
are purged by `her2-cds purge` and automatically by each worker's background writer."""
from __future__ import annotations

import datetime as dt
import os
import sqlite3
import stat
import subprocess
import sys

from sqlalchemy import func, insert, select

from cds_service.feedback.card_log import CardLog
from cds_service.retention import Retention, purge
from cds_service.storage import Database, feedback_table, issued_cards_table, rfc3339_ms, used_jwt_ids_table

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


def seed(db: Database, *, age_days: float, tag: str) -> None:
    """One issued card, one feedback item and one replay row, `age_days` old (the replay row expired then)."""
    when = NOW - dt.timedelta(days=age_days)
    with db.begin() as conn:
        conn.execute(insert(issued_cards_table), [{"card_uuid": f"card-{tag}", "service_id": "s",
                                                   "issued_at": rfc3339_ms(when), "issuer": "i"}])
        conn.execute(insert(feedback_table), [{"natural_key": f"key-{tag}", "service_id": "s", "card_uuid": f"card-{tag}",
                                               "outcome": "overridden", "outcome_timestamp": rfc3339_ms(when),
                                               "received_at": rfc3339_ms(when)}])
        conn.execute(insert(used_jwt_ids_table), [{"iss": "i", "jti": f"jti-{tag}",
                                                   "expires_at": int(when.timestamp())}])


def counts(db: Database) -> tuple[int, int, int]:
    with db.begin() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar_one()
                     for t in (issued_cards_table, feedback_table, used_jwt_ids_table))


def test_purge_deletes_what_is_older_than_the_age_and_keeps_the_rest(db):
    seed(db, age_days=400, tag="old")
    seed(db, age_days=10, tag="recent")            # its replay row expired 10 days ago: purged too
    result = purge(db, 365, now=NOW)
    assert (result.issued_cards, result.feedback, result.replay_rows) == (1, 1, 2)
    assert counts(db) == (1, 1, 0)


def test_a_replay_row_of_a_token_still_valid_is_kept(db):
    with db.begin() as conn:
        conn.execute(insert(used_jwt_ids_table), [{"iss": "i", "jti": "live", "expires_at": int(NOW.timestamp()) + 60}])
    assert purge(db, 1, now=NOW).replay_rows == 0


def test_the_background_writer_purges_on_its_own(db):
    seed(db, age_days=4000, tag="ancient")
    card_log = CardLog(db, retention=Retention(max_age_days=365, interval_seconds=3600))
    card_log.start()
    assert card_log.flush()
    assert counts(db)[:2] == (0, 0)


def test_the_purge_command_uses_the_configured_age(db, db_url):
    seed(db, age_days=100, tag="a")
    env = {**os.environ, "HER2CDS_FEEDBACK_DB_URL": db_url, "HER2CDS_RETENTION_DAYS": "30"}
    done = subprocess.run([sys.executable, "-m", "cds_service.cli", "purge"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "purged 1 issued card(s) and 1 feedback item(s) older than 30 days" in done.stdout
    assert counts(db)[:2] == (0, 0)


def test_the_sqlite_file_is_created_owner_only(tmp_path):
    path = tmp_path / "data" / "her2cds.sqlite3"
    database = Database(f"sqlite:///{path}")
    database.create_all()
    database.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_database_from_before_the_issuer_column_gets_it(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE cds_issued_cards (card_uuid VARCHAR(64) PRIMARY KEY, service_id VARCHAR(128) "
                     "NOT NULL, hook_instance VARCHAR(256), topic_code TEXT, topic_system TEXT, indicator TEXT, "
                     "suggestion_uuids TEXT, issued_at VARCHAR(40) NOT NULL)")
    database = Database(f"sqlite:///{path}")
    database.create_all()
    assert CardLog(database).record("s", None, [{"uuid": "c1"}], issuer="https://ehr.example.org") == 1
    with database.begin() as conn:
        assert conn.execute(select(issued_cards_table.c.issuer)).scalar_one() == "https://ehr.example.org"
    database.dispose()
