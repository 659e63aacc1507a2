"""The explanation page's content, as plain rows: from the same Evaluation the hook answers with.

Pure: no HTTP, no plotting. Every row keeps the FHIR references it rests on, so the tables and the
plots' hover texts can name the source resource. The decision section is read off the Decision objects
*and* the rendered cards of the same evaluation, so the page shows exactly what the card says.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from cards.decision import Decision, FactRow
from cards.knowledge_base import Rule
from cds_service.pipeline import Evaluation
from fhir_mappings.model import HER2_CLASSES, PatientSummary, ReceptorStatus, Regimen, Setting
from fhir_mappings.receptors import Evidence, observation_evidence


@dataclass(frozen=True)
class TimelineRow:
    label: str                 # "Line 2 (metastatic)", "Adjuvant", ...
    regimen: str               # "trastuzumab + pertuzumab + docetaxel"
    setting: str
    line: int | None
    start: dt.date | None
    end: dt.date | None        # the bar's end: last dose / end, or the as-of date when ongoing
    ended: str                 # progression | ongoing | completed | stopped (reason) | unknown
    her2_directed: bool
    sources: tuple[str, ...]


@dataclass(frozen=True)
class TfiMark:
    start: dt.date             # end of (neo)adjuvant HER2-directed therapy
    end: dt.date               # metastatic diagnosis
    months: float


@dataclass(frozen=True)
class LvefPoint:
    date: dt.date
    value: float
    source: str
    baseline: bool


@dataclass(frozen=True)
class ReceptorRow:
    marker: str
    status: str
    method: str
    date: dt.date | None
    detail: str
    source: str
    used: bool                 # the result the decision rests on
    discordant: bool           # this marker has both positive and negative results over time


@dataclass(frozen=True)
class SiteRow:
    site: str
    display: str
    date: dt.date | None
    brain: bool
    source: str


@dataclass(frozen=True)
class DecisionView:
    topic: str
    indicator: str
    summary: str                       # the card's summary, verbatim
    options: tuple[tuple[str, bool], ...]   # the card's suggestions: (verbatim label, recommended)
    findings: tuple[str, ...]
    excluded: tuple[tuple[str, str], ...]
    also_listed: tuple[str, ...]
    notes: tuple[str, ...]
    rules: tuple[Rule, ...]            # the knowledge's rules, as the card cites them
    source_label: str
    source_url: str | None


@dataclass(frozen=True)
class ExplanationPage:
    patient_id: str
    as_of: dt.date
    timeline: tuple[TimelineRow, ...]
    tfi: TfiMark | None
    metastatic_since: dt.date | None
    progression: tuple[tuple[dt.date, str], ...]   # documented progression (disease-status Observations)
    lvef: tuple[LvefPoint, ...]
    her2_periods: tuple[tuple[dt.date, dt.date], ...]
    receptors: tuple[ReceptorRow, ...]
    sites: tuple[SiteRow, ...]
    safety_facts: tuple[FactRow, ...]
    decisions: tuple[DecisionView, ...]
    gaps: tuple[tuple[str, str, str], ...]   # (source, kind, problem), as the cards list them


_SETTING_LABEL = {Setting.NEOADJUVANT: "Neoadjuvant", Setting.ADJUVANT: "Adjuvant", Setting.EARLY: "Early setting",
                  Setting.METASTATIC: "Metastatic", Setting.UNKNOWN: "Setting unknown"}


def _ended(r: Regimen) -> str:
    if r.progressed:
        return "progression"
    if r.ongoing:
        return "ongoing"
    reasons = sorted({e.status_reason for e in r.exposures if e.status_reason})
    if reasons:
        return "stopped (" + "; ".join(reasons) + ")"
    if r.end is not None:
        return "completed"
    return "unknown"


def timeline_rows(summary: PatientSummary) -> tuple[TimelineRow, ...]:
    rows = []
    for r in summary.therapy.regimens:
        drugs = sorted({e.drug.name for e in r.exposures})
        setting = _SETTING_LABEL.get(r.setting, str(r.setting.value))
        label = f"Line {r.line} (metastatic)" if r.line is not None else setting
        end = summary.as_of if r.ongoing else (r.end or r.start)
        rows.append(TimelineRow(label=label, regimen=" + ".join(drugs), setting=r.setting.value, line=r.line,
                                start=r.start, end=end, ended=_ended(r), her2_directed=bool(r.classes & HER2_CLASSES),
                                sources=tuple(dict.fromkeys(r.sources))))
    return tuple(rows)


def tfi_mark(summary: PatientSummary) -> TfiMark | None:
    t = summary.therapy
    if t.early_her2_end is None or summary.metastatic.first_known is None or t.tfi_months is None:
        return None
    return TfiMark(t.early_her2_end, summary.metastatic.first_known, t.tfi_months)


def lvef_points(summary: PatientSummary) -> tuple[LvefPoint, ...]:
    baseline = summary.lvef.baseline
    return tuple(LvefPoint(m.date, m.value, m.source, m is baseline) for m in summary.lvef.measurements)


def her2_periods(rows: Iterable[TimelineRow]) -> tuple[tuple[dt.date, dt.date], ...]:
    return tuple((r.start, r.end) for r in rows if r.her2_directed and r.start is not None and r.end is not None)


def receptor_rows(resources: Iterable[Mapping[str, Any]], summary: PatientSummary) -> tuple[ReceptorRow, ...]:
    """Every receptor result in the record (the mapping's own reader), oldest first, with the one each
    decision used marked and a marker's discordance (positive and negative over time) flagged."""
    evidence: list[Evidence] = []
    for res in resources:
        if res.get("resourceType") == "Observation" and res.get("id"):
            found, _serum, _issues = observation_evidence(dict(res), f"Observation/{res['id']}")
            evidence.extend(found)
    chosen = {"HER2": summary.her2, "ER": summary.er, "PR": summary.pr}
    by_marker: dict[str, set[ReceptorStatus]] = {}
    for e in evidence:
        by_marker.setdefault(e.marker, set()).add(e.status)
    rows = []
    for e in sorted(evidence, key=lambda e: (e.date or dt.date.min, e.marker)):
        used = chosen.get(e.marker)
        rows.append(ReceptorRow(
            marker=e.marker, status=e.status.value, method=e.method, date=e.date, detail=e.detail, source=e.source,
            used=used is not None and e.source in used.sources and used.date == e.date,
            discordant={ReceptorStatus.POSITIVE, ReceptorStatus.NEGATIVE} <= by_marker[e.marker]
            or bool(used is not None and used.conflict)))
    return tuple(rows)


def site_rows(summary: PatientSummary) -> tuple[SiteRow, ...]:
    sites = sorted(summary.metastatic.sites, key=lambda s: (s.onset or dt.date.min, s.site))
    return tuple(SiteRow(s.site, s.display, s.onset, s.cns, s.source) for s in sites)


def safety_facts(summary: PatientSummary) -> tuple[FactRow, ...]:
    rows = [FactRow("Interstitial lung disease / pneumonitis", f"{c.display} ({c.clinical_status or 'status not recorded'})",
                    c.onset, (c.source,)) for c in summary.ild]
    if not summary.ild:
        rows.append(FactRow("Interstitial lung disease / pneumonitis", "none recorded", None, ()))
    rows += [FactRow("Heart failure / cardiomyopathy", f"{c.display} ({c.clinical_status or 'status not recorded'})",
                     c.onset, (c.source,)) for c in summary.heart_failure]
    if not summary.heart_failure:
        rows.append(FactRow("Heart failure / cardiomyopathy", "none recorded", None, ()))
    p = summary.pregnancy
    if p is None:
        rows.append(FactRow("Pregnancy", "no current pregnancy recorded", None, ()))
    else:
        weeks = f", {p.gestational_weeks:g} weeks" if p.gestational_weeks is not None else ""
        rows.append(FactRow("Pregnancy", f"pregnant{weeks}: {p.basis}", p.since, (p.source,)))
    return tuple(rows)


def _decision_view(d: Decision, card: Mapping[str, Any]) -> DecisionView:
    source = card.get("source") or {}
    return DecisionView(
        topic=d.topic, indicator=str(card.get("indicator")), summary=str(card.get("summary")),
        options=tuple((str(s.get("label")), bool(s.get("isRecommended"))) for s in card.get("suggestions") or ()),
        findings=d.findings,
        excluded=tuple((e.regimen.name, e.reason) for e in d.excluded),
        also_listed=tuple(r.name for r in d.named_only),
        notes=d.notes,
        rules=d.rules,
        source_label=str(source.get("label", "")), source_url=source.get("url"))


def gap_rows(summary: PatientSummary, gaps: Sequence[Any]) -> tuple[tuple[str, str, str], ...]:
    """What the record lacked, with the cards' wording (cards/detail.py `_issues`)."""
    items = [(i.source, "could not be read", i.problem) for i in summary.skipped]
    items += [(i.source, "not mapped", i.problem) for i in summary.unmapped]
    items += [(i.source, "not available", i.problem) for i in gaps]
    return tuple(dict.fromkeys(items))


def build_page(evaluation: Evaluation, resources: Iterable[Mapping[str, Any]]) -> ExplanationPage:
    s = evaluation.summary
    rows = timeline_rows(s)
    return ExplanationPage(
        patient_id=s.patient_id, as_of=s.as_of, timeline=rows, tfi=tfi_mark(s),
        metastatic_since=s.metastatic.first_known, progression=tuple(s.progression_dates), lvef=lvef_points(s), her2_periods=her2_periods(rows),
        receptors=receptor_rows(resources, s), sites=site_rows(s), safety_facts=safety_facts(s),
        decisions=tuple(_decision_view(d, c) for d, c in zip(evaluation.decisions, evaluation.cards)),
        gaps=gap_rows(s, evaluation.gaps))
