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
import sys
from functools import lru_cache
from operator import attrgetter
from typing import Any, Iterator, Sequence

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
    return _MD_SPECIAL.sub(_escaped, _one_line(str(value)))


def _one_line(value: str) -> str:
    """`" ".join(value.split())`, without splitting and joining text already so, most of it: printable text
    holds no whitespace but the space (tabs, newlines and other Unicode spaces are not printable), so only
    doubled, leading or trailing spaces remain to look for (issue 15)."""
    if value.isprintable() and "  " not in value and value[:1] != " " and value[-1:] != " ":
        return value
    return " ".join(value.split())


def _clip(value: str, limit: int) -> str:
    value = _one_line(str(value))
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def _cell(value: str, limit: int) -> str:
    """`text(_clip(value, limit))` with one whitespace pass: a clipped one-line value stays on one line."""
    return _MD_SPECIAL.sub(_escaped, _clip(value, limit))


def _cells(values: list[str], limit: int) -> list[str]:
    """`[_cell(v, limit) for v in values]`. When every value is already one line (`_one_line`'s test, made on
    the values joined by newlines), as nearly all are, the few over the limit are clipped and all are escaped
    in one pass over the joined text, then split again (no value holds a newline: it would not be printable;
    neither clipping nor escaping adds one). Why: three Python calls per value, some 600 bytecodes and 20k
    instructions per regimen card."""
    if not values:
        return []
    joined = "\n".join(values)
    if not (all(map(str.isprintable, values)) and "  " not in joined and " \n" not in joined
            and "\n " not in joined and joined[:1] != " " and joined[-1:] != " "):
        return [_cell(v, limit) for v in values]
    if max(map(len, values)) > limit:
        joined = "\n".join([v if len(v) <= limit else _clip(v, limit) for v in values])
    return _MD_SPECIAL.sub(_escaped, joined).split("\n")


# A card's notes are mostly knowledge text (rule statements, the investigational regimens), the same on every call:
# escaped once per process. A pure function of the string (a note worded from the record is its own key). Why: the
# escaping pattern scanned a few thousand characters of notes per regimen card, some 50k instructions (1 % of a call).
_note_text = lru_cache(maxsize=256)(text)

# A fact's label is the code's own wording (fact_rows, decide_safety), never record text: escaped once per process.
_label_text = lru_cache(maxsize=256)(text)


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


_TABLE_HEAD = ("| Fact | Value | Date |", "|---|---|---|")


def _more_row(dropped: int) -> str:
    return f"| … | {dropped} more fact(s) in the explanation view | — |"


_MORE_ROW_CHARS = len(_more_row(0)) - 1     # `_more_row(n)` is this long plus the digits of n


class RecordText:
    """What every card of one call renders alike from the record, rendered once for the call: the facts
    table's heading (the as-of date), the record's gaps, the medications read by name, and each fact's table
    line (a fact shown on several cards is escaped once). Made by `render_cards` for one call and dropped
    with it: it holds patient data."""

    def __init__(self, summary: PatientSummary, gaps: Sequence[RecordIssue], drafts: Sequence[DraftOrder]) -> None:
        self.basis_heading = f"**Basis in the record** (as of {summary.as_of.isoformat()})"
        self.issues = _issues(summary, gaps, drafts)
        by_name = dict.fromkeys(f"- {source}: {problem}"
                                for source, problem in _issue_texts([*summary.notes, *(g for g in gaps if g.info)]))
        self.by_name = list(by_name)[:MAX_ISSUES]
        self._lines: dict[FactRow, str] = {}

    def fact_lines(self, facts: Sequence[FactRow]) -> tuple[list[FactRow], list[str]]:
        """(the facts, each once, in order; their table lines)."""
        unique = list(dict.fromkeys(facts))     # equal facts once (a row is a tuple: one C-level hash each)
        lines = self._lines
        new = [f for f in unique if f not in lines]
        for f, cell in zip(new, _cells([f.value for f in new], MAX_VALUE)):
            lines[f] = f"| {_label_text(f.label)} | {cell} | {f.date.isoformat() if f.date else '—'} |"
        return unique, list(map(lines.__getitem__, unique))


