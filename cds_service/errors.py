"""Errors as FHIR OperationOutcome JSON, one exception type for every client-facing failure.

Each HTTP failure the service can give has its own status and OperationOutcome issue code, so an EHR
integrator can tell "your request is malformed" (400) from "we could not reach your FHIR server" (412).
"""
from __future__ import annotations

from typing import Any


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

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid",
                 expression: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.expression = expression
        self.headers = headers or {}

    def to_outcome(self) -> dict[str, Any]:
        return operation_outcome(self.message, code=self.code, expression=self.expression)


class BadRequest(ApiError):
    def __init__(self, message: str, *, expression: str | None = None) -> None:
        super().__init__(message, status=400, code="invalid", expression=expression)


class Unauthorized(ApiError):
    """Bare 401: the reason is logged server-side, never told to the caller (CDS Hooks best practice)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__("Unauthorized", status=401, code="login")
        self.reason = reason


class NotFound(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=404, code="not-found")


class PreconditionFailed(ApiError):
    """412: required FHIR data could not be obtained from prefetch or the FHIR server (CDS Hooks 2.0)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=412, code="transient")
