"""Session fixtures: a real sekmet-fhir server with the demo patients (and the shared scenarios when
present) and the live service (`her2-cds serve`, auth off, temp feedback DB), both on free loopback
ports and stopped by PID at the end."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import pytest
import requests

from cds_service.relative_dates import load_json
from sandbox import loader
from sandbox.runner import start_service
from sandbox.sekmet import SekmetServer, ensure_sekmet, free_port, stop_process, wait_for_http
from support import TODAY, scenario_dirs


@dataclass(frozen=True)
class LiveService:
    base: str
    services: dict[str, dict[str, Any]]     # hook -> discovery entry
    closed_fhir: str                        # an allowlisted FHIR base on a loopback port nobody listens on

    def service(self, hook: str) -> dict[str, Any]:
        return self.services[hook]


@pytest.fixture(scope="session")
def fhir_server() -> Iterator[str]:
    """Base URL of a fresh sekmet-fhir holding the demo patients (scenarios: `scenario_load_errors`)."""
    server = SekmetServer(venv=ensure_sekmet())
    server.start()
    try:
        loader.load_directory(server.base_url, today=TODAY)
        yield server.base_url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def scenario_load_errors(fhir_server: str) -> dict[str, str]:
    """Load the shared scenarios (when present) into the fixture server; scenario folder -> load error.

    Kept apart from `fhir_server` so one unloadable scenario fails its own cases, not every test."""
    errors: dict[str, str] = {}
    for directory in scenario_dirs():
        try:
            loader.load_bundle(fhir_server, load_json(directory / "bundle.json", TODAY), name=directory.name)
        except (loader.LoadError, ValueError) as exc:
            errors[directory.name] = str(exc)
    return errors


@pytest.fixture(scope="session")
def live_service(tmp_path_factory: pytest.TempPathFactory, fhir_server: str) -> Iterator[LiveService]:
    """`her2-cds serve` (real gunicorn, real HTTP) on a free port, allowed to read the fixture FHIR
    server and one closed loopback port (for the 412 test)."""
    work = tmp_path_factory.mktemp("service")
    port = free_port()
    closed_fhir = f"http://127.0.0.1:{free_port()}/fhir"
    log_path = work / "service.log"
    with open(log_path, "wb") as log:
        process = start_service(port, work, fhir_servers=[fhir_server, closed_fhir],
                                env={"HER2CDS_FHIR_DEADLINE_SECONDS": "10"}, log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_for_http(f"{base}/cds-services", 60, process):
            pytest.fail(f"service did not start; log:\n{log_path.read_text(errors='replace')[-3000:]}")
        discovery = requests.get(f"{base}/cds-services", timeout=10).json()
        yield LiveService(base, {s["hook"]: s for s in discovery.get("services", [])}, closed_fhir)
    finally:
        stop_process(process, grace=10)
