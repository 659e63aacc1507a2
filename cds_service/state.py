"""Per-app state, kept in `app.extensions["her2cds"]` (no module-level globals: tests build many apps)."""
from __future__ import annotations

from dataclasses import dataclass, field

from cds_service.auth import Authenticator
from cds_service.collector_pause import CollectorPause
from cds_service.config import Settings
from cds_service.feedback.card_log import CardLog
from cds_service.fhir_client import SessionPool
from cds_service.gather import Gatherer
from cds_service.services import ServiceRegistry
from cds_service.storage import Database


@dataclass
class ServiceState:
    settings: Settings
    services: ServiceRegistry
    sessions: SessionPool             # the pooled HTTP session(s) used for FHIR reads
    gatherer: Gatherer
    database: Database | None = None             # feedback, issued-card log and JWT replay store
    card_log: CardLog | None = None              # uuid -> topic of every card issued (for feedback reports)
    authenticator: Authenticator | None = None   # None when auth_mode == "off"
    collector_pause: CollectorPause = field(default_factory=CollectorPause)   # gc is per process: one per app
