"""Prometheus metrics: every metric the service exports is defined here, and `/metrics` serves them.

| metric | labels | what |
|---|---|---|
| `her2cds_hook_calls_total` | service, status | hook calls answered, by HTTP status |
| `her2cds_hook_call_duration_seconds` | service | histogram of hook call time (auth + gather + evaluate) |
| `her2cds_fhir_reads_total` | outcome | reads from the client's FHIR server: `ok` or the failure kind (`timeout`, `server-error-5xx`, ...) |
| `her2cds_fhir_read_duration_seconds` | outcome | histogram of those reads |
| `her2cds_cards_total` | topic, indicator | cards returned |
| `her2cds_auth_rejections_total` | reason | refused JWTs, by reason class (`expired`, `replay`, ...) |
| `her2cds_feedback_items_total` | outcome | feedback items received and stored (`accepted`, `overridden`) |
| `her2cds_feedback_requests_total` | status | feedback requests, by HTTP status |

Labels are bounded sets (service ids, topics, failure kinds): nothing from a request's free text.

Under gunicorn every worker is a process of its own, so `her2-cds serve` runs prometheus_client in
multiprocess mode: it points `PROMETHEUS_MULTIPROC_DIR` at an empty directory before the workers
start, and a scrape adds up every worker's files. prometheus_client is imported here lazily (inside
`Metrics`), because it decides between single- and multi-process mode when it is first imported.

Access: `/metrics` is off (404) unless `HER2CDS_METRICS_TOKEN` is set; then it needs
`Authorization: Bearer <token>`. Scrape each instance directly (through a load balancer a scrape
sees one random instance); the example nginx configuration does not expose it.
"""
from __future__ import annotations

import functools
import hmac
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from cards.topics import card_topic
from cds_service.errors import NotFound, operation_outcome

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
EXTENSION_KEY = "her2cds_metrics"
HOOK_ENDPOINT = "cds_hooks.call_service"
FEEDBACK_ENDPOINT = "cds_feedback.receive_feedback"
_STARTED = "her2cds.started"     # the request's start (`time.perf_counter()`), in its WSGI environ

_HOOK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
_FHIR_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)

