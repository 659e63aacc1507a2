"""CDS Hooks feedback: what clinicians did with our cards, stored durably and reported per card topic.

`POST /cds-services/{id}/feedback` (CDS Hooks 2.0 #feedback) carries a batch of items naming a card
by its uuid, the outcome (`accepted` with `acceptedSuggestions`, or `overridden` with an optional
`overrideReason`) and when it happened. Clients retry and report the same card more than once, so
every item is stored once under a natural key (card, outcome, timestamp, suggestions, reason) with
a unique constraint and insert-or-ignore: a duplicate is accepted (200) and not stored twice.

Feedback names only the card uuid, so the topic comes from `CardLog`, which the hook endpoint calls
with the cards it issued; `feedback_report` joins the two.

Feedback belongs to whoever got the card: `CardLog` records the issuer (`iss` of the caller's JWT; a
fixed marker with auth off) and service of every card, and a batch is accepted only when every item
names a card issued to the same issuer by the same service (else 404, nothing stored, the same answer
for an unknown and for another client's card) and every accepted suggestion is one of that card's (else
400). A batch holds at most `MAX_FEEDBACK_ITEMS` items. In reports the last outcome per card counts.
"""
from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flask
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from .client_identity import AUTH_OFF_ISSUER, caller_issuer
from .errors import ApiError, BadRequest, NotFound
from .metrics import feedback_stored
from .request_validation import parse_json
from .retention import PurgeSchedule, Retention, purge, rfc3339_ms
from .storage import Database, feedback_table, issued_cards_table

log = logging.getLogger("her2cds.feedback")

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "feedback.schema.json"
MAX_FEEDBACK_ITEMS = 100          # items per feedback request; a clinician acts on a handful of cards per call
# A card issued by another worker may still be in that worker's write queue when its feedback arrives
# (the background writer usually lands it within milliseconds): wait this long before calling it unknown.
CARD_LOOKUP_WAIT_SECONDS = 2.0


def _utc_now() -> str:
    return rfc3339_ms(dt.datetime.now(dt.timezone.utc))


def _canonical_instant(timestamp: str) -> str:
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
        identity = [self.service_id, self.card_uuid, self.outcome, _canonical_instant(self.outcome_timestamp),
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


class FeedbackRefused(ApiError):
    """A feedback batch refused as a whole (nothing stored); `reason` is logged, never a card's owner."""

    def __init__(self, message: str, *, status: int, reason: str, expression: str | None = None) -> None:
        super().__init__(message, status=status, code="not-found" if status == 404 else "invalid",
                         expression=expression)
        self.reason = reason


class FeedbackStore:
    """Durable, idempotent storage of feedback items, for cards the card log knows."""

    def __init__(self, db: Database, card_log: CardLog | None = None) -> None:
        self.db = db
        self.card_log = card_log

    def issued_cards(self, card_uuids: Collection[str], *, wait_seconds: float = 0.0) -> dict[str, IssuedCard]:
        """The issued cards among `card_uuids`. Missing ones are looked up again after flushing this
        process's card-log queue, then (other workers' queues) for up to `wait_seconds`."""
        found = self._lookup(card_uuids)
        if len(found) == len(set(card_uuids)):
            return found
        if self.card_log is not None:
            self.card_log.flush(timeout=max(wait_seconds, 0.1))
        deadline = time.monotonic() + wait_seconds
        pause = 0.02
        while True:
            found.update(self._lookup([c for c in card_uuids if c not in found]))
            if len(found) == len(set(card_uuids)) or time.monotonic() >= deadline:
                return found
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.25)

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
        received_at = _utc_now()

        def topic(item: FeedbackItem) -> tuple[str | None, str | None, str | None]:
            card = issued.get(item.card_uuid)
            return (card.topic_code, card.topic_system, card.hook_instance) if card else (None, None, None)

        with self.db.begin() as conn:
            self.db.insert_ignoring_duplicates(conn, feedback_table, [i.row(received_at, topic(i)) for i in items])


