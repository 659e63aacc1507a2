"""Structured logs: one JSON object per line, safe to ship to a log store.

What goes in: event name, hookInstance, service id, HTTP status, per-phase timings, prefetch
hits/misses, failure classes, a correlation id for 500s. What never goes in: patient ids, resource
contents, URLs with query strings, tokens (JWTs and FHIR access tokens). `scrub` is a last line of
defence for free text (exception messages) that might still carry a bearer token.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import traceback
from typing import Any

LOGGER_NAME = "her2cds"
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/=]+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def scrub(text: str) -> str:
    """Remove anything that looks like a bearer token or a JWT."""
    return _JWT.sub("[jwt]", _BEARER.sub(r"\1[redacted]", text))


class JsonLinesFormatter(logging.Formatter):
    """`logger.info("event", extra={...})` -> {"ts", "level", "logger", "event", ...extra} on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": scrub(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                out[key] = scrub(value) if isinstance(value, str) else value
        if record.exc_info:
            out["traceback"] = scrub("".join(traceback.format_exception(*record.exc_info)))
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", stream: Any = None) -> logging.Logger:
    """Attach one JSON-lines handler to the service logger (idempotent: app factories may run many times)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level.upper())
    logger.propagate = False
    target = stream if stream is not None else sys.stderr
    for handler in logger.handlers:
        if isinstance(handler.formatter, JsonLinesFormatter) and getattr(handler, "stream", None) is target:
            return logger
    for handler in list(logger.handlers):
        if isinstance(handler.formatter, JsonLinesFormatter):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(target)
    handler.setFormatter(JsonLinesFormatter())
    logger.addHandler(handler)
    return logger


def get_logger(name: str = "") -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)
