"""The one decision pipeline, shared by the HTTP hooks and `her2-cds evaluate`.

gather (done by the caller) -> map (`fhir_mappings`) -> decide and render (`cards`). Pure: no HTTP,
no clock reads other than the `today` the caller passes.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from cards import Policy, decide, load_knowledge, render_cards
from cds_service.config import Settings
from fhir_mappings import map_draft_orders, summarize
from fhir_mappings.model import RecordIssue


@dataclass(frozen=True)
class GatheredRecord:
    """What the gather step obtained for one hook call."""

    patient_id: str
    resources: tuple[dict[str, Any], ...]            # raw FHIR R4 resource dicts, each once
    gaps: tuple[RecordIssue, ...] = field(default=())  # optional data that could not be read (say so on cards)


def evaluate(hook: str, context: dict[str, Any], record: GatheredRecord, *, today: dt.date,
             settings: Settings | None = None, timings: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Cards for one hook call: map the gathered resources and drafts, decide, render.

    `settings` carries the clinical policy switches (None: defaults). When `timings` is given, the
    milliseconds of each phase (map, decide, render) are added to it for the call's log line.
    """
    clock = _PhaseClock(timings)
    summary = summarize(record.resources, record.patient_id, today)
    drafts, draft_issues = map_draft_orders(context.get("draftOrders"), context.get("selections"))
    clock.lap("map")
    policy = Policy() if settings is None else Policy(
        tfi_policy=settings.tfi_policy, list_post_seed_regimens=settings.list_post_seed_regimens,
        plan_at_progression_card=settings.plan_at_progression_card)
    knowledge = load_knowledge()
    decisions = decide(summary, drafts, hook, knowledge=knowledge, policy=policy)
    clock.lap("decide")
    cards = render_cards(decisions, summary, drafts, knowledge=knowledge,
                         data_gaps=tuple(record.gaps) + tuple(draft_issues))
    clock.lap("render")
    return cards


class _PhaseClock:
    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[phase] = round((now - self.last) * 1000, 2)
        self.last = now
