"""One JSON line per hook call: ids, timings, prefetch hits/misses; never a token or a patient id."""
from __future__ import annotations

import json
import logging

import pytest

from cds_service.logging_setup import FIELDS, JsonLinesFormatter, log_fields, scrub
from service_helpers import (PV, full_prefetch, hook_body, log_events, serve_record, serve_resources,
                             synthetic_record)

TOKEN = "eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl"
ACCESS_TOKEN = "fhir-access-token-123456"


def call(client, body, **headers):
    return client.post(f"/cds-services/{PV}", data=json.dumps(body), content_type="application/json",
                       headers=headers)


def test_hook_call_logs_one_structured_line(client, logs, fhir):
    serve_record(fhir)
    prefetch = full_prefetch()
    del prefetch["observations"]
    prefetch["medicationAdministrations"] = None
    body = hook_body(prefetch=prefetch)
    assert call(client, body).status_code == 200
    (line,) = log_events(logs, "hook.call")
    assert line["hookInstance"] == body["hookInstance"] and line["service"] == PV and line["status"] == 200
    assert set(line["timing_ms"]) == {"gather", "map", "decide", "render", "evaluate", "total"}
    assert line["prefetch"]["misses"] == ["observations"]
    assert line["prefetch"]["nulls"] == ["medicationAdministrations"]
    assert "patient" in line["prefetch"]["hits"]


def test_412_is_logged_with_its_failures(client, logs):
    assert call(client, hook_body(fhir_server=None)).status_code == 412
    (line,) = log_events(logs, "hook.call")
    assert line["status"] == 412 and line["prefetch"]["failures"]["patient"] == "no-fhir-server"


def test_logs_never_contain_tokens_or_the_patient_id(client, logs, fhir):
    """The real pipeline maps a real record (cards and their log lines), and the id appears nowhere."""
    serve_resources(fhir, synthetic_record("secret-patient-42"), "secret-patient-42")
    body = hook_body(patient="secret-patient-42",
                     fhirAuthorization={"access_token": ACCESS_TOKEN, "token_type": "Bearer"})
    assert call(client, body, Authorization=f"Bearer {TOKEN}").status_code == 200
    text = logs.getvalue()
    assert text and ACCESS_TOKEN not in text and TOKEN not in text and "secret-patient-42" not in text


def test_scrub_removes_bearer_tokens_and_jwts():
    assert scrub(f"Authorization: Bearer {ACCESS_TOKEN}") == "Authorization: Bearer [redacted]"
    assert TOKEN not in scrub(f"token={TOKEN}")


def _record_with(**extra) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "her2cds.hooks", "levelname": "INFO", "msg": "hook.call",
                                    "created": 1764700000.123})
    record.__dict__.update(extra)
    return record


@pytest.mark.parametrize("extra", [
    {"service": "her2-next-regimen-patient-view", "status": 200, "ms": 2.5, "cards": ["next-regimen"],
     "gather": {"prefetch": {"patient": "used", "conditions": "used"}, "fhir_reads": 0}, "user": None},
    {"note": "ünïcode café", "flags": (True, False), "empty": {}},
])
def test_a_line_with_nothing_to_bound_is_written_as_the_bounding_path_writes_it(extra):
    formatter = JsonLinesFormatter()
    fast = formatter.format(_record_with(**extra))
    slow = formatter.format(_record_with(**extra, why="x\\y"))     # a backslash: the bounding path
    assert json.loads(fast) | {"why": "x\\y"} == json.loads(slow)


@pytest.mark.parametrize("extra, absent", [
    ({"header": "a" * 401}, "a" * 401),
    ({"items": list(range(60))}, "55"),
    ({"auth": "Bearer abc.def"}, "abc.def"),
    ({"t": "eyJhbGciOi.eyJzdWIi.sig"}, "eyJzdWIi"),
    ({"d": {"k" * 101: 1}}, "k" * 101),
])
def test_a_line_with_something_to_bound_is_bounded(extra, absent):
    assert absent not in JsonLinesFormatter().format(_record_with(**extra))


@pytest.mark.parametrize("fields", [
    {"hookInstance": "h-1", "service": PV, "status": 200, "prefetch": {"hits": ["patient"]}, "cards": 1},
    {"header": "a" * 401, "auth": "Bearer abc.def"},                   # the bounding path
])
def test_fields_handed_over_as_one_dict_are_written_as_extra_keys_are(fields):
    def line(**extra) -> str:
        record = logging.getLogger("her2cds.hooks").makeRecord("her2cds.hooks", logging.INFO, "f", 1, "hook.call",
                                                               (), None, extra=extra)
        record.created = 1764700000.123
        return JsonLinesFormatter().format(record)
    assert line(**{FIELDS: fields}) == line(**fields)
    assert line(**{FIELDS: fields}, extra_key=1) == line(**fields, extra_key=1)


def test_extras_set_after_the_record_was_made_are_written():
    record = _record_with(late="yes")
    record._private = "never"
    assert json.loads(JsonLinesFormatter().format(record))["late"] == "yes"
    assert "_private" not in JsonLinesFormatter().format(record)


def test_a_line_with_keys_other_than_strings_is_still_written():
    assert json.loads(JsonLinesFormatter().format(_record_with(d={7: "seven"})))["d"] == {"7": "seven"}


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING, logging.DEBUG])
def test_log_fields_writes_the_line_logger_log_writes(level, monkeypatch):
    """`log_fields` skips only the lookup of the calling line, which the JSON line does not name."""
    import io
    monkeypatch.setattr("time.time", lambda: 1764700000.123)            # both records made at the same instant
    monkeypatch.setattr("time.time_ns", lambda: 1764700000123000000)    # (the clock LogRecord reads from 3.13)
    logger = logging.getLogger("her2cds.test_log_fields")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLinesFormatter())
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "level", logging.INFO)
    try:
        fields = {"hookInstance": "h-1", "service": PV, "status": 200, "timing_ms": {"total": 1.5}}
        logger.log(level, "hook.call", extra={FIELDS: fields})
        log_fields(logger, level, "hook.call", fields)
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == (0 if level < logging.INFO else 2) and len(set(lines)) <= 1
