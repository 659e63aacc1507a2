"""CDS Hooks feedback: what clinicians did with our cards, stored durably and reported per card topic.

`POST /cds-services/{id}/feedback` (CDS Hooks 2.0 #feedback) carries a batch of items naming a card
by its uuid, the outcome (`accepted` with `acceptedSuggestions`, or `overridden` with an optional
`overrideReason`) and when it happened. Clients retry and report the same card more than once, so
every item is stored once under a natural key (card, outcome, timestamp, suggestions, reason) with
a unique constraint and insert-or-ignore: a duplicate is accepted (200) and not stored twice.

Feedback names only the card uuid, so the topic comes from `CardLog`, which the hook endpoint calls
with the cards it issued; `feedback_report` joins the two.
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
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flask
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from .errors import ApiError, BadRequest, NotFound
from .storage import Database, feedback_table, issued_cards_table

log = logging.getLogger("her2cds.feedback")

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "feedback.schema.json"


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


class FeedbackStore:
    """Durable, idempotent storage of feedback items."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def save(self, items: Sequence[FeedbackItem]) -> None:
        """Store every item not stored before, in one transaction (all or nothing)."""
        if not items:
            return
        received_at = _utc_now()
        cards = sorted({i.card_uuid for i in items})
        with self.db.begin() as conn:
            known: dict[str, tuple[str | None, str | None, str | None]] = {}
            for start in range(0, len(cards), 500):
                rows = conn.execute(select(issued_cards_table.c.card_uuid, issued_cards_table.c.topic_code,
                                           issued_cards_table.c.topic_system, issued_cards_table.c.hook_instance)
                                    .where(issued_cards_table.c.card_uuid.in_(cards[start:start + 500])))
                known.update({r.card_uuid: (r.topic_code, r.topic_system, r.hook_instance) for r in rows})
            self.db.insert_ignoring_duplicates(
                conn, feedback_table,
                [i.row(received_at, known.get(i.card_uuid, (None, None, None))) for i in items])


