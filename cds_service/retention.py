"""Retention: issued cards, feedback and JWT replay rows are not kept for ever.

Why: the issued-card log and the feedback store grow with every hook call, and old rows serve no
report anyone reads; the replay store only needs a token id until the token has expired. `purge`
deletes issued cards and feedback older than `max_age_days` (by the server's issued/received time) and
replay rows whose token has expired. It runs from `her2-cds purge` and, automatically, from each
worker's background card-log writer every `interval_seconds` (HER2CDS_RETENTION_DAYS,
HER2CDS_PURGE_INTERVAL_SECONDS).
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from sqlalchemy import delete

from .storage import Database, feedback_table, issued_cards_table, rfc3339_ms, used_jwt_ids_table


@dataclass(frozen=True)
class Retention:
    """How long issued cards and feedback are kept, and how often a worker purges (HER2CDS_RETENTION_DAYS,
    HER2CDS_PURGE_INTERVAL_SECONDS)."""

    max_age_days: int = 365
    interval_seconds: float = 3600.0


@dataclass(frozen=True)
class PurgeCounts:
    """How many rows one purge deleted, per table (logged by the background writer, printed by `her2-cds purge`)."""

    issued_cards: int
    feedback: int
    replay_rows: int


def purge(db: Database, max_age_days: int, *, now: dt.datetime | None = None) -> PurgeCounts:
    """Delete issued cards and feedback older than `max_age_days`, and replay rows of expired tokens."""
    if max_age_days < 1:
        raise ValueError(f"max_age_days must be at least 1, not {max_age_days!r}")
    moment = now or dt.datetime.now(dt.timezone.utc)
    cutoff = rfc3339_ms(moment - dt.timedelta(days=max_age_days))
    with db.begin() as conn:
        cards = conn.execute(delete(issued_cards_table).where(issued_cards_table.c.issued_at < cutoff)).rowcount
        feedback = conn.execute(delete(feedback_table).where(feedback_table.c.received_at < cutoff)).rowcount
        replay = conn.execute(delete(used_jwt_ids_table)
                              .where(used_jwt_ids_table.c.expires_at < int(moment.timestamp()))).rowcount
    return PurgeCounts(int(cards or 0), int(feedback or 0), int(replay or 0))


class PurgeSchedule:
    """When the next automatic purge is due (monotonic clock, per process)."""

    def __init__(self, retention: Retention, clock=time.monotonic) -> None:
        self.retention = retention
        self._clock = clock
        self._next = clock()              # the first purge runs as soon as the writer starts

    def due(self) -> bool:
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + self.retention.interval_seconds
        return True

    def seconds_left(self) -> float:
        return max(0.0, self._next - self._clock())
