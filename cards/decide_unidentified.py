"""Drafts whose drug could not be identified but whose class could (issue 10: never a silent empty answer).

Why: to a clinician `cards: []` means "nothing to flag", so a draft we cannot read must not silently
miss the card its drug would get. Such a draft carries the known drugs of its probable class
(`DraftOrder.probable_class`: the terminology table's drugs of the ATC group its code or name stem gave), and
the checks are run as if it were each of them in turn. A card that any candidate would get is issued:
- its first line says the drug could not be identified, names the draft and asks to confirm it, and
  says which candidates the card applies to (every one of them, or which);
- its indicator is the lowest that a candidate giving the card gives: the card is at least that serious
  for each drug that gets it;
- it proposes no action (the service does not know what the draft is);
- a card the record gets anyway (without the draft) is kept as it is, unless a candidate would make it
  more serious.
A draft known only by a broad class (antineoplastic agents, endocrine therapy) is checked this way for the
harms drug labels warn about only (`SAFETY_TOPICS`), not for guideline cards that would each be a guess.
A draft whose class cannot be recognised at all has no candidates: it is named on every card of the
answer and counted in the call's log line and metrics, and gets no card of its own (no contract topic
fits "an unidentified drug", and most such drafts are supportive medications).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

from cards.decision import Decision
from cards.topics import INDICATOR_RANK, SAFETY_TOPICS
from fhir_mappings.model import ClassHint, DraftOrder, Drug

Checks = Callable[[Sequence[DraftOrder]], list[Decision]]

MAX_NAMED = 6          # candidate names listed on a card before "and N more"
MAX_DISPLAY = 60
MAX_SUMMARY = 139


def with_unidentified_drafts(checks: Checks, drafts: Sequence[DraftOrder]) -> list[Decision]:
    """`checks(drafts)`, plus the cards an unidentified draft of a known class would get as any of its
    candidates (one draft varied at a time; the others stay as they are). One decision per topic."""
    by_topic = {d.topic: d for d in checks(drafts)}
    for i, draft in enumerate(drafts):
        hint = draft.probable_class
        if not (draft.unmapped and hint and hint.candidates):
            continue
        hits: dict[str, list[tuple[Drug, Decision]]] = {}
        for drug in hint.candidates:
            world = [*drafts[:i], replace(draft, drugs=(drug,), unmapped=False), *drafts[i + 1:]]
            for decision in checks(world):
                hits.setdefault(decision.topic, []).append((drug, decision))
        if hint.broad:      # "chemotherapy": the label harms only, not a guideline card per guess
            hits = {topic: found for topic, found in hits.items() if topic in SAFETY_TOPICS}
        for topic, found in hits.items():
            card = _unconfirmed(draft, hint, found)
            kept = by_topic.get(topic)
            if kept is None or INDICATOR_RANK[card.indicator] > INDICATOR_RANK[kept.indicator]:
                by_topic[topic] = card
    return list(by_topic.values())


def _unconfirmed(draft: DraftOrder, hint: ClassHint, found: list[tuple[Drug, Decision]]) -> Decision:
    """The card as the candidate giving the lowest indicator would get it, saying the drug is unconfirmed."""
    lowest = min(INDICATOR_RANK[d.indicator] for _, d in found)
    drug, decision = next((c, d) for c, d in found if INDICATOR_RANK[d.indicator] == lowest)
    names = [c.name for c, _ in found]
    others = [c.name for c in hint.candidates if c.name not in names]
    if not others:
        applies = f"whichever of them it is ({_listed(names)})"
    elif len(names) <= len(others):
        applies = f"only if it is {_listed(names)}"
    else:
        applies = f"unless it is {_listed(others)}"
    display = draft.display if len(draft.display) <= MAX_DISPLAY else draft.display[:MAX_DISPLAY - 1] + "…"
    why = (f"The drafted medication '{display}' ({draft.resource_id}) could not be identified; its code group or "
           f"name says it is probably {hint.what}. Checked as each known one: this card applies "
           f"{applies}; shown as for {drug.name}. Confirm the drug.")
    summary = f"Drafted drug not identified (probably {hint.what}), confirm the drug: {decision.summary}"
    return replace(decision, summary=summary if len(summary) <= MAX_SUMMARY else summary[:MAX_SUMMARY - 1] + "…",
                   findings=(why, *decision.findings), proposals=(), about_drafts=True)


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMED])
    return shown + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")