class CardLog:
    """Records the cards the service issued (uuid -> topic, indicator, suggestion uuids), no PHI.

    The hook endpoint calls `record_later`: one background thread per process writes the queued cards
    in batches, so neither the clinician's answer nor the gunicorn worker waits on the database.
    `record` writes synchronously. A failure is logged and swallowed: losing a log row must never
    cost the clinician the cards.
    """

    BATCH = 200
    # Wait this long after the first queued call for more, so one transaction carries several calls'
    # cards: a transaction per call cost the worker about a millisecond of CPU (issue 15).
    LINGER_S = 0.05

    def __init__(self, db: Database, retention: Retention | None = None) -> None:
        self.db = db
        self.retention = retention
        self._pending: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer_pid: int | None = None
        self._lock = threading.Lock()

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
        while True:
            if schedule is not None and schedule.due():
                self._purge()
            try:
                item = self._pending.get(timeout=schedule.seconds_left() if schedule is not None else None)
            except queue.Empty:
                continue
            rows: list[dict[str, Any]] = []
            waiting: list[threading.Event] = []
            linger_until = time.monotonic() + self.LINGER_S
            while True:
                if isinstance(item, threading.Event):
                    waiting.append(item)
                else:
                    rows.extend(item)
                if len(rows) >= self.BATCH:
                    break
                try:
                    if waiting:     # flush(): write now
                        item = self._pending.get_nowait()
                    else:
                        item = self._pending.get(timeout=max(0.0, linger_until - time.monotonic()))
                except queue.Empty:
                    break
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
        log.info("retention.purged", extra={**counts.as_log(), "max_age_days": self.retention.max_age_days})

    @staticmethod
    def _rows(service_id: str, hook_instance: str | None, cards: Iterable[Mapping[str, Any]],
              issuer: str) -> list[dict[str, Any]]:
        issued_at = _utc_now()
        rows = []
        for card in cards:
            uuid = card.get("uuid") if isinstance(card, Mapping) else None
            if not isinstance(uuid, str) or not uuid or len(uuid) > 64:
                continue
            source = card.get("source") if isinstance(card.get("source"), Mapping) else {}
            topic = source.get("topic") if isinstance(source.get("topic"), Mapping) else {}
            suggestions = [s.get("uuid") for s in card.get("suggestions") or []
                           if isinstance(s, Mapping) and isinstance(s.get("uuid"), str)]
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


def load_feedback_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _field_path(error: ValidationError) -> str:
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = next((r for r in error.validator_value if r not in error.instance), None)
        if missing:
            path = f"{path}.{missing}" if path else str(missing)
    return path or "(body)"


def _describe(error: ValidationError) -> str:
    if error.validator == "anyOf" and list(error.absolute_path)[-1:] == ["overrideReason"]:
        return "overrideReason needs a reason or a userComment"
    message = error.message
    return message if len(message) <= 200 else message[:200] + "..."


def validate_feedback_body(validator: Draft202012Validator, body: Any) -> None:
    """Raise BadRequest naming the first offending field when `body` is not a valid feedback request."""
    error = best_match(validator.iter_errors(body))
    if error is not None:
        field = _field_path(error)
        raise BadRequest(f"invalid feedback: {field}: {_describe(error)}",
                         expression=None if field == "(body)" else field)


def create_blueprint(db: Database, service_ids: Collection[str], *, card_log: CardLog | None = None,
                     lookup_wait_seconds: float = CARD_LOOKUP_WAIT_SECONDS) -> flask.Blueprint:
    """The `POST /cds-services/<service_id>/feedback` endpoint for the given services."""
    known_services = frozenset(service_ids)
    validator = Draft202012Validator(load_feedback_schema())
    store = FeedbackStore(db, card_log)
    blueprint = flask.Blueprint("cds_feedback", __name__)

    @blueprint.post("/cds-services/<service_id>/feedback")
    def receive_feedback(service_id: str) -> flask.Response:
        if service_id not in known_services:
            raise NotFound(f"no CDS service with id {service_id[:64]!r}")
        if not flask.request.is_json:
            raise ApiError("feedback must be sent as application/json", status=415, code="not-supported")
        body = parse_json(flask.request.get_data(cache=False))     # 400 for bad or too deeply nested JSON
        issuer = caller_issuer()
        try:
            items = _checked_items(validator, store, service_id, issuer, body, lookup_wait_seconds)
        except FeedbackRefused as refused:
            log.warning("feedback.rejected", extra={"service_id": service_id, "status": refused.status,
                                                    "reason": refused.reason, "issuer": issuer[:120]})
            raise
        store.save(items[0], items[1])
        outcomes = Counter(i.outcome for i in items[0])
        feedback_stored(outcomes)
        log.info("feedback.received", extra={"service_id": service_id, "hookInstance": body.get("hookInstance"),
                                             "items": len(items[0]), "accepted": outcomes["accepted"],
                                             "overridden": outcomes["overridden"]})
        if card_log is not None:
            card_log.start()      # the writer also runs the periodic retention purge
        return flask.jsonify({})

    return blueprint


