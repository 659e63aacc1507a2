"""The CDS Hooks endpoints: discovery and the hook call. HTTP only: the decisions live in `pipeline`.

`POST /cds-services/{id}`: 404 unknown service -> 415 not JSON -> 400 bad JSON / schema / wrong hook
-> gather (prefetch, else fhirServer; 412 when required data cannot be had) -> evaluate -> 200 cards.
Every step is timed and logged as one JSON line per call (no PHI, no tokens).
"""
from __future__ import annotations

import datetime as dt
import logging
import time
import weakref
from functools import lru_cache
from typing import Any

from flask import Blueprint, Request, Response, current_app, g, jsonify, request
from werkzeug.sansio.utils import get_current_url

from cds_service import metrics, pipeline
from cds_service.client_identity import caller_issuer
from cds_service.collector_pause import LARGE_BODY_BYTES
from cds_service.errors import ApiError, NotFound
from cds_service.explain import app_launch_url
from cds_service.gather import RequiredDataUnavailable
from cds_service.logging_setup import get_logger, log_fields
from cds_service.request_validation import check_content_type, parse_json, validate_hook_request
from cds_service.state import ServiceState
from fhir_mappings.model import RecordIssue

blueprint = Blueprint("cds_hooks", __name__)
log = get_logger("hooks")


def _state() -> ServiceState:
    return current_app.extensions["her2cds"]


@blueprint.get("/cds-services")
def discovery() -> Response:
    """2.0 #discovery: one service per hook, with the prefetch templates the gather step also uses."""
    return jsonify(_state().services.discovery())


@blueprint.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    # The app and the request read from their proxies once (why: each proxy lookup costs ~40 bytecodes): the app
    # holds the state, the metrics and the JSON provider.
    app = current_app._get_current_object()   # type: ignore[attr-defined]
    state: ServiceState = app.extensions["her2cds"]
    service = state.services.get(service_id)
    if service is None:
        raise NotFound(f"No CDS service with id {service_id[:64]!r}; see GET /cds-services")
    started = time.monotonic()
    req = request._get_current_object()   # type: ignore[attr-defined]
    check_content_type(req.content_type)
    raw = req.get_data(cache=False)
    large = len(raw) >= LARGE_BODY_BYTES
    if large:
        state.collector_pause.hold()
        g.her2cds_collector_paused = True       # released once the answer is sent, else by _resume_collector
    body = validate_hook_request(parse_json(raw), service)
    del raw
    entry: dict[str, Any] = {"hookInstance": body["hookInstance"], "service": service.id, "hook": service.hook,
                             "fhirServer": "fhirServer" in body,
                             "fhirAuthorization": "fhirAuthorization" in body}
    timings: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        try:
            record, report = state.gatherer.gather(service, body, _allowed_fhir_servers(state))
        except RequiredDataUnavailable as exc:
            timings["gather"] = _ms(t0)
            entry.update(status=412, prefetch=exc.report.as_log())
            raise
        timings["gather"] = _ms(t0)
        entry["prefetch"] = report.as_log()
        t1 = time.monotonic()
        evaluation = pipeline.evaluate(service, body["context"], record,
                                       today=dt.datetime.now(dt.timezone.utc).date(), settings=state.settings,
                                       timings=timings,  # adds map / decide / render
                                       app_launch_url=_launch_url(state, req))
        cards = evaluation.cards
        timings["evaluate"] = _ms(t1)
        metrics.hook_answered(app, cards, evaluation.issue_counts)
        gaps = [i for i in evaluation.issues if not i.info]   # `info`: read, but by name (said on the card, not a gap)
        entry.update(status=200, cards=len(cards), gaps=len(gaps), resources=len(record.resources),
                     record_issues=evaluation.issue_counts)
        if gaps:   # bad data is answered with a named gap on the cards, and said in the log
            entry["gap_kinds"] = _gap_kinds(gaps)
        if state.card_log is not None:   # written by a background thread: never slows the answer
            state.card_log.record_later(service.id, body["hookInstance"], cards, issuer=caller_issuer())
        response = app.json.response({"cards": cards})   # (what `jsonify` does, on the app at hand)
        return _freed_after_sending(response, state, [body, record, evaluation], large)
    except ApiError as exc:
        entry.setdefault("status", exc.status)
        raise
    except Exception:
        entry["status"] = 500
        raise
    finally:
        timings["total"] = _ms(started)
        entry["timing_ms"] = timings
        log_fields(log, logging.WARNING if entry.get("gaps") or entry.get("status", 500) >= 500 else logging.INFO,
                   "hook.call", entry)


def _freed_after_sending(response: Response, state: ServiceState, held: list[Any], large: bool) -> Response:
    """`response`, holding the call's objects (`held`) until the server has sent it and closes it.

    Why: the parsed body and the record are otherwise freed as the view returns, before a byte of the answer
    is written: 13 ms of a 5,000-resource call's 72 ms (in-process), spent while the EHR waits. Freed when the
    server closes the response (PEP 3333; gunicorn does even when the client went away), they cost the same CPU
    after the answer is on its way: 5,000-resource calls through gunicorn p50 98-102 -> 80-84 ms. A large
    body's collector pause ends there too, after they are freed (resumed before, the collector would first
    traverse them all: they are still its young generation); should a server never close the response, it ends
    when the response object is freed (`weakref.finalize` runs once, whichever comes first)."""
    response.call_on_close(held.clear)
    if large and g.pop("her2cds_collector_paused", False):
        response.call_on_close(weakref.finalize(response, state.collector_pause.release))
    return response


@blueprint.teardown_request
def _resume_collector(_exc: BaseException | None) -> None:
    if g.pop("her2cds_collector_paused", False):
        _state().collector_pause.release()


def _gap_kinds(issues: list[RecordIssue]) -> dict[str, int]:
    """How many gaps per resource type or prefetch key (no ids: `Observation/123` counts as `Observation`)."""
    kinds: dict[str, int] = {}
    for issue in issues:
        kind = issue.source.split("/", 1)[0][:40]
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def _allowed_fhir_servers(state: ServiceState) -> tuple[str, ...] | list[str]:
    """The FHIR bases this caller may name: its trusted issuer's `fhir_servers`, or HER2CDS_FHIR_SERVERS
    when auth is off (the demo: there is no issuer to look up)."""
    if state.authenticator is None:
        return state.settings.fhir_server_list
    claims = g.get("her2cds_claims") or {}
    return state.authenticator.fhir_servers_for(claims.get("iss"))


def _launch_url(state: ServiceState, req: Request) -> str:
    """The explanation view's launch URL: on the public base URL, else on the host the EHR called."""
    base = state.settings.public_base_url
    return app_launch_url(base, "") if base else _launch_url_on_host(req.scheme, req.host)


@lru_cache(maxsize=64)
def _launch_url_on_host(scheme: str, host: str) -> str:
    """The launch URL on `scheme://host/` (werkzeug's `request.host_url`). Remembered because werkzeug
    rebuilds and IRI-decodes that URL on every request, and it depends on these two strings only; bounded,
    because the Host header is the caller's to choose."""
    return app_launch_url(None, get_current_url(scheme, host))


def _ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 2)
