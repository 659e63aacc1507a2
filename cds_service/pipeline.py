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


def evaluate(hook: str, context: dict[str, Any], record: GatheredRecord, *, today: dt.date,
             settings: Any = None) -> list[dict[str, Any]]:
    """Cards for one hook call: map the gathered resources and drafts, decide, render.

    `settings` is a `cds_service.config.Settings` (clinical policy switches); None means defaults.
    """
    from cards import Policy, build_cards, load_knowledge
    from fhir_mappings import map_draft_orders, summarize

    summary = summarize(record.resources, record.patient_id, today)
    drafts, draft_issues = map_draft_orders(context.get("draftOrders"), context.get("selections"))
    policy = Policy() if settings is None else Policy(
        tfi_policy=settings.tfi_policy, list_post_seed_regimens=settings.list_post_seed_regimens)
    return build_cards(summary, drafts, hook, knowledge=load_knowledge(), policy=policy,
                       data_gaps=tuple(record.gaps) + tuple(draft_issues))
