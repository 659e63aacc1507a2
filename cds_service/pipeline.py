"""The one decision pipeline, shared by the HTTP hooks and `her2-cds evaluate`.

gather (done by the caller) -> map (`fhir_mappings`) -> decide and render (`cards`). Pure: no HTTP,
no clock reads other than the `today` the caller passes.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cards import Policy, decide, load_knowledge, render_cards
from cards.decision import Decision
from cds_service.config import Settings
from cds_service.gather import GatheredRecord
from cds_service.services import ServiceDefinition
from fhir_mappings import map_draft_orders, summarize
from fhir_mappings.model import PatientSummary, RecordIssue


@dataclass(frozen=True)
class Evaluation:
    """Everything one evaluation produced: the hook answers with `cards`, and the explanation view shows
    the summary and decisions behind exactly those cards (one code path, so the page and the card never
    disagree). `issues` is every piece of bad or unusable data the cards report (gather gaps, unreadable
    resources, unmapped medications, bad draft orders; `info` ones were read by name), so the caller can
    log and count them; `issue_counts` says the same by kind for the call's log line."""

    summary: PatientSummary
    decisions: tuple[Decision, ...]
    cards: list[dict[str, Any]]
    gaps: tuple[RecordIssue, ...]
    issues: tuple[RecordIssue, ...]
    issue_counts: dict[str, int]


def evaluate(service: ServiceDefinition, context: dict[str, Any], record: GatheredRecord, *, today: dt.date,
             settings: Settings | None = None, timings: dict[str, float] | None = None,
             app_launch_url: str | None = None) -> Evaluation:
    """The cards for one call of `service` (the one the request was routed to by its id, never found again
    by hook name), with what they were made from: map the gathered resources and drafts, decide (the cards
    the service declares it may produce), render.

    `settings` carries the clinical policy switches (None: defaults). When `timings` is given, the
    milliseconds of each phase (map, decide, render) are added to it for the call's log line.
    `app_launch_url` (absolute) adds the explanation view's `smart` link to every card.
    """
    clock = _PhaseClock(timings)
    summary = summarize(record.resources, record.patient_id, today)
    draft_orders = context.get("draftOrders")
    drafts, draft_issues = map_draft_orders(draft_orders, context.get("selections"),
                                            _medications(record) if draft_orders is not None else None)
    issue_counts = {"unreadable": len(summary.skipped), "unmapped": len(summary.unmapped),
                    "drafts_unread": sum(1 for i in draft_issues if not i.info),
                    "by_name": len(summary.notes) + sum(1 for i in draft_issues if i.info)}
    clock.lap("map")
    policy = Policy() if settings is None else _policy(settings.tfi_policy, settings.list_post_seed_regimens,
                                                       settings.plan_at_progression_card)
    knowledge = load_knowledge()
    decisions = decide(summary, drafts, service.cards, knowledge=knowledge, policy=policy)
    clock.lap("decide")
    gaps = tuple(record.gaps) + tuple(draft_issues)
    cards = render_cards(decisions, summary, drafts, knowledge=knowledge, data_gaps=gaps,
                         app_launch_url=app_launch_url)
    clock.lap("render")
    return Evaluation(summary=summary, decisions=tuple(decisions), cards=cards, gaps=gaps,
                      issues=(*record.gaps, *summary.skipped, *summary.unmapped, *draft_issues),
                      issue_counts=issue_counts)


def _medications(record: GatheredRecord) -> dict[str, dict[str, Any]]:
    """The record's Medication resources by id, for drafts that reference one (a pass over the whole record:
    made only when the hook carries draft orders)."""
    return {r["id"]: r for r in record.resources
            if isinstance(r, dict) and r.get("resourceType") == "Medication" and isinstance(r.get("id"), str)}


@lru_cache(maxsize=16)    # configuration values only (a frozen Policy): the same policy for every call of a process
def _policy(tfi_policy: str | None, list_post_seed_regimens: bool, plan_at_progression_card: bool) -> Policy:
    """The clinical policy of these settings; built and checked against the knowledge once, not per call."""
    return Policy(tfi_policy=tfi_policy, list_post_seed_regimens=list_post_seed_regimens,
                  plan_at_progression_card=plan_at_progression_card)


class _PhaseClock:
    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[phase] = round((now - self.last) * 1000, 2)
        self.last = now
