"""Decision -> CDS Hooks 2.0 card dict (docs/card-contract.md), built as data, never by text templating.

Draft MedicationRequests of `create` actions depend on the knowledge only (a call adds its patient's
`subject.reference`): `draft_order_problems` checks every knowledge regimen's drafts with `fhir.resources.R4B`
(`her2-cds check-config` and the tests), so a client never receives a resource it cannot post. No empty value
is ever emitted.
"""
from __future__ import annotations

import os
import re
import uuid
from functools import lru_cache
from typing import Any, Callable, Iterator, NamedTuple, Sequence

from cards.decision import Decision, Proposal
from cards.detail import RecordText, build_detail, card_citation, card_links, fired_rules
from cards.knowledge_base import Knowledge, RegimenEntry
from cards.topics import RXNORM_SYSTEM, TOPIC_SYSTEM, TOPICS
from fhir_mappings.model import DraftOrder, PatientSummary, RecordIssue


# A FHIR relative reference as CDS Hooks `resourceId` (what clients and the probe accept).
RESOURCE_ID = re.compile(r"^MedicationRequest/[A-Za-z0-9\-.]{1,64}$")


class _ComponentText(NamedTuple):
    """What a `create` action says of one knowledge component (regimen drug and dose)."""

    description: str
    code: str          # RxNorm ingredient
    name: str
    label: str
    dose: str


@lru_cache(maxsize=None)      # knowledge regimens only (no patient data): worked out once per process
def _component_texts(regimen: RegimenEntry) -> tuple[_ComponentText, ...]:
    """The regimen's components as their `create` actions say them."""
    return tuple(_ComponentText(f"Draft {c.drug.label}: {c.dose}", c.drug.rxnorm, c.drug.name, c.drug.label, c.dose)
                 for c in regimen.components)


def draft_order_problems(knowledge: Knowledge) -> list[str]:
    """What `fhir.resources.R4B` finds wrong in the draft MedicationRequests of the knowledge's regimens ([] = none).

    Why not in the worker: a draft differs between calls only in `subject.reference` (a FHIR string), so one
    check per component covers every patient, and the packaged knowledge is checked by the tests before it
    ships. In a worker, the pydantic models cost each worker about 12 MB of memory (issue 15) for a check that
    could only ever repeat the tests' answer; `her2-cds check-config --knowledge FILE` checks a new file."""
    from fhir.resources.R4B.medicationrequest import MedicationRequest   # here only: see above
    from pydantic import ValidationError

    problems = []
    for regimen in knowledge.regimens.values():
        for t in _component_texts(regimen):
            try:
                MedicationRequest.model_validate(_draft(t, "validation-placeholder"))
            except ValidationError as error:
                where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
                problems.append(f"regimen {regimen.id}, {t.name or t.code or '(unnamed drug)'}: {where}")
    return problems


def _draft(t: _ComponentText, patient_id: str) -> dict[str, Any]:
    """One draft MedicationRequest (status draft, intent proposal) for one ingredient."""
    return {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "proposal",
        "subject": {"reference": f"Patient/{patient_id}"},
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM_SYSTEM, "code": t.code, "display": t.name}],
            "text": t.label,
        },
        "dosageInstruction": [{"text": t.dose}],
    }


def _actions(p: Proposal, patient_id: str) -> list[dict[str, Any]]:
    # A replacement's `create` actions come first: a client that applies only some actions (or stops at
    # the first failure) then never deletes the drafts without ordering the replacement (issue 10).
    actions: list[dict[str, Any]] = []
    if p.regimen is not None:
        actions += [{"type": "create", "description": t.description, "resource": _draft(t, patient_id)}
                    for t in _component_texts(p.regimen)]
    actions += [
        {"type": "delete", "description": f"Remove the draft order {d.display or d.resource_id}".strip(),
         "resourceId": d.resource_id}
        for d in p.remove if RESOURCE_ID.match(d.resource_id or "")]   # a draft without a usable id cannot be deleted
    return actions


def new_uuid() -> str:
    """A random (version 4) UUID as text."""
    return str(uuid.uuid4())


def uuid_source(count: int) -> Callable[[], str]:
    """`count` random (version 4) UUIDs read from the OS's random source at once, then `new_uuid` ones.

    uuid4() reads 16 bytes per UUID: one getrandom syscall each, and each releases the GIL, a hand-over
    to another thread of a busy worker. A card set needs a handful; one read serves them all. The text is
    written straight from the bytes (version and variant bits set as `uuid.UUID(bytes=..., version=4)`
    sets them), without a UUID object per card."""
    data = bytearray(os.urandom(16 * count))
    for i in range(0, len(data), 16):
        data[i + 6] = data[i + 6] & 0x0F | 0x40      # version 4
        data[i + 8] = data[i + 8] & 0x3F | 0x80      # RFC 4122 variant
    h = data.hex()
    batch: Iterator[str] = (f"{h[i:i + 8]}-{h[i + 8:i + 12]}-{h[i + 12:i + 16]}-{h[i + 16:i + 20]}-{h[i + 20:i + 32]}"
                            for i in range(0, len(h), 32))
    return lambda: next(batch, None) or new_uuid()


def _suggestion(p: Proposal, patient_id: str, recommended_allowed: bool,
                make_uuid: Callable[[], str]) -> dict[str, Any] | None:
    actions = _actions(p, patient_id)
    if not actions:
        return None
    s: dict[str, Any] = {"label": p.label[:200], "uuid": make_uuid(), "actions": actions}
    if recommended_allowed:
        s["isRecommended"] = p.recommended
    return s


APP_LINK_LABEL = "Therapy timeline and reasoning"


def render_card(d: Decision, knowledge: Knowledge, summary: PatientSummary, *, gaps: Sequence[RecordIssue] = (),
                drafts: Sequence[DraftOrder] = (), app_launch_url: str | None = None,
                make_uuid: Callable[[], str] = new_uuid, record: RecordText | None = None) -> dict[str, Any]:
    """One card. `record`: the call's `RecordText` (what every card shows alike from the record), made here
    when not given."""
    display = TOPICS[d.topic]
    citation = card_citation(d)
    rules = fired_rules(d)
    card: dict[str, Any] = {
        "uuid": make_uuid(),
        "summary": d.summary if len(d.summary) <= 139 else d.summary[:138] + "…",
        "indicator": d.indicator,
        "detail": build_detail(d, knowledge, summary, gaps, drafts, record=record, rules=rules),
        "source": {
            "label": f"her2-cds: {citation.short_label}",
            "url": citation.url,
            "topic": {"system": TOPIC_SYSTEM, "code": d.topic, "display": display},
        },
        # References a clinician opens go here, never as links inside `detail` (issue 10): type absolute
        # links open in a new tab, while a link in detail navigated the CDS Hooks sandbox away from the chart.
        "links": card_links(d, rules),
    }
    is_regimen = d.topic == "her2-next-regimen"
    suggestions = [s for s in (_suggestion(p, summary.patient_id, is_regimen, make_uuid) for p in d.proposals) if s]
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "at-most-one"
    if d.about_drafts and d.indicator in ("warning", "critical"):
        system = knowledge.override_reason_system
        card["overrideReasons"] = [{"system": system, "code": r.code, "display": r.display}
                                   for r in knowledge.override_reasons_for(d.topic)]
    if app_launch_url:   # the explanation view, launched by the EHR as a SMART app (CDS Hooks 2.0 Link type smart)
        card["links"] = card.get("links", []) + [{"label": APP_LINK_LABEL, "url": app_launch_url, "type": "smart"}]
    return card
