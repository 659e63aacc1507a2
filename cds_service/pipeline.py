"""The one decision pipeline, shared by the HTTP hooks and `her2-cds evaluate`.

gather (done by the caller) -> map (`fhir_mappings`) -> decide and render (`cards`). Pure: no HTTP,
no clock reads other than the `today` the caller passes.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from fhir_mappings.model import RecordIssue


@dataclass(frozen=True)
class GatheredRecord:
    """What the gather step obtained for one hook call."""

    patient_id: str
    resources: tuple[dict[str, Any], ...]            # raw FHIR R4 resource dicts, each once
    gaps: tuple[RecordIssue, ...] = field(default=())  # optional data that could not be read (say so on cards)
