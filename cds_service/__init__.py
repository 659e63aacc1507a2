"""her2-cds: a CDS Hooks 2.0 service for the next treatment in HER2-positive metastatic breast cancer.

`create_app(config)` is the only way to get the Flask app (`cds_service.wsgi:app` calls it for gunicorn).
All state lives on the app (`app.extensions["her2cds"]`, a `state.ServiceState`).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

from flask import Flask, g, request
from flask_cors import CORS

from cards import load_knowledge
from cds_service import json_codec
from cds_service.auth import Authenticator
from cds_service.client_identity import remember_caller
from cds_service.config import Settings, load_settings
from cds_service.feedback.card_log import CardLog
from cds_service.retention import Retention
from cds_service.feedback.endpoint import create_blueprint as create_feedback_blueprint
from cds_service.fhir_client import SessionPool
from cds_service.gather import Gatherer
from cds_service.health import create_blueprint as create_health_blueprint
from cds_service.http_errors import drain_unread_body, refuse_oversized_body, register_error_handlers
from cds_service.logging_setup import configure_logging
from cds_service.paths import NormaliseSlashes
from cds_service.metrics import install as install_metrics
from cds_service.openapi import create_blueprint as create_openapi_blueprint
from cds_service.request_validation import request_checker, request_validator
from cds_service.services import ServiceRegistry
from cds_service.smart_backend import BackendTokens, load_registrations
from cds_service.state import ServiceState
from cds_service.storage import Database

CORS_ALLOW_HEADERS = ["Authorization", "Content-Type"]   # explicit: a "*" does not cover Authorization
CORS_METHODS = ["GET", "POST", "OPTIONS"]
API_PREFIX = "/cds-services"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The Flask app. `config` overrides Settings fields (by field name) on top of HER2CDS_* variables."""
    settings = load_settings(config)
    log = configure_logging(settings.log_level)
    app = _App(__name__)
    json_codec.install(app)             # msgspec / orjson for get_json / jsonify (issue 15: the hot path's JSON)
    request_checker(), request_validator()   # the request schema compiled (and checked) at start-up, not on a call
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False          # keep FHIR/CDS field order as built
    app.json.compact = True

    services = ServiceRegistry()
    sessions = SessionPool(pool_size=max(4, settings.fhir_max_workers * 2),
                           max_concurrent_reads=settings.fhir_max_concurrent_reads)
    state = ServiceState(settings=settings, services=services, sessions=sessions,
                         gatherer=Gatherer(settings, sessions, _backend_tokens(settings, sessions)))
    app.extensions["her2cds"] = state

    state.database = Database(settings.feedback_db_url)
    state.database.create_all()
    state.card_log = CardLog(state.database, retention=Retention(settings.retention_days,
                                                                 settings.purge_interval_seconds))
    state.authenticator = _authenticator(settings, state.database)
    if settings.auth_mode == "off":
        log.warning("auth.disabled: HER2CDS_AUTH_MODE=off accepts every caller; for demos only",
                    extra={"auth_mode": "off", "fhir_servers": settings.fhir_server_list})
    if settings.allow_insecure_fhir:
        log.warning("fhir.insecure_allowed: HER2CDS_ALLOW_INSECURE_FHIR=1 - FHIR access tokens may be sent to "
                    "http:// FHIR servers in clear text; for demos only", extra={"allow_insecure_fhir": True})

    register_error_handlers(app)
    # Authenticate first: nobody unauthenticated makes us read (or drain) a request body.
    app.before_request(functools.partial(_authenticate, state))   # the state at hand: no `current_app` lookup
    app.before_request(refuse_oversized_body)
    app.after_request(drain_unread_body)

    from cds_service.hooks import blueprint as hooks_blueprint
    app.register_blueprint(hooks_blueprint)
    app.register_blueprint(create_feedback_blueprint(state.database, services.ids, card_log=state.card_log))
    from cds_service import explain
    explain.register(app, state)                 # the SMART app at /app (explanation view)
    app.register_blueprint(create_health_blueprint())
    install_metrics(app, services.ids, settings.metrics_token)
    app.register_blueprint(create_openapi_blueprint(services.get(i) for i in services.ids))

    if settings.cors_origin_list:   # none allowed (the default): flask_cors would add no header to any answer
        CORS(app, resources={"/*": {"origins": settings.cors_origin_list}}, allow_headers=CORS_ALLOW_HEADERS,
             methods=CORS_METHODS, max_age=600, supports_credentials=False)
    app.wsgi_app = NormaliseSlashes(app.wsgi_app)   # `/cds-services/` and `//` route like the canonical path
    _warm_up()
    log.info("app.ready", extra={"services": list(services.ids), "auth_mode": settings.auth_mode})
    return app


class _App(Flask):
    """Flask, with `ensure_sync` worked out once per function: Flask asks `inspect.iscoroutinefunction` of the
    view and of every before/after-request and teardown function on every request (why: some 60 bytecodes
    each, seven times a hook call), and a function's answer never changes. Bounded: one entry per function
    the app registered."""

    def __init__(self, import_name: str) -> None:
        super().__init__(import_name)
        self._synchronous: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            return self._synchronous[func]
        except KeyError:
            synchronous = self._synchronous[func] = super().ensure_sync(func)
            return synchronous
        except TypeError:      # an unhashable callable: asked each time, as Flask does
            return super().ensure_sync(func)


def _warm_up() -> None:
    """Load (and validate) the knowledge base now, not on the first clinician's call: a broken
    knowledge file stops the service from starting instead of failing every hook call."""
    load_knowledge()


def _authenticate(state: ServiceState) -> None:
    """`before_request` (bound to its app's state by `create_app`): JWT check on every API call except CORS
    preflights (browsers send no token). The state is bound, not looked up (why: the `current_app` proxy and
    the lookup cost some 70 bytecodes a call)."""
    if state.authenticator is None:   # auth off: `caller_issuer()` answers the auth-off marker by itself
        return
    req = request._get_current_object()   # type: ignore[attr-defined]  # why: each proxy lookup ~40 bytecodes
    if req.method == "OPTIONS":
        return
    path = req.path
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        g.her2cds_claims = state.authenticator.authenticate(req)
        remember_caller(req)   # cards and feedback belong to this issuer


def _backend_tokens(settings: Settings, sessions: SessionPool) -> BackendTokens | None:
    """SMART Backend Services tokens for the FHIR servers the operator registered (a bad file stops startup)."""
    if not settings.smart_backend_clients_file:
        return None
    return BackendTokens(load_registrations(settings.smart_backend_clients_file), sessions.session,
                         timeout=settings.fhir_timeout_seconds)


def _authenticator(settings: Settings, database: Database) -> Authenticator | None:
    return None if settings.auth_mode == "off" else Authenticator(settings, database)
