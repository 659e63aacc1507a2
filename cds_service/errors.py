"""Errors as FHIR OperationOutcome JSON, one exception type for every client-facing failure.

Each HTTP failure the service can give has its own status and OperationOutcome issue code, so an EHR
integrator can tell "your request is malformed" (400) from "we could not reach your FHIR server" (412).
"""
from __future__ import annotations

from typing import Any

# HTTP status -> OperationOutcome issue code, for every error status the service answers with (the API
# errors below and the HTTP errors Flask raises, see `http_errors`).
ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
               412: "transient", 413: "too-costly", 415: "not-supported"}


def operation_outcome(message: str, *, code: str = "invalid", severity: str = "error",
                      expression: str | None = None, diagnostics: str | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "details": {"text": message}}
    if expression:
        issue["expression"] = [expression]
    if diagnostics:
        issue["diagnostics"] = diagnostics
    return {"resourceType": "OperationOutcome", "issue": [issue]}


class ApiError(Exception):
    """A failure reported to the client as `status` + OperationOutcome (never a stack trace)."""

    def __init__(self, message: str, *, status: int = 400, code: str | None = None,
                 expression: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code or ISSUE_CODES.get(status, "invalid")
        self.expression = expression
        self.headers = headers or {}

    def to_outcome(self) -> dict[str, Any]:
        return operation_outcome(self.message, code=self.code, expression=self.expression)


class BadRequest(ApiError):
    def __init__(self, message: str, *, expression: str | None = None) -> None:
        super().__init__(message, status=400, expression=expression)


class Unauthorized(ApiError):
    """Bare 401: the reason is logged server-side, never told to the caller (CDS Hooks best practice)."""

    def __init__(self, reason: str = "", *, kind: str = "other") -> None:
        super().__init__("Unauthorized", status=401)
        self.reason = reason
        self.kind = kind          # the refusal's kind (cds_service.auth.REFUSAL_KINDS): the metric's label


class NotFound(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=404)


class PreconditionFailed(ApiError):
    """412: required FHIR data could not be obtained from prefetch or the FHIR server (CDS Hooks 2.0)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=412)
