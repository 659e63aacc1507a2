"""The feedback report (`her2-cds feedback-report`): acceptance and override rates per card topic."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from ..storage import Database, feedback_table, issued_cards_table
from .store import canonical_instant


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
        key = (canonical_instant(r.outcome_timestamp), r.id)
        held = last.get(r.card_uuid)
        if held is None or key > (canonical_instant(held.outcome_timestamp), held.id):
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