class Metrics:
    """The service's metric objects, in a registry of their own (one per app: no module globals)."""

    def __init__(self, services: Iterable[str] = ()) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self.known_services = frozenset(services)
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.hook_calls = Counter("her2cds_hook_calls", "CDS Hooks calls answered, by service and HTTP status",
                                  ["service", "status"], registry=r)
        self.hook_duration = Histogram("her2cds_hook_call_duration_seconds", "CDS Hooks call duration",
                                       ["service"], buckets=_HOOK_BUCKETS, registry=r)
        self.fhir_reads = Counter("her2cds_fhir_reads", "Reads from the client's FHIR server, by outcome",
                                  ["outcome"], registry=r)
        self.fhir_duration = Histogram("her2cds_fhir_read_duration_seconds", "FHIR read duration, by outcome",
                                       ["outcome"], buckets=_FHIR_BUCKETS, registry=r)
        self.cards = Counter("her2cds_cards", "Cards returned, by topic and indicator",
                             ["topic", "indicator"], registry=r)
        self.record_issues = Counter("her2cds_record_issues", "Record data the mapping could not read "
                                     "(or read by name only), by kind", ["kind"], registry=r)
        self.auth_rejections = Counter("her2cds_auth_rejections", "Refused JWTs, by reason class",
                                       ["reason"], registry=r)
        self.feedback_items = Counter("her2cds_feedback_items", "Feedback items received and stored, by outcome",
                                      ["outcome"], registry=r)
        self.feedback_requests = Counter("her2cds_feedback_requests", "Feedback requests, by HTTP status",
                                         ["status"], registry=r)
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}     # see `child`

    def exposition(self) -> tuple[bytes, str]:
        """The text format of every metric (all workers' in multiprocess mode)."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        if self.multiprocess_dir:
            from prometheus_client import multiprocess
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def child(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, remembered: prometheus_client checks and converts the values and looks the
        child up under a lock on every call (~1.5 us, four to six times per hook call). The same children it
        keeps itself, so no more of them."""
        key = (metric, values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def _service_label(self, service_id: Any) -> str:
        return service_id if service_id in self.known_services else "unknown"

    def observe_hook_call(self, service_id: Any, status: int, seconds: float) -> None:
        service = self._service_label(service_id)
        self.child(self.hook_calls, service, str(status)).inc()
        self.child(self.hook_duration, service).observe(seconds)

    def observe_feedback(self, status: int) -> None:
        self.feedback_requests.labels(status=str(status)).inc()


def current() -> Metrics | None:
    """The current app's metrics, or None outside an app (or in an app built without them)."""
    try:
        return current_app.extensions.get(EXTENSION_KEY)
    except RuntimeError:      # no application context
        return None


# ------------------------------------------------------------------ the one-call hooks in others' code


def hook_answered(app: Flask, cards: Iterable[Mapping[str, Any]], issue_counts: Mapping[str, int]) -> None:
    """Called by the hook endpoint with its app (already at hand: a `current_app` proxy lookup costs some 40
    bytecodes), the cards it returns and the call's record-issue counts (the `hook.call` line's `record_issues`)."""
    metrics = app.extensions.get(EXTENSION_KEY)
    if metrics is None:
        return
    for card in cards:
        metrics.child(metrics.cards, str(card_topic(card).get("code") or "none")[:64],   # topic, indicator
                      str(card.get("indicator") or "none")[:16]).inc()
    for kind, count in issue_counts.items():
        if count:
            metrics.child(metrics.record_issues, str(kind)[:32]).inc(count)


def feedback_stored(outcomes: Mapping[str, int]) -> None:
    """Called by the feedback endpoint with the items it stored, counted per outcome."""
    metrics = current()
    if metrics is None:
        return
    for outcome, count in outcomes.items():
        if outcome in ("accepted", "overridden") and count:
            metrics.feedback_items.labels(outcome=outcome).inc(count)


def auth_rejected(kind: str) -> None:
    """Called by the 401 error handler with the refusal's kind (`cds_service.auth.REFUSAL_KINDS`: a closed set,
    so the label never grows with what callers send)."""
    metrics = current()
    if metrics is not None:
        metrics.auth_rejections.labels(reason=kind).inc()


def observe_fhir_reads(client: Any) -> Any:
    """Wrap `client.get` (every FHIR read, search pages included) with a counter and a timer."""
    metrics = current()
    if client is None or metrics is None:
        return client
    read = client.get

    def timed_get(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return read(*args, **kwargs)
        except Exception as exc:
            outcome = str(getattr(exc, "kind", "error"))
            raise
        finally:
            metrics.fhir_reads.labels(outcome=outcome).inc()
            metrics.fhir_duration.labels(outcome=outcome).observe(time.perf_counter() - started)

    client.get = timed_get
    return client


# ------------------------------------------------------------------------------ app wiring, /metrics


def install(app: Flask, services: Iterable[str], token: str | None) -> Metrics:
    """Create the app's metrics, time hook and feedback calls, and serve `/metrics`."""
    metrics = Metrics(services)
    app.extensions[EXTENSION_KEY] = metrics
    app.before_request_funcs.setdefault(None, []).insert(0, _start_timer)   # before auth: a 401 is timed too
    app.after_request(functools.partial(_after_request, metrics))
    app.register_blueprint(_blueprint(metrics, token))
    return metrics


def _start_timer() -> None:
    """`before_request`: the call's start, kept in the request's WSGI environ (a key of our own, as PEP 3333
    allows), where `_after_request` finds it on the request it already holds (why: `g` would be another proxy
    lookup there, some 40 bytecodes a call)."""
    request.environ[_STARTED] = time.perf_counter()


def _after_request(metrics: Metrics, response: Response) -> Response:
    """`after_request` (bound to its app's metrics by `install`): count and time hook and feedback calls.
    The request is read from its proxy once (each proxy lookup costs some 40 bytecodes; this runs on every call)."""
    req = request._get_current_object()   # type: ignore[attr-defined]
    rule = req.url_rule
    if rule is None:
        return response
    if rule.endpoint == HOOK_ENDPOINT and req.method == "POST":
        now = time.perf_counter()
        metrics.observe_hook_call((req.view_args or {}).get("service_id"), response.status_code,
                                  now - req.environ.get(_STARTED, now))
    elif rule.endpoint == FEEDBACK_ENDPOINT and req.method == "POST":
        metrics.observe_feedback(response.status_code)
    return response


def _blueprint(metrics: Metrics, token: str | None) -> Blueprint:
    blueprint = Blueprint("metrics", __name__)
    expected = f"Bearer {token}".encode() if token else None

    @blueprint.get("/metrics")
    def serve_metrics() -> Response:
        if expected is None:
            raise NotFound("No such endpoint")
        given = (request.headers.get("Authorization") or "").strip().encode()
        if not hmac.compare_digest(given, expected):     # not an `Unauthorized`: that counts as a JWT refusal
            from cds_service.http_errors import outcome_response
            return outcome_response(operation_outcome("Unauthorized", code="login"), 401,
                                    {"WWW-Authenticate": "Bearer"})
        body, content_type = metrics.exposition()
        return Response(body, status=200, content_type=content_type)

    return blueprint


def multiprocess_dir_for_serve(make_temp: Callable[[], str]) -> tuple[str, bool]:
    """The directory `her2-cds serve` gives prometheus_client: the operator's `PROMETHEUS_MULTIPROC_DIR`
    (emptied of a previous run's files, as prometheus_client requires) or a new temporary one.
    Returns (path, created_here)."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        for name in os.listdir(given):
            if name.endswith(".db"):
                os.remove(os.path.join(given, name))
        return given, False
    return make_temp(), True
