"""The rows of a card's facts table ("| Fact | Value | Date |"): the record facts a card shows as its basis, dated,
with resource references. Built from the `ClinicalPicture`, which keeps them for the call (`ClinicalPicture.therapy_rows`
and its siblings: cards read those); each row is a `decision.FactRow`."""
from __future__ import annotations

from typing import TYPE_CHECKING

from cards.decision import FactRow
from fhir_mappings.model import HER2_CLASSES, ReceptorResult, ReceptorStatus

if TYPE_CHECKING:     # the picture imports this module to build its rows
    from cards.clinical_picture import ClinicalPicture


# An enum member's `_value_` is its value read as a plain attribute: `.value` is a Python-level property
# in Python 3.11 (enum.property), a call per read on every fact row (issue 15).

def _receptor(label: str, r: ReceptorResult) -> FactRow:
    value = r.status._value_
    if r.detail:
        value += f" ({r.detail})"
    if r.method and r.method != "none":
        value += f", by {r.method}"
    if r.conflict:
        value += f"; conflicting results: {r.reason}" if r.reason else "; conflicting results"
    elif r.status == ReceptorStatus.UNKNOWN and r.reason:
        value += f": {r.reason}"
    return FactRow(label, value, r.date, r.sources)


def receptor_facts(p: ClinicalPicture) -> tuple[FactRow, ...]:
    s = p.summary
    facts = [_receptor("HER2", s.her2), _receptor("ER", s.er), _receptor("PR", s.pr),
             FactRow("HR status (ER or PR positive)", s.hr_status._value_)]
    return tuple(facts)


def disease_facts(p: ClinicalPicture) -> tuple[FactRow, ...]:
    s = p.summary
    out = []
    if s.breast_cancer.present:
        out.append(FactRow("Breast cancer", s.breast_cancer.display or "present", s.breast_cancer.onset,
                        s.breast_cancer.sources))
    for other in s.breast_cancer.other_primaries:
        out.append(FactRow("Other primary cancer", other))
    m = s.metastatic
    out.append(FactRow("Metastatic disease", ("yes" + (f" ({m.evidence})" if m.evidence else "")) if m.metastatic else "no",
                    m.first_known, m.sources))
    if m.sites:
        # one row for all sites (the contract's basis names them; one row keeps them inside the length budget)
        value = "; ".join(f"{s.site}{' (CNS)' if s.cns else ''} {s.onset.isoformat() if s.onset else 'undated'}"
                          for s in m.sites)
        out.append(FactRow("Metastatic sites", value, min((s.onset for s in m.sites if s.onset), default=None),
                        tuple(dict.fromkeys(s.source for s in m.sites))))
    return tuple(out)


def _span(exps) -> tuple[str, object]:
    starts = [e.start for e in exps if e.start]
    ends = [e.end or e.start for e in exps if (e.end or e.start)]
    first = min(starts) if starts else None
    ongoing = any(e.ongoing for e in exps)
    last = "ongoing" if ongoing else (max(ends).isoformat() if ends else "?")
    return f"{first.isoformat() if first else '?'} to {last}", first


def therapy_facts(p: ClinicalPicture) -> tuple[FactRow, ...]:
    """Prior HER2-directed agents, one row per agent per regimen (administrations aggregated)."""
    t = p.summary.therapy
    out = []
    groups = [(r.setting._value_, r.exposures) for r in t.regimens] or [("", t.exposures)]
    for setting, exps in groups:
        by_drug: dict[str, list] = {}
        for e in exps:
            if not e.drug.classes.isdisjoint(HER2_CLASSES):    # a HER2-directed agent
                by_drug.setdefault(e.drug.name, []).append(e)
        for name, es in by_drug.items():
            span, first = _span(es)
            reasons = sorted({e.status_reason for e in es if e.status_reason})
            extra = (f"; {', '.join(reasons)}" if reasons else "") + (f"; {len(es)} records" if len(es) > 1 else "")
            where = f", {setting}" if setting else ""
            out.append(FactRow("Prior HER2-directed agent", f"{name} ({span}{where}{extra})", first,
                            tuple(dict.fromkeys(e.source for e in es))))
    for i, r in enumerate(p.lines, start=1):
        names = " + ".join(sorted(d.name for d in r.drugs))
        state = "ongoing" if r.ongoing else ("progressed" if r.progressed else "ended")
        out.append(FactRow(f"Metastatic line {i}", f"{names} ({state})", r.start, r.sources))
    if t.early_her2_end is not None:
        out.append(FactRow("(Neo)adjuvant HER2 therapy ended",
                        "with pertuzumab" if t.early_her2_with_pertuzumab else "without pertuzumab",
                        t.early_her2_end, t.early_her2_sources))
    if p.tfi_months is not None:
        out.append(FactRow("Months from end of (neo)adjuvant HER2 therapy to metastatic diagnosis",
                        f"{p.tfi_months:.1f} (threshold {p.tfi_threshold:g} months: {p.tfi_policy.display})"))
    if t.last_trastuzumab_dose is not None:
        out.append(FactRow("Last trastuzumab-based dose", f"{p.days_since(t.last_trastuzumab_dose)} days ago",
                        t.last_trastuzumab_dose, (t.last_trastuzumab_source,) if t.last_trastuzumab_source else ()))
    return tuple(out)


def line_fact(p: ClinicalPicture) -> FactRow:
    base = f"{p.lines_given} metastatic line(s) recorded"
    if p.early_relapse:
        base += "; early relapse within the treatment-free interval counts as one line"
    return FactRow("Next line of therapy", f"{ordinal(p.next_line)} ({base})")


def contraindication_facts(p: ClinicalPicture) -> tuple[FactRow, ...]:
    s = p.summary
    out = [FactRow("ILD / pneumonitis history", f"{c.display or c.code} ({c.clinical_status or 'status not recorded'})",
                c.onset, (c.source,)) for c in s.ild]
    out += [FactRow("Heart failure / cardiomyopathy", f"{c.display or c.code} ({c.clinical_status or 'status not recorded'})",
                 c.onset, (c.source,)) for c in s.heart_failure]
    return tuple(out)


def lvef_facts(p: ClinicalPicture) -> tuple[FactRow, ...]:
    ms = p.summary.lvef.measurements
    if not ms:
        return (FactRow("LVEF", "no measurement in the record"),)
    rows = [FactRow("LVEF (latest)", f"{ms[-1].value:g}% ({p.days_since(ms[-1].date)} days ago)", ms[-1].date,
                 (ms[-1].source,))]
    base = p.lvef_baseline
    if base is not None and base is not ms[-1]:
        rows.append(FactRow(f"LVEF (baseline: {p.lvef_baseline_label})", f"{base.value:g}%", base.date, (base.source,)))
    return tuple(rows)


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
