"""build_cards: summary + drafts -> decisions -> ordered card dicts (the pipeline's one entry point)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from cards.decide_regimen import decide_regimen
from cards.decide_safety import safety_decisions
from cards.decision import Decision
from cards.knowledge_base import Knowledge
from cards.clinical_picture import clinical_picture
from cards.policy import Policy
from cards.render import render_card
from cards.topics import DRAFT_ORDER_TOPICS, INDICATOR_RANK, ORDER_HOOKS, TOPIC_ORDER
from fhir_mappings.model import DraftOrder, PatientSummary, RecordIssue

REGIMEN_HOOKS = ("patient-view",)   # the next-regimen card is a chart-opening card; order hooks get checks only


def decide(summary: PatientSummary, drafts: Sequence[DraftOrder], hook: str, *, knowledge: Knowledge,
           policy: Policy) -> list[Decision]:
    """All decisions for one hook call, in stable card order (most severe first, then topic order)."""
    p = clinical_picture(summary, knowledge, policy)
    regimen = decide_regimen(p, knowledge, policy)
    recommended = next((pr.regimen for pr in regimen.proposals if pr.recommended), None) if regimen else None
    # Contract v2: while the current metastatic line is ongoing with no documented progression, no
    # next-regimen card (unless the site turned on the plan-at-progression card).
    due = regimen is not None and (not p.current_line_ongoing or policy.plan_at_progression_card)
    show_regimen = due and hook in REGIMEN_HOOKS
    order_drafts = tuple(drafts) if hook != "patient-view" else ()
    decisions = safety_decisions(p, order_drafts, knowledge, recommended, show_regimen, hook)
    if show_regimen:
        decisions.append(regimen)
    if hook in ORDER_HOOKS:
        decisions = [replace(d, about_drafts=True) if d.topic in DRAFT_ORDER_TOPICS and d.indicator != "info" else d
                     for d in decisions]
    return sorted(decisions, key=lambda d: (-INDICATOR_RANK[d.indicator], TOPIC_ORDER[d.topic]))


def render_cards(decisions: Sequence[Decision], summary: PatientSummary, drafts: Sequence[DraftOrder], *,
                 knowledge: Knowledge, data_gaps: Sequence[RecordIssue] = (),
                 app_launch_url: str | None = None) -> list[dict[str, Any]]:
    """The `cards` array for these decisions, in their order (`app_launch_url`: see `render_card`)."""
    return [render_card(d, knowledge, summary, gaps=data_gaps, drafts=drafts, app_launch_url=app_launch_url)
            for d in decisions]


def build_cards(summary: PatientSummary, drafts: Sequence[DraftOrder], hook: str, *, knowledge: Knowledge,
                policy: Policy, data_gaps: Sequence[RecordIssue] = ()) -> list[dict[str, Any]]:
    """The `cards` array for one hook call: pure and deterministic apart from the uuids."""
    return render_cards(decide(summary, drafts, hook, knowledge=knowledge, policy=policy), summary, drafts,
                        knowledge=knowledge, data_gaps=data_gaps)
