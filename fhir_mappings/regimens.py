"""Exposures -> regimens, settings, metastatic lines and the derived therapy facts the rules use.

Semantics (documented here because the cards rely on them):
- Grouping, in order of start date: an exposure joins the regimen that already holds the same
  ingredient when it starts within CONTINUATION_DAYS of that ingredient's last known date (cycles of
  MedicationAdministration, renewed orders) - or, when a newer regimen has started meanwhile, that
  newer one (an agent carried into the next line, e.g. trastuzumab continued with a new partner); else the latest regimen when it starts within
  REGIMEN_WINDOW_DAYS of that regimen's start; else, for endocrine / CDK4/6 agents only, the latest
  regimen while that regimen is still running (endocrine therapy added to HP maintenance is not a new
  line); else it opens a new regimen.
- Setting: palliative procedure-intent -> metastatic; curative intent and a start before the
  metastatic date -> early; otherwise dates: start on/after (metastatic first-known - 14 days) ->
  metastatic, before -> early. Early is refined by a breast-surgery Procedure: ended by the surgery ->
  neoadjuvant, started after it -> adjuvant, else "early".
- Lines: metastatic regimens numbered 1..n by start date (every anticancer regimen counts, endocrine
  too). A regimen `progressed` when an exposure's statusReason says no response / progression, or a
  later metastatic line started. `ongoing`: an exposure is ongoing (active order/statement, period
  without end) or, for administrations only, the last dose was within ONGOING_DOSE_DAYS and nothing
  says it stopped.
- last dose of a drug: an ongoing order counts as given up to `as_of` unless administrations of that
  drug are recorded, in which case the latest administration date is used; otherwise end, else start.
- tfi_months = (metastatic first-known - end of early HER2 therapy) in days / 30.4375, rounded to
  0.1, never below 0 (relapse during (neo)adjuvant therapy gives 0.0).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Sequence

from .model import (CDK46, ENDOCRINE, HER2_CLASSES, RX_PERTUZUMAB, Exposure, Regimen, Setting, TherapyHistory)

REGIMEN_WINDOW_DAYS = 21
CONTINUATION_DAYS = 45
ONGOING_DOSE_DAYS = 42          # "a dose in the last 6 weeks" (contract)
METASTATIC_TOLERANCE_DAYS = 14
SURGERY_TOLERANCE_DAYS = 14
DAYS_PER_MONTH = 30.4375
ADD_ON_CLASSES = frozenset({ENDOCRINE, CDK46})
EARLY_SETTINGS = frozenset({Setting.NEOADJUVANT, Setting.ADJUVANT, Setting.EARLY})
_METASTATIC_TOLERANCE = dt.timedelta(days=METASTATIC_TOLERANCE_DAYS)
_SURGERY_TOLERANCE = dt.timedelta(days=SURGERY_TOLERANCE_DAYS)
_SURGERY_BEFORE_START = dt.timedelta(days=7)       # a surgery before (or within a week of) the start: adjuvant
_ONGOING_DOSE = dt.timedelta(days=ONGOING_DOSE_DAYS)


def anchor(e: Exposure) -> dt.date | None:
    return e.start or e.end


def last_known(e: Exposure, as_of: dt.date) -> dt.date | None:
    if e.ongoing:
        return as_of
    return e.end or e.start


@dataclass
class _Builder:
    as_of: dt.date
    start: dt.date | None = None
    exposures: list[Exposure] = field(default_factory=list)
    last_by_drug: dict[str, dt.date] = field(default_factory=dict)

    def add(self, e: Exposure) -> None:
        self.exposures.append(e)
        d = last_known(e, self.as_of)
        if d and (e.drug.rxnorm not in self.last_by_drug or d > self.last_by_drug[e.drug.rxnorm]):
            self.last_by_drug[e.drug.rxnorm] = d

    def last_of(self, rxnorm: str, as_of: dt.date) -> dt.date | None:
        return self.last_by_drug.get(rxnorm)

    def last(self, as_of: dt.date) -> dt.date | None:
        return max(self.last_by_drug.values()) if self.last_by_drug else None


def _addon_only(b: "_Builder") -> bool:
    return all(x.drug.classes <= ADD_ON_CLASSES for x in b.exposures)


def _order(e: Exposure) -> tuple[dt.date, str, str]:
    """The order of exposures in a history: by date (`anchor`; undated last), then source and drug."""
    return (e.start or e.end or dt.date.max, e.source, e.drug.rxnorm)


def group(ordered: Sequence[Exposure], as_of: dt.date) -> list[_Builder]:
    """The regimens of exposures sorted by `_order`, oldest first, the undated ones (if any) last and together.

    Each regimen's exposures keep that order, and the regimens come in order of their start: `build_history`
    sorts nothing again."""
    builders: list[_Builder] = []
    undated: _Builder | None = None
    for e in ordered:
        d = anchor(e)
        if d is None:
            if undated is None:
                undated = _Builder(as_of=as_of)
            undated.add(e)
            continue
        target = None
        for b in reversed(builders):
            last = b.last_of(e.drug.rxnorm, as_of)
            if last is not None:
                if (d - last).days <= CONTINUATION_DAYS:
                    # an agent continued across a change of line (trastuzumab beyond progression with a new
                    # partner) belongs to the newest regimen from the new line's start on
                    target = builders[-1] if b is not builders[-1] and builders[-1].start and \
                        builders[-1].start <= d and not _addon_only(builders[-1]) else b
                break
        if target is None and builders:
            latest = builders[-1]
            if latest.start and (d - latest.start).days <= REGIMEN_WINDOW_DAYS:
                target = latest
            elif e.drug.classes <= ADD_ON_CLASSES and e.drug.classes:
                running_until = latest.last(as_of)
                others = [x for x in latest.exposures if not x.drug.classes <= ADD_ON_CLASSES]
                if others and running_until and running_until >= d:
                    target = latest
        if target is None:
            target = _Builder(as_of=as_of, start=d)
            builders.append(target)
        target.add(e)
    if undated is not None:
        builders.append(undated)
    return builders


def _setting(exps: Sequence[Exposure], start: dt.date | None, last: dt.date | None, met_date: dt.date | None,
             metastatic: bool, surgeries: Sequence[dt.date]) -> Setting:
    intents = {e.intent for e in exps if e.intent}
    if "palliative" in intents:
        return Setting.METASTATIC
    if start is None:
        return Setting.EARLY if "curative" in intents else Setting.UNKNOWN
    if met_date is not None:
        if "curative" in intents and start < met_date:
            early = True
        else:
            early = start < met_date - _METASTATIC_TOLERANCE
    elif metastatic and "curative" not in intents:
        return Setting.UNKNOWN              # metastatic, date unknown: cannot place the regimen
    else:
        early = True
    if not early:
        return Setting.METASTATIC
    after = [s for s in surgeries if s >= start]
    if after and last is not None and last <= min(after) + _SURGERY_TOLERANCE:
        return Setting.NEOADJUVANT
    if any(s <= start + _SURGERY_BEFORE_START for s in surgeries):
        return Setting.ADJUVANT
    return Setting.EARLY


def _last_dose(exposures: Sequence[Exposure], as_of: dt.date) -> tuple[dt.date | None, str | None]:
    """Latest date a drug set was known to be given; see module docstring."""
    administered: dict[str, list[tuple[dt.date, str]]] = {}
    for e in exposures:
        if e.resource_type == "MedicationAdministration" and anchor(e):
            administered.setdefault(e.drug.rxnorm, []).append((e.end or e.start, e.source))  # type: ignore[arg-type]
    best: tuple[dt.date, str] | None = None
    for e in exposures:
        if e.ongoing:
            mas = [m for m in administered.get(e.drug.rxnorm, []) if e.start is None or m[0] >= e.start]
            cand = max(mas) if mas else (as_of, e.source)
        else:
            d = e.end or e.start
            if d is None:
                continue
            cand = (d, e.source)
        if best is None or cand > best:
            best = cand
    return (best[0], best[1]) if best else (None, None)


def _recently_administered(exps: Sequence[Exposure], as_of: dt.date) -> bool:
    """Administrations within ONGOING_DOSE_DAYS keep a regimen ongoing unless an order/statement of the
    regimen says it was stopped or completed on or after the last administration."""
    ma_dates = [d for d in (anchor(e) for e in exps if e.resource_type == "MedicationAdministration") if d]
    if not ma_dates:
        return False
    last_ma = max(ma_dates)
    for e in exps:
        closed = e.end or e.start
        if e.resource_type != "MedicationAdministration" and e.status in ("stopped", "completed") \
                and closed and closed >= last_ma:
            return False
    return (as_of - last_ma).days <= ONGOING_DOSE_DAYS


def build_history(exposures: Sequence[Exposure], as_of: dt.date, met_date: dt.date | None, metastatic: bool,
                  surgeries: Sequence[dt.date] = ()) -> TherapyHistory:
    ordered = sorted(exposures, key=_order)
    drafts = []
    metastatic_count = 0
    for b in group(ordered, as_of):
        exps = b.exposures
        last = b.last(as_of)
        setting = _setting(exps, b.start, last, met_date, metastatic, surgeries)
        reason_progressed = any(e.progressed for e in exps)
        ongoing = any(e.ongoing for e in exps)
        if not ongoing and not reason_progressed:
            ongoing = _recently_administered(exps, as_of)
        drafts.append((exps, setting, b.start, None if ongoing else last, ongoing, reason_progressed))
        if setting == Setting.METASTATIC:
            metastatic_count += 1
    regimens: list[Regimen] = []
    met_regs: list[Regimen] = []
    early_regs: list[Regimen] = []
    for exps, setting, start, end, ongoing, progressed in drafts:      # chronological (see `group`)
        if setting == Setting.METASTATIC:
            line = len(met_regs) + 1
            regimen = Regimen(tuple(exps), setting, line, start, end, ongoing,
                              progressed or line < metastatic_count)      # a later line started
            met_regs.append(regimen)
        else:
            regimen = Regimen(tuple(exps), setting, None, start, end, ongoing, progressed)
            if setting in EARLY_SETTINGS:
                early_regs.append(regimen)
        regimens.append(regimen)

    her2_exps = [e for e in exposures if e.drug.classes & HER2_CLASSES]
    tras_exps = [e for e in exposures if e.drug.unconjugated_trastuzumab]
    last_tras, last_tras_src = _last_dose(tras_exps, as_of)
    last_her2, _ = _last_dose(her2_exps, as_of)
    recent = as_of - _ONGOING_DOSE
    trastuzumab_ongoing = any(e.ongoing for e in tras_exps) or bool(last_tras and last_tras >= recent)
    her2_ongoing = any(e.ongoing for e in her2_exps) or bool(last_her2 and last_her2 >= recent)

    early_her2 = [e for r in early_regs for e in r.exposures if e.drug.classes & HER2_CLASSES]
    early_end, _ = _last_dose(early_her2, as_of)
    tfi = None
    if early_end and met_date and metastatic:
        tfi = round(max(0, (met_date - early_end).days) / DAYS_PER_MONTH, 1)
    last_line = met_regs[-1] if met_regs else None
    return TherapyHistory(
        exposures=tuple(ordered),
        regimens=tuple(regimens),
        metastatic_lines=len(met_regs),
        current_line_ongoing=bool(last_line and last_line.ongoing and not last_line.progressed),
        her2_agents_metastatic=frozenset(e.drug.rxnorm for r in met_regs for e in r.exposures
                                         if e.drug.classes & HER2_CLASSES),
        ever_given=frozenset(e.drug.rxnorm for e in exposures),
        last_trastuzumab_dose=last_tras,
        last_trastuzumab_source=last_tras_src,
        trastuzumab_ongoing=trastuzumab_ongoing,
        her2_therapy_ongoing=her2_ongoing,
        last_her2_dose=last_her2,
        early_her2_end=early_end,
        early_her2_with_pertuzumab=any(e.drug.rxnorm == RX_PERTUZUMAB for e in early_her2),
        early_her2_sources=tuple(dict.fromkeys(e.source for e in early_her2)),
        tfi_months=tfi,
    )
