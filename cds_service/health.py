"""Liveness and readiness for load balancers and orchestrators: `GET /healthz`, `GET /readyz`.

`/healthz` answers 200 while the process can serve HTTP at all (restart it when this fails).
`/readyz` answers 200 only when a hook call could succeed: the database (feedback, issued cards,
JWT replay store) answers, the knowledge base is loaded and, with auth on, every trusted issuer has
signing keys. Otherwise 503 with an OperationOutcome naming the failed checks (take the instance out
of rotation). Neither needs a JWT, and neither says anything about the configuration (no URLs, no
issuer names, no error texts): the details go to the log and to `her2-cds check-config`.

The same check functions back `her2-cds check-config`, which does print the details.
"""
from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from cds_service.errors import operation_outcome
from cds_service.logging_setup import get_logger

log = get_logger("health")

CHECK_TIMEOUT_SECONDS = 2.0     # a readiness probe must answer even when PostgreSQL hangs


def check_database(database: Any) -> str | None:
    """None when `SELECT 1` succeeds on the service database, else what went wrong.

    A raw DBAPI connection, not `Database.begin()`: on SQLite that opens a write transaction."""
    def probe() -> None:
        connection = database.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            cursor.close()
        finally:
            connection.close()
    return _within(probe, CHECK_TIMEOUT_SECONDS, "database")


def check_knowledge(path: str | None = None) -> str | None:
    """None when the knowledge base loads and validates (cached after the first load)."""
    def probe() -> None:
        from cards import load_knowledge
        load_knowledge(path) if path else load_knowledge()
    return _within(probe, 30.0, "knowledge")


def check_trusted_keys(authenticator: Any, auth_mode: str) -> str | None:
    """None when auth is off, or when every trusted issuer has at least one signing key loaded."""
    if auth_mode == "off":
        return None
    if authenticator is None or not getattr(authenticator, "issuers", None):
        return "no trusted issuer is configured (HER2CDS_TRUSTED_ISSUERS_FILE)"
    empty = [iss for iss, issuer in authenticator.issuers.items() if not _has_keys(issuer.keys)]
    return f"no signing keys loaded for issuer(s) {sorted(empty)}" if empty else None


def _has_keys(source: Any) -> bool:
    """A pinned JWKS file always has keys; a JWKS URL has them once fetched (fetched here if never tried)."""
    keys = getattr(source, "_keys", ())
    if keys is None:                       # a remote JWKS never fetched yet: one (rate-limited) fetch
        source.key_for("her2cds-readiness")
        keys = getattr(source, "_keys", None)
    return bool(keys) if keys != () else True


def _within(probe: Callable[[], None], timeout: float, name: str) -> str | None:
    pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"check-{name}")
    try:
        pool.submit(probe).result(timeout=timeout)
        return None
    except cf.TimeoutError:
        return f"no answer within {timeout:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the text is for logs and the CLI
        return f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        pool.shutdown(wait=False)


def readiness(state: Any) -> Mapping[str, str | None]:
    """check name -> None (ok) or the problem, for the app's own state."""
    return {
        "database": check_database(state.database) if state.database is not None else "no database",
        "knowledge": check_knowledge(),
        "trusted_keys": check_trusted_keys(state.authenticator, state.settings.auth_mode),
    }


def create_blueprint() -> Blueprint:
    blueprint = Blueprint("health", __name__)

    @blueprint.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @blueprint.get("/readyz")
    def readyz() -> Response:
        results = readiness(current_app.extensions["her2cds"])
        failed = sorted(name for name, problem in results.items() if problem)
        if not failed:
            return jsonify({"status": "ready", "checks": {name: "ok" for name in results}})
        log.warning("health.not_ready", extra={"failed": {name: results[name] for name in failed}})
        response = jsonify(operation_outcome("Not ready: " + ", ".join(failed) + " check(s) failed",
                                             code="transient"))
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return response

    return blueprint
