"""Fixtures for the HTTP service tests: an app with auth off, `evaluate` replaced by a recorder, FHIR mocked.

The pipeline's mapping and cards are tested elsewhere; here `cds_service.pipeline.evaluate` is swapped
for a fake that remembers what the gather step handed it and answers one fixed card.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest
import responses

from cds_service import create_app, pipeline
from cds_service.gather import GatheredRecord
from cds_service.logging_setup import LOGGER_NAME, JsonLinesFormatter
from service_helpers import CARD, FHIR, HangingServer


@dataclass
class EvaluateRecorder:
    calls: list[dict[str, Any]] = field(default_factory=list)
    raises: Exception | None = None
    record_issues: dict[str, int] = field(default_factory=dict)   # what the mapping "could not read"

    def __call__(self, hook: str, context: dict, record: GatheredRecord, *, today: Any,
                 settings: Any = None, timings: dict | None = None, app_launch_url: Any = None) -> pipeline.Evaluation:
        self.calls.append({"hook": hook, "context": context, "record": record, "today": today})
        if self.raises:
            raise self.raises
        return pipeline.Evaluation(summary=None, decisions=(), cards=[dict(CARD)], gaps=record.gaps,  # type: ignore[arg-type]
                                   issues=record.gaps, issue_counts=dict(self.record_issues))

    @property
    def record(self) -> GatheredRecord:
        return self.calls[-1]["record"]

    def resource_ids(self) -> set[str]:
        return {f"{r['resourceType']}/{r.get('id')}" for r in self.record.resources}


@pytest.fixture
def evaluate(monkeypatch: pytest.MonkeyPatch) -> EvaluateRecorder:
    recorder = EvaluateRecorder()
    monkeypatch.setattr(pipeline, "evaluate", recorder)
    return recorder


@pytest.fixture
def settings_overrides(tmp_path: Any) -> dict[str, Any]:
    return {"auth_mode": "off", "fhir_servers": FHIR, "feedback_db_url": f"sqlite:///{tmp_path}/feedback.sqlite3", "cors_origins": "*",
            "fhir_timeout_seconds": 0.5, "fhir_deadline_seconds": 1.0, "fhir_max_pages": 5,
            "max_body_bytes": 256 * 1024}


@pytest.fixture
def app(settings_overrides: dict[str, Any], evaluate: EvaluateRecorder):
    return create_app(settings_overrides)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def client_for(settings_overrides: dict[str, Any], evaluate: EvaluateRecorder):
    """A test client of an app whose auth-off allowlist (HER2CDS_FHIR_SERVERS) is `fhir_servers`."""
    def make(*fhir_servers: str, **overrides: Any):
        return create_app({**settings_overrides, "fhir_servers": ",".join(fhir_servers), **overrides}).test_client()
    return make


@pytest.fixture
def fhir() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Everything the service logs during the test, as JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLinesFormatter())
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def capture(request):
    """Start capturing the service's JSON log lines (call it after building the app: the factory
    re-attaches its own handler, dropping handlers bound to an older stderr)."""
    def start() -> io.StringIO:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonLinesFormatter())
        logger = logging.getLogger(LOGGER_NAME)
        logger.addHandler(handler)
        request.addfinalizer(lambda: logger.removeHandler(handler))
        return stream
    return start


@pytest.fixture
def hanging_server() -> Iterator[HangingServer]:
    with HangingServer() as server:
        yield server