class _FactsTable:
    """A card's facts table: its lines (each fact once), and the lowest-priority ones left out to fit."""

    def __init__(self, facts: Sequence[FactRow], record: RecordText) -> None:
        self.shown, self.lines = record.fact_lines(facts)
        self._drop_order: list[int] | None = None

    @property
    def drop_order(self) -> list[int]:
        """Made only for a table that does not fit whole."""
        if self._drop_order is None:
            self._drop_order = _drop_order(self.shown)
        return self._drop_order

    def rows(self, keep: int) -> list[str]:
        if not self.lines:
            return []
        dropped = len(self.lines) - keep
        if dropped <= 0:
            return [*_TABLE_HEAD, *self.lines]
        kept = sorted(self.drop_order[dropped:])      # the indices kept, in table order
        return [*_TABLE_HEAD, *map(self.lines.__getitem__, kept), _more_row(dropped)]

    def fitting(self, room: int, lines_outside: int) -> int:
        """The most facts kept whose table (heading and blank lines included) fits in `room` characters when
        joined by newlines with `lines_outside` other lines; 0 when none does (the caller then cuts the text)."""
        if not self.lines:
            return 0
        chars = sum(map(len, self.lines)) + len(_TABLE_HEAD[0]) + len(_TABLE_HEAD[1])
        n = lines_outside + len(self.lines) + 2
        if chars + n - 1 <= room:
            return len(self.lines)
        order = self.drop_order
        for dropped in range(1, len(self.lines) + 1):
            chars -= len(self.lines[order[dropped - 1]])
            more = _MORE_ROW_CHARS + len(str(dropped))
            if chars + more + (n - dropped + 1) - 1 <= room:
                return len(self.lines) - dropped
        return 0


def _drop_order(facts: Sequence[FactRow]) -> list[int]:
    """Indices of facts in the order they are left out: low-priority labels first, then from the end. A stable
    sort of the indices from the last, by priority: no Python code per fact (why: some 350 bytecodes per
    shortened table)."""
    priorities = list(map(_priority, map(_label, facts)))
    return sorted(range(len(facts) - 1, -1, -1), key=priorities.__getitem__)


_label = attrgetter("label")


@lru_cache(maxsize=256)       # labels are the code's own wording (no record text)
def _priority(label: str) -> int:
    """The index of the `_LOW_PRIORITY` prefix the label starts with (the first dropped: 0), else the length
    of that list."""
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


def _issue_texts(issues: Sequence[RecordIssue]) -> Iterator[tuple[str, str]]:
    """(`text(source)`, `_cell(problem, 100)`) of each issue, each column escaped in one pass (`_cells`; a
    limit no source reaches leaves it unclipped). Why: a long chart has a hundred issues (unmapped supportive
    medications), two escaping calls each, 13k bytecodes on a 1,000-resource record, for six lines shown."""
    if not issues:      # most records: nothing to escape
        return iter(())
    return zip(_cells([i.source for i in issues], sys.maxsize), _cells([i.problem for i in issues], 100))


def _issues(summary: PatientSummary, gaps: Sequence[RecordIssue], drafts: Sequence[DraftOrder]) -> list[str]:
    items = [("could not be read", i) for i in summary.skipped]
    items += [("not mapped", i) for i in summary.unmapped]
    items += [("not available", i) for i in gaps if not i.info]
    lines = [f"- {source} ({kind}): {problem}"
             for (kind, _), (source, problem) in zip(items, _issue_texts([i for _, i in items]))] if items else []
    named = {i.source for _, i in items}     # the mapping's own issue for a draft says more: no second line
    lines += [f"- {text(d.resource_id)} (draft not mapped): {text(d.display or 'unknown medication')}"
              for d in drafts if d.unmapped and d.resource_id not in named]
    lines = list(dict.fromkeys(lines))
    if len(lines) > MAX_ISSUES:
        lines = lines[:MAX_ISSUES] + [f"- … and {len(lines) - MAX_ISSUES} more"]
    return lines


def footer(d: Decision, knowledge: Knowledge, rules: Sequence[Rule] | None = None) -> str:
    """One line: which rules fired (`rules`: `fired_rules(d)`, when the caller has them), which knowledge
    version, and the disclaimer."""
    ids = ", ".join(r.id for r in (fired_rules(d) if rules is None else rules))
    return _footer(ids, knowledge.version, knowledge.disclaimer)


