"""Every failure as a JSON OperationOutcome: API errors, HTTP errors raised by Flask/Werkzeug, and bugs.

Why one place: the CDS client (and the probe) must get `application/json` OperationOutcome bodies for
400/401/404/405/412/413/415 alike, never an HTML page, and a bug must be a 500 with a correlation id
that matches the server log line holding the traceback, never a stack trace sent to the client.
"""
from __future__ import annotations

import uuid
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from cds_service.errors import ISSUE_CODES, ApiError, Unauthorized, operation_outcome
from cds_service.logging_setup import get_logger
from cds_service.metrics import auth_rejected

log = get_logger("http")

_MESSAGES = {404: "No such endpoint", 405: "Method not allowed on this endpoint",
             413: "Request body too large"}

# Upload bytes read and thrown away before answering 413, so the client sees the answer rather than a
# connection reset (the server closing a socket with unread data sends RST). Past this, we stop reading.
_DRAIN_LIMIT_BYTES = 8 * 1024 * 1024


def outcome_response(outcome: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(outcome)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _path_label() -> str:
    return request.path[:120]


def handle_api_error(error: ApiError) -> Response:
    headers = dict(error.headers)
    if isinstance(error, Unauthorized):
        headers.setdefault("WWW-Authenticate", "Bearer")
        auth_rejected(error.kind)
        log.info("auth.rejected", extra={"path": _path_label(), "status": 401, "reason": error.reason[:200]})
    else:
        log.info("http.error", extra={"path": _path_label(), "status": error.status, "code": error.code,
                                      "expression": error.expression})
    return outcome_response(error.to_outcome(), error.status, headers)


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    message = _MESSAGES.get(status) or (error.description or error.name)
    if isinstance(error, RequestEntityTooLarge):
        message = f"Request body too large (limit {request.max_content_length} bytes)"
    headers = {}
    allow = error.get_headers() if status == 405 else []
    for name, value in allow:
        if name.lower() == "allow":
            headers["Allow"] = value
    log.info("http.error", extra={"path": _path_label(), "status": status, "method": request.method})
    return outcome_response(operation_outcome(message, code=ISSUE_CODES.get(status, "processing")), status, headers)


def handle_unexpected(error: Exception) -> Response:
    correlation_id = str(uuid.uuid4())
    log.error("internal.error", exc_info=error, extra={"path": _path_label(), "correlation_id": correlation_id,
                                                     "status": 500})
    outcome = operation_outcome(f"Internal error; correlation id {correlation_id}", code="exception",
                                diagnostics=f"correlation-id: {correlation_id}")
    return outcome_response(outcome, 500, {"X-Correlation-Id": correlation_id})


def refuse_oversized_body() -> None:
    """`before_request`: a declared body over the limit gets a 413 (after draining it, see above)."""
    req = request._get_current_object()   # type: ignore[attr-defined]  # why: each proxy lookup ~40 bytecodes
    limit = req.max_content_length
    # Pinned on the request: Flask would look MAX_CONTENT_LENGTH up through the `current_app` proxy again on
    # each later read, when the body is read and in `drain_unread_body` (why: some 85 bytecodes a read).
    req.max_content_length = limit
    length = req.content_length
    if limit is None or length is None or length <= limit:
        return
    stream = req.environ.get("wsgi.input")
    remaining = min(length, _DRAIN_LIMIT_BYTES)
    try:
        while stream is not None and remaining > 0:
            chunk = stream.read(min(65536, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
    except (OSError, ValueError):
        pass
    raise RequestEntityTooLarge()


def drain_unread_body(response: Response) -> Response:
    """`after_request`: read what an early answer (401, 404, 415...) left unread, so closing the socket
    does not reset the connection before the client has read the answer (gunicorn drains only 64 KiB).
    Never for a 401: an unauthenticated client gets no more of our reading than gunicorn's bounded drain."""
    if response.status_code == 401:
        return response
    req = request._get_current_object()   # type: ignore[attr-defined]  # why: each proxy lookup ~40 bytecodes
    length = req.content_length
    limit = req.max_content_length
    if length and (limit is None or length <= limit):
        try:
            req.stream.exhaust()
        except Exception:   # a broken upload must not turn a good answer into an error
            pass
    return response


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
