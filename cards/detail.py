"""Decision -> the card's GitHub-flavoured Markdown `detail` (no HTML): findings, dated facts with
resource references, options, the rules with their citations, and what the record lacked."""
from __future__ import annotations

import re
from typing import Sequence

from cards.decision import Decision, Fact
from cards.knowledge_base import Citation, Knowledge, Rule
from fhir_mappings.model import DraftOrder, PatientSummary, RecordIssue

MAX_ISSUES = 25
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#])")


def text(value: str) -> str:
    """Escape Markdown/HTML-significant characters in record-derived text; one line."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


def _cite(c: Citation) -> str:
    return f"[{text(c.short_label)}]({c.url})" if c.url else text(c.short_label)


def _sources(refs: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(refs[:limit]) + (f" (+{len(refs) - limit} more)" if len(refs) > limit else "")
    return text(shown) if refs else "—"


def _facts_table(facts: Sequence[Fact]) -> list[str]:
    if not facts:
        return []
    rows = ["| Fact | Value | Date | Source |", "|---|---|---|---|"]
    for f in facts:
        rows.append(f"| {text(f.label)} | {text(f.value)} | {f.date.isoformat() if f.date else '—'} | "
                    f"{_sources(f.sources)} |")
    return rows


def _regimen_rows(d: Decision) -> list[str]:
    if not d.proposals or all(pr.regimen is None for pr in d.proposals):
        return []
    rows = ["| Option | Regimen | Doses (check the label) | Evidence |", "|---|---|---|---|"]
    for pr in d.proposals:
        if pr.regimen is None:
            continue
        r = pr.regimen
        tag = "**recommended**" if pr.recommended else ("alternative (later evidence)" if r.status == "later-evidence"
                                                        else "alternative")
        doses = "; ".join(text(c.dose) for c in r.components)
        cites = ", ".join(_cite(c) for c in r.citations)
        rows.append(f"| {tag} | {text(r.name)} | {doses} | {text(r.evidence)} ({cites}) |")
    return rows


def _rule(rule: Rule) -> str:
    cites = "; ".join(_cite(c) for c in rule.citations)
    return (f"- **{rule.id} — {text(rule.title)}**: “{text(rule.statement)}” Service: {text(rule.recommendation)} "
            f"Strength: {text(rule.strength)}. Sources: {cites}")


def _issues(summary: PatientSummary, gaps: Sequence[RecordIssue], drafts: Sequence[DraftOrder]) -> list[str]:
    items = [("could not be read", i) for i in summary.skipped]
    items += [("not mapped", i) for i in summary.unmapped]
    items += [("not available", i) for i in gaps]
    lines = [f"- {text(i.source)} ({kind}): {text(i.problem)}" for kind, i in items]
    lines += [f"- {text(d.resource_id)} (draft not mapped): {text(d.display or 'unknown medication')}"
              for d in drafts if d.unmapped]
    lines = list(dict.fromkeys(lines))
    if len(lines) > MAX_ISSUES:
        lines = lines[:MAX_ISSUES] + [f"- … and {len(lines) - MAX_ISSUES} more"]
    return lines


def build_detail(d: Decision, knowledge: Knowledge, summary: PatientSummary, gaps: Sequence[RecordIssue],
                 drafts: Sequence[DraftOrder]) -> str:
    out: list[str] = []
    if d.findings:
        out += ["**Why this card**", ""] + [f"- {text(f)}" for f in d.findings] + [""]
    options = _regimen_rows(d)
    if options and d.topic == "her2-next-regimen":
        out += ["**Options**", ""] + options + [""]
    if d.excluded:
        out += ["**Not offered**", ""] + [f"- {text(e.regimen.name)}: {text(e.reason)}" for e in d.excluded] + [""]
    if d.named_only:
        out += ["**Also listed (no order proposed)**", ""]
        out += [f"- {text(r.name)}: {text(r.evidence)} ({text(r.not_orderable_reason or '')})" for r in d.named_only]
        out += [""]
    if d.notes:
        out += ["**Notes**", ""] + [f"- {text(n)}" for n in d.notes] + [""]
    if d.facts:
        out += [f"**Basis in the record** (as of {summary.as_of.isoformat()})", ""] + _facts_table(d.facts) + [""]
    if d.rules:
        out += ["**Rules applied**", ""] + [_rule(r) for r in d.rules] + [""]
    issues = _issues(summary, gaps, drafts)
    out += ["**Missing from or unreadable in the record**", ""]
    out += issues if issues else ["- nothing reported by the record reader"]
    out += ["", f"*Knowledge base {text(knowledge.version)}. {text(knowledge.disclaimer)}*"]
    return "\n".join(out)
