"""Fixtures for the HTTP service tests: an app with auth off (or required, trusting the test client key),
FHIR mocked, and the real pipeline behind the endpoint.

Two opt-in views of `cds_service.pipeline.evaluate`: `evaluate` records what the gather step handed the
real pipeline (the gather tests), `fake_evaluate` replaces it by one fixed card (only the tests about
HTTP itself: routing, CORS, auth, status codes, metrics of a known card), so every other test runs the
real mapping, decisions and rendering, and what they log.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pytest
import responses

from cds_service import create_app, pipeline
from cds_service.gather import GatheredRecord
from cds_service.services import ServiceDefinition
from cds_service.logging_setup import LOGGER_NAME, JsonLinesFormatter
from service_helpers import CARD, FHIR, HangingServer
from support.client_key import ISSUER, trusted_issuers_file


@dataclass
class EvaluateRecorder:
    """Remembers each call of `pipeline.evaluate`; `real` is the pipeline to run, or None: answer one fixed
    card (`CARD`) with `record_issues` as the mapping's counts, or raise `raises`."""

    real: Callable[..., pipeline.Evaluation] | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    raises: Exception | None = None
    record_issues: dict[str, int] = field(default_factory=dict)   # what the mapping "could not read"

    def __call__(self, service: ServiceDefinition, context: dict, record: GatheredRecord, *, today: Any,
                 settings: Any = None, timings: dict | None = None, app_launch_url: Any = None) -> pipeline.Evaluation:
        self.calls.append({"service": service.id, "hook": service.hook, "context": context, "record": record,
                           "today": today, "app_launch_url": app_launch_url})
        if self.raises:
            raise self.raises
        if self.real is not None:
            return self.real(service, context, record, today=today, settings=settings, timings=timings,
                             app_launch_url=app_launch_url)
        return pipeline.Evaluation(summary=None, decisions=(), cards=[dict(CARD)], gaps=record.gaps,  # type: ignore[arg-type]
                                   issues=record.gaps, issue_counts=dict(self.record_issues))

    @property
    def record(self) -> GatheredRecord:
        return self.calls[-1]["record"]

    def resource_ids(self) -> set[str]:
        return {f"{r['resourceType']}/{r.get('id')}" for r in self.record.resources}


@pytest.fixture
def evaluate(monkeypatch: pytest.MonkeyPatch) -> EvaluateRecorder:
    """The real pipeline, with each call's gathered record remembered."""
    recorder = EvaluateRecorder(real=pipeline.evaluate)
    monkeypatch.setattr(pipeline, "evaluate", recorder)
    return recorder


@pytest.fixture
def fake_evaluate(monkeypatch: pytest.MonkeyPatch) -> EvaluateRecorder:
    """No pipeline: one fixed card, for the tests about HTTP only."""
    recorder = EvaluateRecorder()
    monkeypatch.setattr(pipeline, "evaluate", recorder)
    return recorder


@pytest.fixture
def settings_overrides(tmp_path: Any) -> dict[str, Any]:
    return {"auth_mode": "off", "fhir_servers": FHIR, "feedback_db_url": f"sqlite:///{tmp_path}/feedback.sqlite3", "cors_origins": "*",
            "fhir_timeout_seconds": 0.5, "fhir_deadline_seconds": 1.0, "fhir_max_pages": 5,
            "max_body_bytes": 256 * 1024}


@pytest.fixture
def app(settings_overrides: dict[str, Any]):
    return create_app(settings_overrides)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def secured_app_for(tmp_path: Any, settings_overrides: dict[str, Any]):
    """Make an app with auth required that trusts the committed test client key (`support.client_key`)
    under each issuer given (issuer -> the FHIR bases it may name; default: the test issuer, `FHIR`)."""
    def make(issuers: dict[str, list[str]] | None = None, *, public_base_url: str = "https://cds.example.org",
             **overrides: Any):
        trusted = trusted_issuers_file(tmp_path, {ISSUER: [FHIR]} if issuers is None else issuers)
        return create_app({**settings_overrides, "auth_mode": "required", "trusted_issuers_file": str(trusted),
                           "public_base_url": public_base_url, **overrides})
    return make


@pytest.fixture
def client_for(settings_overrides: dict[str, Any]):
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
