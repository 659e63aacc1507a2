"""Helpers for the feedback tests: a minimal Flask app with the feedback blueprint, and feedback items."""
from __future__ import annotations

import uuid
from typing import Any

import flask
from sqlalchemy import select

from cards import TOPIC_SYSTEM
from cds_service.client_identity import AUTH_OFF_ISSUER
from cds_service.errors import ApiError
from cds_service.feedback.card_log import CardLog
from cds_service.feedback.endpoint import create_blueprint
from cds_service.services import SERVICES as CDS_SERVICES
from cds_service.storage import Database, feedback_table

SERVICES = tuple(service.id for service in CDS_SERVICES)   # the service's own ids and topic system
PV = SERVICES[0]


def feedback_app(db: Database, **blueprint_options: Any) -> flask.Flask:
    blueprint_options.setdefault("lookup_wait_seconds", 0.1)    # unknown cards: do not wait the full 2 s
    app = flask.Flask("feedback-test")
    app.register_blueprint(create_blueprint(db, SERVICES, **blueprint_options))

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> tuple[flask.Response, int]:
        return flask.jsonify(error.to_outcome()), error.status

    return app


def overridden(card: str | None = None, *, ts: str = "2026-12-01T10:05:31Z", code: str | None = "not-applicable",
               comment: str | None = "patient declined", display: str | None = None) -> dict[str, Any]:
    reason: dict[str, Any] = {}
    if code:
        reason["reason"] = {"code": code, "system": "https://example.org/override-reason"}
        if display:
            reason["reason"]["display"] = display
    if comment:
        reason["userComment"] = comment
    item: dict[str, Any] = {"card": card or str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": ts}
    if reason:
        item["overrideReason"] = reason
    return item


def accepted(card: str | None = None, *, suggestions: list[str] | None = None,
             ts: str = "2026-12-01T10:06:00Z") -> dict[str, Any]:
    return {"card": card or str(uuid.uuid4()), "outcome": "accepted",
            "acceptedSuggestions": [{"id": s} for s in (suggestions or [str(uuid.uuid4())])], "outcomeTimestamp": ts}


def stored(db: Database) -> list[Any]:
    with db.begin() as conn:
        return conn.execute(select(feedback_table).order_by(feedback_table.c.id)).all()


def card(topic: str, *, indicator: str = "warning", suggestions: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"uuid": str(uuid.uuid4()), "summary": f"{topic} card", "indicator": indicator,
                           "source": {"label": "HER2 CDS", "topic": {"system": TOPIC_SYSTEM, "code": topic}}}
    if suggestions:
        out["suggestions"] = [{"label": f"s{n}", "uuid": str(uuid.uuid4())} for n in range(suggestions)]
    return out


def issue(db: Database, items: list[dict[str, Any]], *, service: str = PV, issuer: str = AUTH_OFF_ISSUER,
          topic: str | None = "her2-next-regimen") -> None:
    """Log, as issued by `service` to `issuer`, the cards the feedback `items` name (with the suggestions
    they accept), as the hook endpoint does before a client can send feedback on them."""
    cards: dict[str, dict[str, Any]] = {}
    for item in items:
        entry = cards.setdefault(item["card"].lower(), {
            "uuid": item["card"].lower(), "summary": "issued", "indicator": "info",
            "source": {"label": "HER2 CDS", "topic": {"system": TOPIC_SYSTEM, "code": topic}}, "suggestions": []})
        for suggestion in item.get("acceptedSuggestions") or ():
            if isinstance(suggestion, dict) and isinstance(suggestion.get("id"), str):
                entry["suggestions"].append({"label": "s", "uuid": suggestion["id"]})
    CardLog(db).record(service, None, list(cards.values()), issuer=issuer)


def send(client: Any, db: Database, body: dict[str, Any], *, service: str = PV) -> Any:
    """Issue the cards `body` names to `service`, then POST the feedback to it."""
    items = body.get("feedback") if isinstance(body, dict) else None
    if isinstance(items, list):
        issue(db, [i for i in items if isinstance(i, dict) and isinstance(i.get("card"), str)], service=service)
    return client.post(f"/cds-services/{service}/feedback", json=body)
