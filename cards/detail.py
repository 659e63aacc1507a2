"""Decision -> the card's GitHub-flavoured Markdown `detail` (no HTML), written for a busy oncologist.

The card keeps the facts, the decision and what it rests on; the complete reasoning belongs in the
explanation view. So: clinician wording only (no internal rule ids in the text), no links in the text
(references a clinician opens are the card's `links`, see `card_links`: a link in `detail` navigates
some CDS clients away from the chart), only the rules that fired, and one footer line naming the rule
ids and the knowledge version. Length budget (issue 16): the next-regimen card at most
`REGIMEN_DETAIL_BUDGET` characters, every other card at most `DETAIL_BUDGET`.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Sequence

from cards.decision import Decision, FactRow
from cards.knowledge_base import Citation, Knowledge, RegimenEntry, Rule
from fhir_mappings.model import DraftOrder, PatientSummary, RecordIssue

REGIMEN_DETAIL_BUDGET = 3000
DETAIL_BUDGET = 1500
MAX_ISSUES = 6
MAX_VALUE = 80
MAX_LINKS = 6
_MD_SPECIAL = re.compile(r"[\\`*_{}\[\]<>|#]")


def _escaped(match: re.Match[str]) -> str:
    return "\\" + match.group()


def text(value: str) -> str:
    """Escape Markdown/HTML-significant characters in record-derived text; one line.
    (A function as the replacement: a template with a group reference was set up again on every call,
    which made this a few percent of a hook call's CPU, issue 15.)"""
    return _MD_SPECIAL.sub(_escaped, " ".join(str(value).split()))


def _clip(value: str, limit: int) -> str:
    value = " ".join(str(value).split())
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def _cited(citations: Sequence[Citation]) -> list[Citation]:
    """The primary sources among these citations (provenance entries have no URL and are never shown)."""
    return [c for c in citations if c.url]


def _names(citations: Sequence[Citation], limit: int = 2) -> str:
    return "; ".join(text(c.short_label) for c in _cited(citations)[:limit])


def fired_rules(d: Decision) -> tuple[Rule, ...]:
    """The decision's rules that fired. On the next-regimen card the decision carries its line plan's
    rules; a plan rule that names the regimens it puts on a card (`offers`) counts only when one of them
    is on this card (or it leads). Safety decisions attach only rules that fired."""
    if d.topic != "her2-next-regimen":
        return tuple(dict.fromkeys(d.rules))
    on_card = {p.regimen.id for p in d.proposals if p.regimen is not None} | {r.id for r in d.named_only}
    fired = [r for i, r in enumerate(d.rules) if i == 0 or not r.offers or on_card & set(r.offers)]
    return tuple(dict.fromkeys(fired))


# Facts dropped first when a card would exceed its length budget (the explanation view keeps them all):
# per-agent rows repeat what the metastatic-line rows say; the HR summary repeats ER and PR. The metastatic
# sites (one row) are part of the basis the contract asks for and are not in this list.
_LOW_PRIORITY = ("Prior HER2-directed agent", "HR status (ER or PR positive)", "Breast cancer")


class _FactsTable:
    """The facts table's rows rendered once; `rows(keep)` leaves out the lowest-priority ones."""

    def __init__(self, facts: Sequence[FactRow]) -> None:
        shown = list(dict.fromkeys(facts))
        self.lines = [f"| {text(f.label)} | {text(_clip(f.value, MAX_VALUE))} | "
                      f"{f.date.isoformat() if f.date else '—'} |" for f in shown]
        self.drop_order = _drop_order(shown)

    def rows(self, keep: int) -> list[str]:
        if not self.lines:
            return []
        drop = set(self.drop_order[: max(0, len(self.lines) - keep)])
        rows = ["| Fact | Value | Date |", "|---|---|---|"]
        rows += [line for i, line in enumerate(self.lines) if i not in drop]
        if drop:
            rows.append(f"| … | {len(drop)} more fact(s) in the explanation view | — |")
        return rows


def _drop_order(facts: Sequence[FactRow]) -> list[int]:
    """Indices of facts in the order they are left out: low-priority labels first, then from the end."""
    return sorted(range(len(facts)), key=lambda i: (_priority(facts[i].label), -i))


def _priority(label: str) -> int:
    """The index of the `_LOW_PRIORITY` prefix the label starts with (the first dropped: 0), else the length
    of that list. Most labels have none: one startswith over the tuple answers them."""
    if label.startswith(_LOW_PRIORITY):
        for n, prefix in enumerate(_LOW_PRIORITY):
            if label.startswith(prefix):
                return n
    return len(_LOW_PRIORITY)


@lru_cache(maxsize=1024)      # knowledge text only (no patient data): rendered once per process
def _regimen_line(r: RegimenEntry, sources: int = 2) -> str:
    cites = _names(r.citations, sources)
    later = " (later evidence)" if r.status == "later-evidence" else ""
    return f"{text(r.name)}{later}: {text(r.evidence)}" + (f" ({cites})" if cites else "")


def _options(d: Decision) -> list[str]:
    regimens = [p for p in d.proposals if p.regimen is not None]
    if not regimens:
        return []
    out: list[str] = []
    recommended = [p.regimen for p in regimens if p.recommended]
    for r in recommended:
        out += [f"**Recommended:** {_regimen_line(r)}", ""]
    alternatives = [p.regimen for p in regimens if not p.recommended]
    if alternatives:
        out += ["**Alternatives**", ""] + [f"- {_regimen_line(r, 1)}" for r in alternatives] + [""]
    return out


@lru_cache(maxsize=1024)      # knowledge text only (no patient data): rendered once per process
def _rule_line(rule: Rule) -> str:
    cites = _names(rule.citations)
    return f"- {text(rule.title)}" + (f" ({cites})" if cites else "")


def _issues(summary: PatientSummary, gaps: Sequence[RecordIssue], drafts: Sequence[DraftOrder]) -> list[str]:
    items = [("could not be read", i) for i in summary.skipped]
    items += [("not mapped", i) for i in summary.unmapped]
    items += [("not available", i) for i in gaps if not i.info]
    lines = [f"- {text(i.source)} ({kind}): {text(_clip(i.problem, 100))}" for kind, i in items]
    named = {i.source for _, i in items}     # the mapping's own issue for a draft says more: no second line
    lines += [f"- {text(d.resource_id)} (draft not mapped): {text(d.display or 'unknown medication')}"
              for d in drafts if d.unmapped and d.resource_id not in named]
    lines = list(dict.fromkeys(lines))
    if len(lines) > MAX_ISSUES:
        lines = lines[:MAX_ISSUES] + [f"- … and {len(lines) - MAX_ISSUES} more"]
    return lines


def footer(d: Decision, knowledge: Knowledge) -> str:
    """One line: which rules fired, which knowledge version, and the disclaimer."""
    ids = ", ".join(r.id for r in fired_rules(d))
    return f"*Rule {text(ids)} · knowledge {text(knowledge.version)} · {text(knowledge.disclaimer)}*"


def detail_budget(d: Decision) -> int:
    return REGIMEN_DETAIL_BUDGET if d.topic == "her2-next-regimen" else DETAIL_BUDGET


def build_detail(d: Decision, knowledge: Knowledge, summary: PatientSummary, gaps: Sequence[RecordIssue],
                 drafts: Sequence[DraftOrder]) -> str:
    """The detail within its length budget: facts are left out (low-priority ones first) until it fits;
    a text still too long is cut with a pointer to the explanation view, keeping the footer line."""
    budget = detail_budget(d)
    head, tail_sections = _body_parts(d, summary, gaps, drafts)    # built once: only the facts table varies
    end = footer(d, knowledge)
    table = _FactsTable(d.facts)
    for keep in range(len(table.lines), -1, -1):
        body = head + _facts_section(d, summary, table, keep) + tail_sections
        if _joined_length(body) + 1 + len(end) <= budget:     # measured before joining: a long record tries several
            return "\n".join(body + [end])
    tail = ["", "*… shortened: the full reasoning is in the explanation view.*", end]
    room = budget - len("\n".join(tail)) - 1
    return "\n".join(body)[:max(0, room)].rstrip() + "\n" + "\n".join(tail)


def _joined_length(lines: Sequence[str]) -> int:
    """len("\\n".join(lines)) without joining them."""
    return sum(map(len, lines)) + len(lines) - 1


def _facts_section(d: Decision, summary: PatientSummary, table: _FactsTable, keep_facts: int) -> list[str]:
    if not d.facts:
        return []
    return [f"**Basis in the record** (as of {summary.as_of.isoformat()})", ""] + table.rows(keep_facts) + [""]


def _body_parts(d: Decision, summary: PatientSummary, gaps: Sequence[RecordIssue],
                drafts: Sequence[DraftOrder]) -> tuple[list[str], list[str]]:
    """The detail's sections before and after the facts table (which alone shrinks to fit the budget)."""
    is_regimen = d.topic == "her2-next-regimen"
    out: list[str] = []
    if d.findings:
        out += ["**Why this card**", ""] + [f"- {text(f)}" for f in d.findings] + [""]
    if is_regimen:
        out += _options(d)
    if d.excluded:
        out += ["**Not offered**", ""] + [f"- {text(e.regimen.name)}: {text(e.reason)}" for e in d.excluded] + [""]
    if d.named_only:
        out += ["**Also listed (no order proposed)**", ""]
        out += [f"- {text(r.name)}: {text(r.not_orderable_reason or r.evidence)}" for r in d.named_only] + [""]
    if d.notes:
        out += ["**Notes**", ""] + [f"- {text(n)}" for n in d.notes] + [""]
    head, out = out, []
    rules = fired_rules(d)
    if rules:
        out += ["**Rules applied**", ""] + [_rule_line(r) for r in rules] + [""]
    issues = _issues(summary, gaps, drafts)
    if issues:
        out += ["**Missing from or unreadable in the record**", ""] + issues + [""]
    by_name = list(dict.fromkeys(f"- {text(i.source)}: {text(_clip(i.problem, 100))}"
                                 for i in [*summary.notes, *(g for g in gaps if g.info)]))
    if by_name:     # information, not a gap: the drug was read, from its name rather than a known code
        out += ["**Read from names, not codes**", ""] + by_name[:MAX_ISSUES] + [""]
    return head, out


def card_citation(d: Decision) -> Citation:
    """The card's `source` citation: the decision's own source, else the first primary source of the
    first fired rule (the knowledge loader guarantees every rule has one)."""
    return d.source or d.rules[0].primary_citation


def card_links(d: Decision) -> list[dict[str, Any]]:
    """CDS Hooks `links` (type absolute: clients open them in a new tab): the card's citation first, then
    the primary sources of the fired rules and of the recommended regimen, one link per URL."""
    citations: list[Citation] = [card_citation(d)]
    for rule in fired_rules(d):
        citations += _cited(rule.citations)
    for p in d.proposals:
        if p.recommended and p.regimen is not None:
            citations += _cited(p.regimen.citations)
    links: dict[str, dict[str, Any]] = {}
    for c in citations:
        if c.url and c.url not in links:
            links[c.url] = {"label": c.short_label, "url": c.url, "type": "absolute"}
    return list(links.values())[:MAX_LINKS]
