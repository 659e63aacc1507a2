"""`POST /cds-services/{id}/feedback` (CDS Hooks 2.0 #feedback): validate a batch, check every card was
issued to this caller by this service, then store it (`store.FeedbackStore`).

A batch is all or nothing: an invalid item (400), a card of another client or service or none at all
(404, one answer for all three: no oracle for card ids), or an accepted suggestion that is not the
card's (400) refuses the whole batch and stores nothing.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Collection
from importlib import resources
from typing import Any

import flask
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from ..client_identity import caller_issuer
from ..errors import ApiError, BadRequest, NotFound
from ..metrics import feedback_stored
from ..request_validation import UnsupportedMediaType, error_location, parse_json
from ..storage import Database
from .card_log import CardLog, IssuedCard
from .store import FeedbackItem, FeedbackStore

log = logging.getLogger("her2cds.feedback")

MAX_FEEDBACK_ITEMS = 100          # items per feedback request; a clinician acts on a handful of cards per call
# A card issued by another worker may still be in that worker's write queue when its feedback arrives
# (the background writer usually lands it within milliseconds): wait this long before calling it unknown.
CARD_LOOKUP_WAIT_SECONDS = 2.0


class FeedbackRefused(ApiError):
    """A feedback batch refused as a whole (nothing stored); `reason` is logged, never a card's owner."""

    def __init__(self, message: str, *, status: int, reason: str, expression: str | None = None) -> None:
        super().__init__(message, status=status, expression=expression)
        self.reason = reason


def load_feedback_schema() -> dict[str, Any]:
    return json.loads(resources.files("cds_service").joinpath("schemas/feedback.schema.json").read_text(encoding="utf-8"))


def _describe(error: ValidationError) -> str:
    if error.validator == "anyOf" and list(error.absolute_path)[-1:] == ["overrideReason"]:
        return "overrideReason needs a reason or a userComment"
    message = error.message
    return message if len(message) <= 200 else message[:200] + "..."


def validate_feedback_body(validator: Draft202012Validator, body: Any) -> None:
    """Raise BadRequest naming the first offending field when `body` is not a valid feedback request."""
    error = best_match(validator.iter_errors(body))
    if error is not None:
        field = error_location(error) or "(body)"
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
            raise UnsupportedMediaType("feedback must be sent as application/json")
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