def _checked_items(validator: Draft202012Validator, store: FeedbackStore, service_id: str, issuer: str,
                   body: Any, wait_seconds: float) -> tuple[list[FeedbackItem], dict[str, IssuedCard]]:
    """The items of a valid batch whose every card was issued to `issuer` by `service_id`; else FeedbackRefused."""
    batch = body.get("feedback") if isinstance(body, dict) else None
    if isinstance(batch, list) and len(batch) > MAX_FEEDBACK_ITEMS:
        raise FeedbackRefused(f"invalid feedback: feedback: at most {MAX_FEEDBACK_ITEMS} items per request, "
                              f"not {len(batch)}", status=400, reason="batch-too-large", expression="feedback")
    validate_feedback_body(validator, body)
    hook_instance = body.get("hookInstance")
    items = [FeedbackItem.from_json(service_id, hook_instance, item) for item in body["feedback"]]
    issued = store.issued_cards([i.card_uuid for i in items], wait_seconds=wait_seconds)
    for n, item in enumerate(items):
        card = issued.get(item.card_uuid)
        if card is None or card.service_id != service_id or card.issuer != issuer:
            # One answer for "no such card" and "another client's card": no oracle for card ids.
            raise FeedbackRefused(f"feedback[{n}].card: no card {item.card_uuid} was issued to this client by "
                                  f"this service", status=404, expression=f"feedback[{n}].card",
                                  reason="unknown-card" if card is None else
                                  ("card-of-another-service" if card.service_id != service_id
                                   else "card-of-another-client"))
        for m, suggestion in enumerate(item.accepted_suggestions):
            if suggestion not in card.suggestion_uuids:
                raise FeedbackRefused(f"invalid feedback: feedback[{n}].acceptedSuggestions[{m}].id: {suggestion} "
                                      f"is not a suggestion of card {item.card_uuid}", status=400,
                                      reason="suggestion-not-on-card",
                                      expression=f"feedback[{n}].acceptedSuggestions[{m}].id")
    return items, issued


# ---------------------------------------------------------------------------------------- report


@dataclass
class _Row:
    label: str
    services: set[str]
    issued: int = 0
    cards_with_feedback: int = 0
    accepted: int = 0
    overridden: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.0f}%" if whole else "-"


def feedback_report(db_url: str) -> str:
    """Acceptance and override rates per card topic (per service when the topic is unknown), as Markdown.

    Only feedback on cards the card log knows is counted, and per card only its last outcome (by the
    client's outcome timestamp, then arrival): a card accepted and then overridden counts once, as overridden.
    """
    db = Database(db_url)
    try:
        db.create_all()
        with db.begin() as conn:
            f, c = feedback_table, issued_cards_table
            feedback_rows = conn.execute(
                select(f.c.id, f.c.card_uuid, f.c.service_id, f.c.outcome, f.c.outcome_timestamp, f.c.reason_code,
                       f.c.reason_display, c.c.topic_code)
                .select_from(f.join(c, f.c.card_uuid == c.c.card_uuid))
                .where(f.c.service_id == c.c.service_id)).all()
            issued = conn.execute(select(c.c.topic_code, c.c.service_id, func.count().label("n"))
                                  .group_by(c.c.topic_code, c.c.service_id)).all()
    finally:
        db.dispose()

    last: dict[str, Any] = {}
    for r in feedback_rows:
        key = (_canonical_instant(r.outcome_timestamp), r.id)
        held = last.get(r.card_uuid)
        if held is None or key > (_canonical_instant(held.outcome_timestamp), held.id):
            last[r.card_uuid] = r

    rows: dict[str, _Row] = {}

    def row_for(topic_code: str | None, service_id: str) -> _Row:
        label = topic_code if topic_code else f"(topic unknown) service {service_id}"
        row = rows.setdefault(label, _Row(label=label, services=set()))
        row.services.add(service_id)
        return row

    for r in last.values():
        row = row_for(r.topic_code, r.service_id)
        row.cards_with_feedback += 1
        if r.outcome == "accepted":
            row.accepted += 1
        elif r.outcome == "overridden":
            row.overridden += 1
            if r.reason_code is not None:
                row.reasons[r.reason_display or r.reason_code] += 1
    for r in issued:
        row_for(r.topic_code, r.service_id).issued += r.n
    return _render_report(sorted(rows.values(), key=lambda r: (r.label.startswith("("), r.label)))


def _render_report(rows: list[_Row]) -> str:
    header = ("| card topic | cards issued | cards with feedback | accepted | overridden | acceptance rate "
              "| override rate | most frequent override reason |")
    lines = ["# Feedback report", "",
             "Rates are shares of the cards with feedback (accepted / (accepted + overridden)), each card counted "
             "once with its last outcome; cards issued counts the cards logged by the hook endpoints.", "", header,
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    if not rows:
        lines.append("| (no feedback and no issued cards recorded yet) | 0 | 0 | 0 | 0 | - | - | - |")
    total_accepted = total_overridden = 0
    for row in rows:
        answered = row.accepted + row.overridden
        total_accepted += row.accepted
        total_overridden += row.overridden
        top = row.reasons.most_common(1)
        reason = f"{_cell(top[0][0])} ({top[0][1]})" if top else "-"
        lines.append(f"| {_cell(row.label)} | {row.issued} | {row.cards_with_feedback} | {row.accepted} "
                     f"| {row.overridden} | {_percent(row.accepted, answered)} | {_percent(row.overridden, answered)} "
                     f"| {reason} |")
    answered = total_accepted + total_overridden
    lines += ["", f"Total: {answered} card(s) with feedback, {total_accepted} accepted ({_percent(total_accepted, answered)}), "
                  f"{total_overridden} overridden ({_percent(total_overridden, answered)})."]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
