"""The cards package's entry point: `decide`, then `render_cards` (the two steps `cds_service.pipeline.evaluate`
calls, and times separately).

Which cards a call may produce is not decided here: each CDS service declares it (`CardScope`, in
`cds_service/services.py`), and the pipeline passes the scope of the service being called.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

from cards.clinical_picture import clinical_picture
from cards.decide_regimen import choose_regimen, regimen_decision
from cards.decide_safety import safety_decisions
from cards.decision import Decision
from cards.detail import RecordText
from cards.knowledge_base import Knowledge
from cards.policy import Policy
from cards.render import render_card, uuid_source
from cards.topics import DRAFT_ORDER_TOPICS, INDICATOR_RANK, TOPIC_ORDER, TOPICS
from fhir_mappings.model import DraftOrder, PatientSummary, RecordIssue

NEXT_REGIMEN = "her2-next-regimen"


@dataclass(frozen=True)
class CardScope:
    """What one CDS service may answer with: its card topics, and whether it checks the draft orders its hook
    carries (then every warning of a draft-order topic carries `overrideReasons`). Data, declared with the
    service; pure, so `cards` never needs to know hook names."""

    topics: frozenset[str]
    draft_orders: bool

    def __post_init__(self) -> None:
        unknown = sorted(set(self.topics) - set(TOPICS))
        if unknown:
            raise ValueError(f"unknown card topic(s) {unknown}; the topics are {list(TOPICS)}")


def decide(summary: PatientSummary, drafts: Sequence[DraftOrder], scope: CardScope, *, knowledge: Knowledge,
           policy: Policy) -> list[Decision]:
    """All decisions for one hook call, in stable card order (most severe first, then topic order)."""
    p = clinical_picture(summary, knowledge, policy)
    choice = choose_regimen(p, knowledge, policy)
    recommended = choice.preferred if choice is not None else None
    # Contract v2: while the current metastatic line is ongoing with no documented progression, no
    # next-regimen card (unless the site turned on the plan-at-progression card).
    due = choice is not None and (not p.current_line_ongoing or policy.plan_at_progression_card)
    regimen_card_allowed = NEXT_REGIMEN in scope.topics
    show_regimen = due and regimen_card_allowed
    order_drafts = tuple(drafts) if scope.draft_orders else ()
    decisions = safety_decisions(p, order_drafts, knowledge, recommended, show_regimen, regimen_card_allowed)
    if show_regimen:     # worded only when shown: the order hooks need just the recommended regimen
        decisions.append(regimen_decision(p, choice, knowledge))
    if scope.draft_orders:
        decisions = [replace(d, about_drafts=True)
                     if not d.about_drafts and d.topic in DRAFT_ORDER_TOPICS and d.indicator != "info" else d
                     for d in decisions]
    decisions = [d for d in decisions if d.topic in scope.topics]
    return sorted(decisions, key=lambda d: (-INDICATOR_RANK[d.indicator], TOPIC_ORDER[d.topic]))


def render_cards(decisions: Sequence[Decision], summary: PatientSummary, drafts: Sequence[DraftOrder], *,
                 knowledge: Knowledge, data_gaps: Sequence[RecordIssue] = (),
                 app_launch_url: str | None = None) -> list[dict[str, Any]]:
    """The `cards` array for these decisions, in their order (`app_launch_url`: see `render_card`). The cards'
    and suggestions' uuids come from one read of the OS's random source (`uuid_source`)."""
    make_uuid = uuid_source(len(decisions) + sum(len(d.proposals) for d in decisions))
    record = RecordText(summary, data_gaps, drafts)     # what every card shows alike, rendered once for the call
    return [render_card(d, knowledge, summary, gaps=data_gaps, drafts=drafts, app_launch_url=app_launch_url,
                        make_uuid=make_uuid, record=record) for d in decisions]