class CardLog:
    """Records the cards the service issued (uuid -> topic, indicator, suggestion uuids), no PHI.

    The hook endpoint calls `record_later`: one background thread per process writes the queued cards
    in batches, so neither the clinician's answer nor the gunicorn worker waits on the database.
    `record` writes synchronously. A failure is logged and swallowed: losing a log row must never
    cost the clinician the cards.
    """

    BATCH = 200

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer_pid: int | None = None
        self._lock = threading.Lock()

    def record(self, service_id: str, hook_instance: str | None, cards: Iterable[Mapping[str, Any]]) -> int:
        """Log the cards that carry a uuid; returns how many were offered for logging (0 on failure)."""
        return self._insert(self._rows(service_id, hook_instance, cards))

    def record_later(self, service_id: str, hook_instance: str | None, cards: Iterable[Mapping[str, Any]]) -> None:
        """Queue the cards for the background writer (started on first use in each process)."""
        rows = self._rows(service_id, hook_instance, cards)
        if rows:
            self._ensure_writer()
            self._pending.put(rows)

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
        while True:
            item = self._pending.get()
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
            self._insert(rows)
            for event in waiting:
                event.set()

    @staticmethod
    def _rows(service_id: str, hook_instance: str | None, cards: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
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


def create_blueprint(db: Database, service_ids: Collection[str]) -> flask.Blueprint:
    """The `POST /cds-services/<service_id>/feedback` endpoint for the given services."""
    known_services = frozenset(service_ids)
    validator = Draft202012Validator(load_feedback_schema())
    store = FeedbackStore(db)
    blueprint = flask.Blueprint("cds_feedback", __name__)

    @blueprint.post("/cds-services/<service_id>/feedback")
    def receive_feedback(service_id: str) -> flask.Response:
        if service_id not in known_services:
            raise NotFound(f"no CDS service with id {service_id!r}")
        if not flask.request.is_json:
            raise ApiError("feedback must be sent as application/json", status=415, code="not-supported")
        body = flask.request.get_json(silent=True)
        if body is None:
            raise BadRequest("the body is not valid JSON")
        validate_feedback_body(validator, body)
        hook_instance = body.get("hookInstance")
        items = [FeedbackItem.from_json(service_id, hook_instance, item) for item in body["feedback"]]
        store.save(items)
        outcomes = Counter(i.outcome for i in items)
        log.info("feedback.received", extra={"service_id": service_id, "hookInstance": hook_instance,
                                             "items": len(items), "accepted": outcomes["accepted"],
                                             "overridden": outcomes["overridden"]})
        return flask.jsonify({})

    return blueprint


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
    """Acceptance and override rates per card topic (per service when the topic is unknown), as Markdown."""
    db = Database(db_url)
    try:
        db.create_all()
        with db.begin() as conn:
            f, c = feedback_table, issued_cards_table
            topic = func.coalesce(f.c.topic_code, c.c.topic_code)
            joined = f.outerjoin(c, f.c.card_uuid == c.c.card_uuid)
            outcomes = conn.execute(
                select(topic.label("topic"), f.c.service_id, f.c.outcome, func.count().label("n"),
                       func.count(f.c.card_uuid.distinct()).label("cards"))
                .select_from(joined).group_by(topic, f.c.service_id, f.c.outcome)).all()
            cards_per_group = conn.execute(
                select(topic.label("topic"), f.c.service_id, func.count(f.c.card_uuid.distinct()).label("cards"))
                .select_from(joined).group_by(topic, f.c.service_id)).all()
            reasons = conn.execute(
                select(topic.label("topic"), f.c.service_id, f.c.reason_code, f.c.reason_display,
                       func.count().label("n"))
                .select_from(joined).where(f.c.outcome == "overridden", f.c.reason_code.is_not(None))
                .group_by(topic, f.c.service_id, f.c.reason_code, f.c.reason_display)).all()
            issued = conn.execute(select(c.c.topic_code, c.c.service_id, func.count().label("n"))
                                  .group_by(c.c.topic_code, c.c.service_id)).all()
    finally:
        db.dispose()

    rows: dict[str, _Row] = {}

    def row_for(topic_code: str | None, service_id: str) -> _Row:
        label = topic_code if topic_code else f"(topic unknown) service {service_id}"
        row = rows.setdefault(label, _Row(label=label, services=set()))
        row.services.add(service_id)
        return row

    for r in outcomes:
        row = row_for(r.topic, r.service_id)
        if r.outcome == "accepted":
            row.accepted += r.n
        elif r.outcome == "overridden":
            row.overridden += r.n
    for r in cards_per_group:
        row_for(r.topic, r.service_id).cards_with_feedback += r.cards
    for r in reasons:
        row = row_for(r.topic, r.service_id)
        row.reasons[r.reason_display or r.reason_code] += r.n
    issued_by_topic: dict[str, int] = defaultdict(int)
    for r in issued:
        if r.topic_code:
            issued_by_topic[r.topic_code] += r.n
    for code, n in issued_by_topic.items():
        if code in rows:
            rows[code].issued = n
        else:
            rows[code] = _Row(label=code, services=set(), issued=n)
    return _render_report(sorted(rows.values(), key=lambda r: (r.label.startswith("("), r.label)))


def _render_report(rows: list[_Row]) -> str:
    header = ("| card topic | cards issued | cards with feedback | accepted | overridden | acceptance rate "
              "| override rate | most frequent override reason |")
    lines = ["# Feedback report", "",
             "Rates are shares of the feedback items received for the topic (accepted / (accepted + overridden)); "
             "cards issued counts the cards logged by the hook endpoints.", "", header,
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
    lines += ["", f"Total: {answered} feedback item(s), {total_accepted} accepted ({_percent(total_accepted, answered)}), "
                  f"{total_overridden} overridden ({_percent(total_overridden, answered)})."]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
