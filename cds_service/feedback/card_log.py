"""The issued-card log: which cards the service issued, to whom, so feedback (which names only a card's
uuid) can be checked against its owner and reported per topic. No PHI: no summary, no patient id.

Written in batches by one background thread per process (`record_later`), so neither the clinician's
answer nor the gunicorn worker waits on the database; the same thread runs the periodic retention purge.
"""
from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import os
import queue
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from cards.topics import CARD_MAPPING, card_topic

from ..client_identity import AUTH_OFF_ISSUER
from ..retention import PurgeSchedule, Retention, purge
from ..storage import Database, issued_cards_table, utc_timestamp

log = logging.getLogger("her2cds.feedback")



@dataclass(frozen=True)
class IssuedCard:
    """What the card log knows of one issued card."""

    card_uuid: str
    service_id: str
    issuer: str | None
    topic_code: str | None
    topic_system: str | None
    hook_instance: str | None
    suggestion_uuids: frozenset[str]



class CardLog:
    """Records the cards the service issued (uuid -> topic, indicator, suggestion uuids), no PHI.

    The hook endpoint calls `record_later`: one background thread per process writes the queued cards
    in batches, so neither the clinician's answer nor the gunicorn worker waits on the database.
    `record` writes synchronously. A failure is logged and swallowed: losing a log row must never
    cost the clinician the cards.
    """

    BATCH = 1000
    # Wait this long after the first queued call for more, so one transaction carries many calls' cards.
    # Each transaction costs the worker beyond its rows (the writer woken, a commit with `synchronous =
    # FULL`, a GIL hand-over per SQLite step): a transaction per call cost about a millisecond of CPU; at
    # 50 ms, 16 concurrent calls still measured 8-10 % more CPU per call than at 0.5 s (issue 15).
    # Feedback is not held up: a lookup flushes this process's queue and waits up to
    # CARD_LOOKUP_WAIT_SECONDS (2 s) for the other workers'. Only a killed worker (SIGKILL, OOM) loses
    # what it queued in its last LINGER_S; a stopping one writes it first (`flush`, atexit).
    LINGER_S = 0.5

    def __init__(self, db: Database, retention: Retention | None = None) -> None:
        self.db = db
        self.retention = retention
        self._pending: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer_pid: int | None = None
        self._lock = threading.Lock()
        self._flush_requested = threading.Event()

    def record(self, service_id: str, hook_instance: str | None, cards: Iterable[Mapping[str, Any]], *,
               issuer: str = AUTH_OFF_ISSUER) -> int:
        """Log the cards that carry a uuid; returns how many were offered for logging (0 on failure)."""
        return self._insert(self._rows(service_id, hook_instance, cards, issuer))

    def record_later(self, service_id: str, hook_instance: str | None, cards: Iterable[Mapping[str, Any]], *,
                     issuer: str = AUTH_OFF_ISSUER) -> None:
        """Queue the cards for the background writer (started on first use in each process)."""
        rows = self._rows(service_id, hook_instance, cards, issuer)
        if rows:
            self._ensure_writer()
            self._pending.put(rows)

    def start(self) -> None:
        """Start this process's background writer (and with it the periodic retention purge)."""
        self._ensure_writer()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written (tests, process exit); False on timeout."""
        if self._writer_pid != os.getpid():
            return True
        done = threading.Event()
        self._pending.put(done)
        self._flush_requested.set()       # cut a linger short
        return done.wait(timeout)

    def _ensure_writer(self) -> None:
        pid = os.getpid()
        if self._writer_pid == pid:
            return
        with self._lock:
            if self._writer_pid != pid:   # a forked worker inherits the attribute but not the thread
                threading.Thread(target=self._write_forever, name="her2cds-card-log", daemon=True).start()
                atexit.register(self.flush, 2.0)
                self._writer_pid = pid

    def _write_forever(self) -> None:
        schedule = PurgeSchedule(self.retention) if self.retention is not None else None
        backlog = False
        while True:
            if schedule is not None and schedule.due():
                self._purge()
            try:
                item = self._pending.get(timeout=schedule.seconds_left() if schedule is not None else None)
            except queue.Empty:
                continue
            # Linger on an Event only flush() sets, then take what queued meanwhile: the calls queued during
            # the linger do not wake this thread one by one (each wake-up was a GIL hand-over in the worker).
            # No linger while a backlog is worked off: after a full batch, more is waiting already (a linger
            # per batch would cap the writer at BATCH rows per LINGER_S and let the queue grow).
            if not backlog and not isinstance(item, threading.Event):
                self._flush_requested.wait(self.LINGER_S)
            self._flush_requested.clear()
            rows: list[dict[str, Any]] = []
            waiting: list[threading.Event] = []
            while True:
                if isinstance(item, threading.Event):
                    waiting.append(item)
                else:
                    rows.extend(item)
                if len(rows) >= self.BATCH:
                    break
                try:
                    item = self._pending.get_nowait()
                except queue.Empty:
                    break
            backlog = len(rows) >= self.BATCH
            self._insert(rows)
            for event in waiting:
                event.set()

    def _purge(self) -> None:
        """The automatic retention path; a failure is logged and retried at the next interval."""
        assert self.retention is not None
        try:
            counts = purge(self.db, self.retention.max_age_days)
        except SQLAlchemyError:
            log.exception("retention.purge_failed")
            return
        log.info("retention.purged", extra={**dataclasses.asdict(counts), "max_age_days": self.retention.max_age_days})

    @staticmethod
    def _rows(service_id: str, hook_instance: str | None, cards: Iterable[Mapping[str, Any]],
              issuer: str) -> list[dict[str, Any]]:
        issued_at = utc_timestamp()
        rows = []
        for card in cards:
            uuid = card.get("uuid") if isinstance(card, CARD_MAPPING) else None
            if not isinstance(uuid, str) or not uuid or len(uuid) > 64:
                continue
            topic = card_topic(card)
            suggestions = [s.get("uuid") for s in card.get("suggestions") or []
                           if isinstance(s, CARD_MAPPING) and isinstance(s.get("uuid"), str)]
            rows.append({
                "card_uuid": uuid.lower(),
                "service_id": service_id,
                "hook_instance": hook_instance[:256] if isinstance(hook_instance, str) else None,
                "topic_code": topic.get("code"),
                "topic_system": topic.get("system"),
                "indicator": card.get("indicator"),
                "suggestion_uuids": json.dumps([s.lower() for s in suggestions]) if suggestions else None,
                "issued_at": issued_at,
                "issuer": issuer[:512],
            })
        return rows

    def _insert(self, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        try:
            with self.db.begin() as conn:
                self.db.insert_ignoring_duplicates(conn, issued_cards_table, rows)
        except SQLAlchemyError:
            log.exception("feedback.card_log_failed: could not record %d issued card(s)", len(rows))
            return 0
        return len(rows)

