"""Per-app state, kept in `app.extensions["her2cds"]` (no module-level globals: tests build many apps)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cds_service.config import Settings
from cds_service.fhir_client import SessionPool
from cds_service.gather import Gatherer
from cds_service.services import ServiceRegistry


@dataclass
class ServiceState:
    settings: Settings
    services: ServiceRegistry
    sessions: SessionPool             # the pooled HTTP session(s) used for FHIR reads
    gatherer: Gatherer
    database: Any = None              # cds_service.storage.Database (feedback + JWT replay store)
    authenticator: Any = None         # cds_service.auth.Authenticator; None when auth_mode == "off"
