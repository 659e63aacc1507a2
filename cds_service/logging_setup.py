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
import math
import re
import sys
import traceback
from itertools import islice
from typing import Any

import orjson

LOGGER_NAME = "her2cds"
# Every logger of our code: the service's, and the mapping and card packages' (`logging.getLogger(__name__)`),
# which would otherwise reach stderr as plain text, unscrubbed.
PACKAGE_LOGGERS = (LOGGER_NAME, "fhir_mappings", "cards")
MAX_FIELD_CHARS = 400     # any logged string (event, header-derived values) is cut here: no log flooding
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/=]+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
_LONG_RUN = re.compile(rb'"[^"]{101}')     # a quote, then over 100 bytes before the next one (`_plain_line`)
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# `LogRecord.__init__` sets this many attributes, first and always the same ones: a record's `extra` comes after
# them (`Logger.makeRecord`), so `format` looks for extras past them only (why: some 200 bytecodes per line).
_INIT_ATTR_COUNT = len(vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None)))
#: `logger.info("event", extra={FIELDS: {...}})`: a line's fields handed over as one dict, written as if each were
#: its own `extra` key. Why: `Logger.makeRecord` copies each `extra` key onto the record and `format` picks each
#: off it again, some 40 bytecodes a field, and the hook call's line (one per call) has a dozen.
FIELDS = "her2cds_fields"


def scrub(text: str) -> str:
    """Remove anything that looks like a bearer token or a JWT."""
    return _JWT.sub("[jwt]", _BEARER.sub(r"\1[redacted]", text))


def bounded(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """`text` scrubbed and cut to `limit` characters (attacker-supplied header values can be 8 KiB+).

    The two substitutions run only on text that could match them (`eyJ`, or `bearer` in any case):
    a hook call's log line has some 35 short strings, and scrubbing each one was most of its cost."""
    if "eyJ" in text or "bearer" in text.lower():
        text = scrub(text)
    return text if len(text) <= limit else f"{text[:limit]}...[{len(text) - limit} more chars]"


def _bounded_value(value: Any) -> Any:
    """`value` with every string in it `bounded` (keys too), lists and dicts cut to 50 items."""
    if isinstance(value, str):
        return bounded(value)
    if isinstance(value, (list, tuple)):
        return [_bounded_value(v) for v in value[:50]]
    if isinstance(value, dict):
        return {bounded(str(k), 100): _bounded_value(v) for k, v in list(value.items())[:50]}
    return value


class JsonLinesFormatter(logging.Formatter):
    """`logger.info("event", extra={...})` -> {"ts", "level", "logger", "event", ...extra} on one line
    (`extra={FIELDS: {...}}` writes the same line).

    Written with orjson (compact; the standard library when orjson refuses a value, e.g. an integer
    beyond 64 bits or a lone surrogate): one line per hook call, so its cost is on every call."""

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")    # (epoch second, its ISO text): formatted once a second

    def format(self, record: logging.LogRecord) -> str:
        event = record.getMessage()
        extras = {key: value for key, value in islice(vars(record).items(), _INIT_ATTR_COUNT, None)
                  if key not in _STANDARD_ATTRS and not key.startswith("_")}
        fields = extras.pop(FIELDS, None)
        if fields:
            extras = {**fields, **extras}
        if not record.exc_info:
            line = self._plain_line(record, event, extras)
            if line is not None:
                return line
        out = self._head(record, bounded(event))
        out.update((key, _bounded_value(value)) for key, value in extras.items())
        if record.exc_info:
            out["traceback"] = scrub("".join(traceback.format_exception(*record.exc_info)))
        try:
            return orjson.dumps(out, default=str, option=_ORJSON_OPTIONS).decode()
        except TypeError:
            return json.dumps(out, default=str, ensure_ascii=False)

    def _plain_line(self, record: logging.LogRecord, event: str, extras: dict[str, Any]) -> str | None:
        """The line written as it is, when it holds nothing to bound; else None (then `format` bounds each value).

        Why: bounding walked every value of the line in Python, a call per string, and a hook call's line
        holds some 40 of them; the tests below run once, in C, on the written line. It needs no bounding
        when it has no backslash (no escaped character, so every `"` opens or closes a string), no run
        between two quotes longer than 100 bytes (no string or key over 100 characters, the tighter of
        the two limits), fewer than 50 commas (no list or dict over 50 items) and nothing a scrub could
        change (`eyJ`, `bearer` in any case). Keys other than strings are left to `format`. So
        `_bounded_value` needs no shortcuts of its own: it sees only lines with something to bound."""
        try:
            data = orjson.dumps({**self._head(record, event), **extras}, default=str, option=_PLAIN_OPTIONS)
        except TypeError:
            return None
        if b"\\" in data or data.count(b",") >= 50 or b"eyJ" in data or b"bearer" in data.lower() \
                or _LONG_RUN.search(data):
            return None
        return data.decode()

    def _head(self, record: logging.LogRecord, event: str) -> dict[str, Any]:
        return {"ts": self._timestamp(record.created), "level": record.levelname.lower(), "logger": record.name,
                "event": event}

    def _timestamp(self, created: float) -> str:
        """`created` as ISO 8601 UTC with milliseconds, rounded as `datetime.fromtimestamp` rounds."""
        fraction, whole = math.modf(created)
        micros = round(fraction * 1e6)
        if micros >= 1_000_000:
            whole, micros = whole + 1, micros - 1_000_000
        second = int(whole)
        cached, text = self._second
        if second != cached:
            text = dt.datetime.fromtimestamp(second, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, text)
        return f"{text}.{micros // 1000:03d}+00:00"


# Dates and dataclasses go to `default=str`, as the standard library's encoder sends them.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS
_PLAIN_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS   # other keys: TypeError


def configure_logging(level: str = "INFO", stream: Any = None) -> logging.Logger:
    """Attach one JSON-lines handler to each of our package loggers (idempotent: app factories may run many
    times), and to the root logger when nothing else configured it, so library warnings are JSON too."""
    target = stream if stream is not None else sys.stderr
    for name in PACKAGE_LOGGERS:
        _attach(logging.getLogger(name), target, level)
    root = logging.getLogger()
    if not root.handlers:
        _attach(root, target, None)
    return logging.getLogger(LOGGER_NAME)


def _attach(logger: logging.Logger, target: Any, level: str | None) -> None:
    if level is not None:
        logger.setLevel(level.upper())
        logger.propagate = False
    for handler in logger.handlers:
        if isinstance(handler.formatter, JsonLinesFormatter) and getattr(handler, "stream", None) is target:
            return
    for handler in list(logger.handlers):
        if isinstance(handler.formatter, JsonLinesFormatter):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(target)
    handler.setFormatter(JsonLinesFormatter())
    logger.addHandler(handler)


def log_fields(logger: logging.Logger, level: int, event: str, fields: dict[str, Any]) -> None:
    """`logger.log(level, event, extra={FIELDS: fields})` without looking up the calling line: the JSON line
    names no source file, line or function, and `Logger.findCaller` walks the stack for them (why: with
    `Logger._log` some 220 bytecodes a line; the hook call's line is written on every call). The record is the
    one `logging` makes when it is told not to look (`logging._srcfile = None`)."""
    if logger.isEnabledFor(level):
        logger.handle(logger.makeRecord(logger.name, level, "(unknown file)", 0, event, (), None,
                                        "(unknown function)", {FIELDS: fields}))


def get_logger(name: str = "") -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)
