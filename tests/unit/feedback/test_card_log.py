"""`CardLog.record_later`: issued cards are written by a background thread, in batches, none lost."""
from __future__ import annotations

import threading
import time

from sqlalchemy import func, select

from cds_service.feedback.card_log import CardLog
from cds_service.storage import issued_cards_table
from feedback_helpers import PV, card


def logged_count(db) -> int:
    with db.begin() as conn:
        return conn.execute(select(func.count()).select_from(issued_cards_table)).scalar_one()


def test_flush_with_nothing_queued_returns_at_once(db):
    assert CardLog(db).flush(timeout=0.1) is True


def test_cards_queued_from_many_threads_are_all_written_once(db):
    log = CardLog(db)
    batches = [[card("her2-next-regimen", indicator="info") for _ in range(5)] for _ in range(40)]
    threads = [threading.Thread(target=log.record_later, args=(PV, f"hook-{i}", b)) for i, b in enumerate(batches)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.record_later(PV, "again", batches[0])        # a re-sent card is ignored, not duplicated
    assert log.flush()
    assert logged_count(db) == 200


def test_cards_without_a_uuid_are_not_queued(db):
    log = CardLog(db)
    log.record_later(PV, None, [{"summary": "no uuid"}])
    assert log.flush() and logged_count(db) == 0


def test_a_backlog_is_written_batch_after_batch_without_lingering_between_them(db):
    log = CardLog(db)
    log.BATCH, log.LINGER_S = 10, 0.5        # 100 cards in ten calls: ten full batches, 5 s if each lingered
    for i in range(10):
        log.record_later(PV, f"hook-{i}", [card("her2-next-regimen") for _ in range(10)])
    deadline = time.monotonic() + 2.5
    while logged_count(db) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert logged_count(db) == 100
