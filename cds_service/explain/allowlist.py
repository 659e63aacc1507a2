"""Which FHIR servers the explanation view may read: its `iss` check, in one function.

The bases come from `HER2CDS_FHIR_SERVERS` (comma-separated), checked by the service's one allowlist
check (`cds_service.fhir_allowlist.check_fhir_server`, issue 14). Empty means none: every `iss` is refused.
"""
from __future__ import annotations

from cds_service.config import Settings
from cds_service.fhir_allowlist import FhirServerNotAllowed, check_fhir_server

__all__ = ["FhirServerNotAllowed", "check_iss"]


def check_iss(settings: Settings, iss: str) -> None:
    """Raise FhirServerNotAllowed unless `iss` is one of the allowed FHIR bases (exact, modulo a trailing
    slash and the case of scheme and host): the app would otherwise send the user's browser and our
    server-side reads to any URL a link names."""
    try:
        check_fhir_server(iss, settings.fhir_server_list)
    except FhirServerNotAllowed as exc:
        raise FhirServerNotAllowed(f"this FHIR server is not on the service's allowlist (HER2CDS_FHIR_SERVERS): "
                                   f"{exc.reason}") from None
