"""The feedback store: durable, idempotent storage of feedback items, for cards the card log knows.

Clients retry and report the same card more than once, so every item is stored once under a natural
key (card, outcome, instant, suggestions, reason) with a unique constraint and insert-or-ignore.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ..storage import Database, feedback_table, issued_cards_table, utc_timestamp
from .card_log import CardLog, IssuedCard


def canonical_instant(timestamp: str) -> str:
    """One spelling per instant (`...:31Z` and `...:31.000Z` are the same time) for the natural key."""
    try:
        parsed = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class FeedbackItem:
    """One validated feedback item, flattened to the columns it is stored in."""

    service_id: str
    hook_instance: str | None
    card_uuid: str
    outcome: str
    accepted_suggestions: tuple[str, ...]
    reason_code: str | None
    reason_system: str | None
    reason_display: str | None
    user_comment: str | None
    outcome_timestamp: str

    @classmethod
    def from_json(cls, service_id: str, hook_instance: str | None, item: Mapping[str, Any]) -> FeedbackItem:
        override = item.get("overrideReason") or {}
        reason = override.get("reason") or {}
        return cls(
            service_id=service_id,
            hook_instance=hook_instance,
            card_uuid=item["card"].lower(),
            outcome=item["outcome"],
            accepted_suggestions=tuple(s["id"].lower() for s in item.get("acceptedSuggestions") or ()),
            reason_code=reason.get("code"),
            reason_system=reason.get("system"),
            reason_display=reason.get("display"),
            user_comment=override.get("userComment"),
            outcome_timestamp=item["outcomeTimestamp"],
        )

    @property
    def natural_key(self) -> str:
        """What makes two reports "the same item": service, card, outcome, instant, suggestions, reason."""
        identity = [self.service_id, self.card_uuid, self.outcome, canonical_instant(self.outcome_timestamp),
                    sorted(self.accepted_suggestions), self.reason_code, self.reason_system, self.user_comment]
        return hashlib.sha256(json.dumps(identity, separators=(",", ":")).encode("utf-8")).hexdigest()

    def row(self, received_at: str, topic: tuple[str | None, str | None, str | None]) -> dict[str, Any]:
        topic_code, topic_system, logged_instance = topic
        return {
            "natural_key": self.natural_key,
            "service_id": self.service_id,
            "hook_instance": self.hook_instance or logged_instance,
            "card_uuid": self.card_uuid,
            "topic_code": topic_code,
            "topic_system": topic_system,
            "outcome": self.outcome,
            "accepted_suggestions": json.dumps(list(self.accepted_suggestions)) if self.accepted_suggestions else None,
            "reason_code": self.reason_code,
            "reason_system": self.reason_system,
            "reason_display": self.reason_display,
            "user_comment": self.user_comment,
            "outcome_timestamp": self.outcome_timestamp,
            "received_at": received_at,
        }



#: Feedback calls of one process that may wait at once for a card another worker is still writing.
MAX_WAITING_LOOKUPS = 2


class FeedbackStore:
    """Durable, idempotent storage of feedback items, for cards the card log knows."""

    def __init__(self, db: Database, card_log: CardLog | None = None,
                 max_waiting_lookups: int = MAX_WAITING_LOOKUPS) -> None:
        self.db = db
        self.card_log = card_log
        self._waiting = threading.BoundedSemaphore(max(1, max_waiting_lookups))

    def issued_cards(self, card_uuids: Collection[str], *, wait_seconds: float = 0.0) -> dict[str, IssuedCard]:
        """The issued cards among `card_uuids`. Missing ones are looked up again after flushing this
        process's card-log queue, then (other workers' queues) for up to `wait_seconds`, by at most
        `max_waiting_lookups` calls at once: feedback naming cards nobody issued would otherwise hold a
        worker thread for `wait_seconds` each; beyond that number a call answers from what it found."""
        wanted = set(card_uuids)
        found = self._lookup(wanted)
        if len(found) == len(wanted):
            return found
        if self.card_log is not None:
            self.card_log.flush(timeout=max(wait_seconds, 0.1))
        found.update(self._lookup(wanted - found.keys()))
        if len(found) == len(wanted) or wait_seconds <= 0 or not self._waiting.acquire(blocking=False):
            return found
        try:
            deadline = time.monotonic() + wait_seconds
            pause = 0.02
            while len(found) < len(wanted) and time.monotonic() < deadline:
                time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                pause = min(pause * 2, 0.25)
                found.update(self._lookup(wanted - found.keys()))
            return found
        finally:
            self._waiting.release()

    def _lookup(self, card_uuids: Collection[str]) -> dict[str, IssuedCard]:
        cards = sorted(set(card_uuids))
        known: dict[str, IssuedCard] = {}
        if not cards:
            return known
        c = issued_cards_table.c
        with self.db.begin() as conn:
            for start in range(0, len(cards), 500):
                rows = conn.execute(select(c.card_uuid, c.service_id, c.issuer, c.topic_code, c.topic_system,
                                           c.hook_instance, c.suggestion_uuids)
                                    .where(c.card_uuid.in_(cards[start:start + 500])))
                for r in rows:
                    known[r.card_uuid] = IssuedCard(r.card_uuid, r.service_id, r.issuer, r.topic_code,
                                                    r.topic_system, r.hook_instance,
                                                    frozenset(json.loads(r.suggestion_uuids or "[]")))
        return known

    def save(self, items: Sequence[FeedbackItem], issued: Mapping[str, IssuedCard] | None = None) -> None:
        """Store every item not stored before, in one transaction (all or nothing)."""
        if not items:
            return
        issued = issued if issued is not None else self._lookup([i.card_uuid for i in items])
        received_at = utc_timestamp()

        def topic(item: FeedbackItem) -> tuple[str | None, str | None, str | None]:
            card = issued.get(item.card_uuid)
            return (card.topic_code, card.topic_system, card.hook_instance) if card else (None, None, None)

        with self.db.begin() as conn:
            self.db.insert_ignoring_duplicates(conn, feedback_table, [i.row(received_at, topic(i)) for i in items])

