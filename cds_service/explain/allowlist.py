"""Which FHIR servers the explanation view may read: its `iss` check, in one function.

The security issue's allowlist (trusted issuers' `fhir_servers`, `HER2CDS_FHIR_SERVERS` with auth off)
is meant to replace the body of `check_iss` when it lands; until then the bases come from
`HER2CDS_FHIR_SERVERS` (comma-separated). Empty means none: every `iss` is refused.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from cds_service.config import Settings


class FhirServerNotAllowed(Exception):
    """The `iss` named in a launch is not a FHIR server the operator allowed."""


def _normal(base: str) -> str:
    parts = urlsplit(base.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def check_iss(settings: Settings, iss: str) -> None:
    """Raise FhirServerNotAllowed unless `iss` is one of the allowed FHIR bases (exact, modulo a trailing
    slash and the case of scheme and host): the app would otherwise send the user's browser and our
    server-side reads to any URL a link names."""
    allowed = {_normal(b) for b in settings.fhir_servers.split(",") if b.strip()}
    if not iss or _normal(iss) not in allowed:
        raise FhirServerNotAllowed("this FHIR server is not on the service's allowlist (HER2CDS_FHIR_SERVERS)")