@lru_cache(maxsize=256)       # knowledge text only (rule ids, version, disclaimer): rendered once per process
def _footer(ids: str, version: str, disclaimer: str) -> str:
    return f"*Rule {text(ids)} · knowledge {text(version)} · {text(disclaimer)}*"


def detail_budget(d: Decision) -> int:
    return REGIMEN_DETAIL_BUDGET if d.topic == "her2-next-regimen" else DETAIL_BUDGET


def build_detail(d: Decision, knowledge: Knowledge, summary: PatientSummary, gaps: Sequence[RecordIssue],
                 drafts: Sequence[DraftOrder], *, record: RecordText | None = None,
                 rules: Sequence[Rule] | None = None) -> str:
    """The detail within its length budget: facts are left out (low-priority ones first) until it fits;
    a text still too long is cut with a pointer to the explanation view, keeping the footer line.

    `record`: the call's `RecordText` (made here when not given); `rules`: `fired_rules(d)`, when the caller
    has them. The facts kept are counted from the lines' lengths; the text is joined once."""
    budget = detail_budget(d)
    record = RecordText(summary, gaps, drafts) if record is None else record
    rules = fired_rules(d) if rules is None else rules
    head, tail_sections = _body_parts(d, record, rules)
    end = footer(d, knowledge, rules)
    if d.facts:
        table = _FactsTable(d.facts, record)
        outside = [*head, record.basis_heading, "", "", *tail_sections, end]
        keep = table.fitting(budget - sum(map(len, outside)), len(outside))
        body = [*head, record.basis_heading, "", *table.rows(keep), "", *tail_sections]
    else:
        body = head + tail_sections
    detail = "\n".join([*body, end])
    if len(detail) <= budget:
        return detail
    tail = ["", "*… shortened: the full reasoning is in the explanation view.*", end]
    room = budget - len("\n".join(tail)) - 1
    return "\n".join(body)[:max(0, room)].rstrip() + "\n" + "\n".join(tail)


@lru_cache(maxsize=1024)      # knowledge text only (no patient data): rendered once per process
def _named_line(r: RegimenEntry) -> str:
    return f"- {text(r.name)}: {text(r.not_orderable_reason or r.evidence)}"


def _body_parts(d: Decision, record: RecordText, rules: Sequence[Rule]) -> tuple[list[str], list[str]]:
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
        out += [_named_line(r) for r in d.named_only] + [""]
    if d.notes:
        out += ["**Notes**", ""] + [f"- {_note_text(n)}" for n in d.notes] + [""]
    head, out = out, []
    if rules:
        out += ["**Rules applied**", ""] + [_rule_line(r) for r in rules] + [""]
    if record.issues:
        out += ["**Missing from or unreadable in the record**", ""] + record.issues + [""]
    if record.by_name:     # information, not a gap: the drug was read, from its name rather than a known code
        out += ["**Read from names, not codes**", ""] + record.by_name + [""]
    return head, out


def card_citation(d: Decision) -> Citation:
    """The card's `source` citation: the decision's own source, else the first primary source of the
    first fired rule (the knowledge loader guarantees every rule has one)."""
    return d.source or d.rules[0].primary_citation


def card_links(d: Decision, rules: Sequence[Rule] | None = None) -> list[dict[str, Any]]:
    """CDS Hooks `links` (type absolute: clients open them in a new tab): the card's citation first, then
    the primary sources of the fired rules (`rules`: `fired_rules(d)`, when the caller has them) and of the
    recommended regimen, one link per URL."""
    recommended = tuple(p.regimen for p in d.proposals if p.recommended and p.regimen is not None)
    links = _links(card_citation(d), tuple(fired_rules(d) if rules is None else rules), recommended)
    return [{"label": label, "url": url, "type": "absolute"} for label, url in links]


@lru_cache(maxsize=1024)      # knowledge entries only (citations, rules, regimens): worked out once per process
def _links(citation: Citation, rules: tuple[Rule, ...],
           recommended: tuple[RegimenEntry, ...]) -> tuple[tuple[str, str], ...]:
    citations: list[Citation] = [citation]
    for rule in rules:
        citations += _cited(rule.citations)
    for regimen in recommended:
        citations += _cited(regimen.citations)
    links: dict[str, str] = {}
    for c in citations:
        if c.url and c.url not in links:
            links[c.url] = c.short_label
    return tuple((label, url) for url, label in links.items())[:MAX_LINKS]
