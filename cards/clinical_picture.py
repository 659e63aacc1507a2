"""The clinical picture: the record interpreted once for all rules (line of therapy, treatment-free interval,
progression, HER2 discordance, LVEF baseline, what was received) - `ClinicalPicture`, made by `clinical_picture`.

Computed once per call from the mapped `PatientSummary`, so every rule reads the same interpretation. What a
card shows as its facts table is built from it by `fact_rows`, once per call: the picture keeps each group of
rows the first time a card asks for it (`therapy_rows`, ...), and every other card of the call (and every
candidate of an unidentified draft) reuses them. Pure: no clock (the summary's `as_of` is "today").
"""
from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import Any, Callable, Generic, TypeVar

from cards import fact_rows
from cards.decision import FactRow
from cards.knowledge_base import Knowledge, TfiPolicy
from cards.policy import Policy
from fhir_mappings.model import (ANTHRACYCLINE, CDK46, ENDOCRINE, FLUOROPYRIMIDINE, HER2_CLASSES, OTHER_CHEMO,
                                 PLATINUM, RX_CAPECITABINE, RX_TRASTUZUMAB,
                                 RX_TUCATINIB, TAXANE, ConditionFact, DraftOrder, Drug, Exposure, Her2Result,
                                 LvefMeasurement, PatientSummary, PregnancyFact, ReceptorStatus, Regimen, Setting)

CHEMO_CLASSES = frozenset({TAXANE, ANTHRACYCLINE, PLATINUM, FLUOROPYRIMIDINE, OTHER_CHEMO})
# Classes that make a drafted order part of an anticancer regimen (for the HER2-blockade check).
ANTICANCER_CLASSES = CHEMO_CLASSES | {ENDOCRINE, CDK46} | HER2_CLASSES


def is_unconjugated_trastuzumab(drug: Drug) -> bool:
    return drug.unconjugated_trastuzumab


def is_her2_agent(drug: Drug) -> bool:
    return not drug.classes.isdisjoint(HER2_CLASSES)


def draft_rxnorm(drafts: tuple[DraftOrder, ...]) -> frozenset[str]:
    return frozenset(d.rxnorm for o in drafts for d in o.drugs)


T = TypeVar("T")


class once(Generic[T]):
    """A property computed on first use and then kept in the instance (`functools.cached_property` without
    the lock Python 3.11 takes around each computation, dropped in 3.12): for a frozen picture that lives for
    one call, so each record fact is worked out once per call."""

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> T:
        if instance is None:
            return self     # type: ignore[return-value]
        value = instance.__dict__[self.name] = self.compute(instance)   # then found in __dict__: no call again
        return value


# A HER2-negative specimen up to this long after a neoadjuvant HER2 regimen ended is the surgical
# (residual-disease) specimen: HER2 loss there does not count as discordance (contract v2).
RESIDUAL_SPECIMEN_DAYS = 30
# Contract v2, heart-failure: "an active heart-failure diagnosis (not refuted, not entered-in-error, not
# resolved)": only `resolved` ends it (refuted / entered-in-error are dropped by the mapping). An inactive or
# remitted heart failure (e.g. compensated on treatment) still matters for cardiotoxic therapy.
HF_ENDED_CLINICAL_STATUS = frozenset({"resolved"})


@dataclass(frozen=True)
class Discordance:
    """HER2-positive on an earlier specimen, negative on the latest (a later date)."""

    earlier: Her2Result
    latest: Her2Result


@dataclass(frozen=True)
class ClinicalPicture:
    """The record as every rule reads it: the summary plus what is concluded from it once (lines counted,
    treatment-free interval, progression, discordance, LVEF baseline), so no two rules interpret it apart."""

    summary: PatientSummary
    her2_positive_mbc: bool          # breast cancer + metastatic + HER2 positive: the regimen algorithm applies
    lines: tuple[Regimen, ...]       # metastatic lines counted (HER2 or chemo content; endocrine-only not counted)
    lines_given: int
    current_line_ongoing: bool
    tfi_months: float | None
    tfi_policy: TfiPolicy
    tfi_threshold: float | None
    early_relapse: bool              # recurrence within the TFI threshold -> the first metastatic line counts as 2L
    next_line: int                   # the line the next regimen would be
    ild: bool
    brain: bool
    progression: tuple[str, ...] = ()          # how progression of the latest line is documented
    discordance: Discordance | None = None
    residual_her2_loss: bool = False           # latest HER2-negative result is residual disease after neoadjuvant
    heart_failure: tuple[ConditionFact, ...] = ()   # active heart-failure diagnoses
    lvef_baseline: LvefMeasurement | None = None    # last LVEF before the current HER2-directed therapy began
    lvef_baseline_label: str = "the last LVEF before the current HER2-directed therapy"   # what the baseline is

    @property
    def pregnancy(self) -> PregnancyFact | None:
        return self.summary.pregnancy

    @property
    def regimen_list_applies(self) -> bool:
        """HER2-positive MBC, not discordant, not pregnant: the only records for which a regimen may be
        proposed, on the next-regimen card or as a replacement on a safety card (contract v2)."""
        return self.her2_positive_mbc and self.discordance is None and self.pregnancy is None

    @property
    def any_positive_her2(self) -> bool:
        return self.summary.her2.status == ReceptorStatus.POSITIVE or any(
            h.status == ReceptorStatus.POSITIVE for h in self.summary.her2_history)

    @property
    def lvef_drop(self) -> float | None:
        latest = self.summary.lvef.latest
        if latest is None or self.lvef_baseline is None or self.lvef_baseline is latest:
            return None
        return self.lvef_baseline.value - latest.value

    @property
    def as_of(self) -> dt.date:
        return self.summary.as_of

    @once
    def received_rxnorm(self) -> frozenset[str]:
        """Every agent given in any setting (RxNorm), as recorded or as an exposure."""
        t = self.summary.therapy
        return t.ever_given.union([e.drug.rxnorm for e in t.exposures])

    def received(self, rxnorm: str) -> bool:
        return rxnorm in self.received_rxnorm

    def exposures_of(self, rxnorm: str) -> tuple[Exposure, ...]:
        return tuple(e for e in self.summary.therapy.exposures if e.drug.rxnorm == rxnorm)

    def days_since(self, day: dt.date | None) -> int | None:
        return None if day is None else (self.as_of - day).days

    @property
    def active_her2_exposures(self) -> tuple[Exposure, ...]:
        """HER2 agents with an active order/statement (continuing HER2 blockade right now)."""
        return tuple(e for e in self.summary.therapy.exposures if e.ongoing and is_her2_agent(e.drug))

    @property
    def ongoing_regimen(self) -> Regimen | None:
        if self.current_line_ongoing and self.lines:
            return self.lines[-1]
        return None

    def drug_ongoing(self, match, window_days: float) -> tuple[Exposure, ...]:
        """Exposures of drugs matching `match` (a Drug predicate) that are ongoing: an active order /
        statement, or a dose within `window_days` (contract: 6 weeks). Stopped, cancelled and completed
        orders count only through their dates."""
        out = []
        for e in self.summary.therapy.exposures:
            if not match(e.drug):
                continue
            last = e.end or e.start
            if e.ongoing or (last is not None and 0 <= (self.as_of - last).days <= window_days):
                out.append(e)
        return tuple(out)

    def on_her2_therapy(self, window_days: float) -> bool:
        """An active HER2 order, or a HER2 dose within `window_days` (contract: 6 weeks)."""
        t = self.summary.therapy
        last = self.days_since(t.last_her2_dose)
        return t.her2_therapy_ongoing or bool(self.active_her2_exposures) or (last is not None and last <= window_days)


    # The facts-table rows of the record (`fact_rows`), built when a card first asks and then shared.
    receptor_rows = once(fact_rows.receptor_facts)
    disease_rows = once(fact_rows.disease_facts)
    therapy_rows = once(fact_rows.therapy_facts)
    line_row = once(fact_rows.line_fact)
    contraindication_rows = once(fact_rows.contraindication_facts)
    lvef_rows = once(fact_rows.lvef_facts)


def counts_as_line(regimen: Regimen) -> bool:
    return regimen.setting == Setting.METASTATIC and bool(regimen.classes & (HER2_CLASSES | CHEMO_CLASSES))


def documented_progression(summary: PatientSummary, line: Regimen) -> tuple[str, ...]:
    """Contract v2: a new metastatic-site Condition recorded after the line started, a stop reason of
    progression / no response on the line's orders, or a disease-status Observation of progression."""
    out = []
    if any(e.progressed for e in line.exposures):
        out.append("stop reason of progression / no response on the line's orders")
    if line.start is not None:
        # "recorded after the line started": the site's onset (else its recorded date) is after the line's
        # first dose; no grace period (a site dated before or on the start day was known when it began).
        out += [f"new metastatic site ({s.site}, {s.source}) on {s.onset.isoformat()}"
                for s in summary.metastatic.sites if s.onset and s.onset > line.start]
        out += [f"disease-status Observation of progression ({src}) on {d.isoformat()}"
                for d, src in summary.progression_dates if d >= line.start]
    return tuple(out)


def _residual_after_neoadjuvant(summary: PatientSummary, result: Her2Result) -> bool:
    """A result dated after a neoadjuvant HER2 regimen began and before the surgical specimen's window closed:
    up to RESIDUAL_SPECIMEN_DAYS after the last neoadjuvant dose, or up to the start of the adjuvant regimen
    that follows (the surgery, and so its specimen, lies between the two)."""
    if result.date is None:
        return False
    regimens = summary.therapy.regimens
    for i, r in enumerate(regimens):
        if r.setting == Setting.NEOADJUVANT and r.classes & HER2_CLASSES and r.start and r.start <= result.date:
            end = r.end or summary.as_of
            adjuvant = next((x.start for x in regimens[i + 1:] if x.setting == Setting.ADJUVANT and x.start
                             and x.start >= end), None)
            limit = max(end + dt.timedelta(days=RESIDUAL_SPECIMEN_DAYS), adjuvant or end)
            if result.date <= limit:
                return True
    return False


def her2_discordance(summary: PatientSummary) -> tuple[Discordance | None, bool]:
    """(discordance, residual-disease HER2 loss). Results on the same date are not discordance (they make
    the status unknown or are settled within the episode); a later positive after a negative is positive."""
    hist = summary.her2_history
    if summary.her2.status != ReceptorStatus.NEGATIVE or not hist or hist[-1].status != ReceptorStatus.NEGATIVE:
        return None, False
    latest = hist[-1]
    earlier = [h for h in hist[:-1] if h.status == ReceptorStatus.POSITIVE and h.date and latest.date
               and h.date < latest.date]
    if not earlier:
        return None, False
    if _residual_after_neoadjuvant(summary, latest):
        return None, True
    return Discordance(earlier[-1], latest), False


def current_her2_start(summary: PatientSummary, lines: tuple[Regimen, ...]) -> dt.date | None:
    """Start of the current (or, off therapy, the latest) HER2-directed regimen."""
    her2_regimens = [r for r in summary.therapy.regimens if r.classes & HER2_CLASSES and r.start]
    if not her2_regimens:
        return None
    return her2_regimens[-1].start


PRE_THERAPY_BASELINE = "the last LVEF before the current HER2-directed therapy"
EARLIEST_BASELINE = "the earliest LVEF on record: none before the current HER2-directed therapy"


_date = attrgetter("date")


def lvef_baseline(summary: PatientSummary, start: dt.date | None) -> tuple[LvefMeasurement | None, str]:
    """(baseline, what it is). The contract's baseline is the last LVEF before the current HER2-directed
    therapy began; without one (or without HER2 therapy) the earliest measurement is the reference, and the
    card says so rather than calling it a pre-treatment value."""
    ms = summary.lvef.measurements
    if not ms:
        return None, PRE_THERAPY_BASELINE
    if start is not None:
        # the series is chronological: the measurements up to `start` are the first `before` (found by bisection,
        # not a pass over a long chart's series: why, 6,800 bytecodes on a 1,000-resource record)
        before = bisect_right(ms, start, key=_date)
        if before:
            return ms[before - 1], PRE_THERAPY_BASELINE
    return ms[0], (EARLIEST_BASELINE if start is not None else "the earliest LVEF on record")


def clinical_picture(summary: PatientSummary, knowledge: Knowledge, policy: Policy) -> ClinicalPicture:
    t = summary.therapy
    # The seed's lines are lines of HER2-directed or chemotherapy treatment: an endocrine-only regimen
    # (counted by the mapping's `metastatic_lines`) does not move a patient to the next HER2 line.
    lines = tuple(r for r in t.regimens if counts_as_line(r))
    progression: tuple[str, ...] = ()
    if lines and lines[-1].ongoing and not lines[-1].progressed:
        progression = documented_progression(summary, lines[-1])
        if progression:
            lines = lines[:-1] + (replace(lines[-1], progressed=True),)
    elif lines:
        progression = documented_progression(summary, lines[-1])
    lines_given = len(lines)
    ongoing = bool(lines) and lines[-1].ongoing and not lines[-1].progressed
    tfi = t.tfi_months
    tfi_policy = knowledge.tfi_policy(policy.tfi_policy)
    threshold = tfi_policy.threshold(t.early_her2_with_pertuzumab) if t.early_her2_end is not None else None
    early = tfi is not None and threshold is not None and tfi <= threshold
    discordance, residual = her2_discordance(summary)
    her2_mbc = (summary.breast_cancer.present and summary.metastatic.metastatic
                and (summary.her2.status == ReceptorStatus.POSITIVE or residual))
    heart_failure = tuple(c for c in summary.heart_failure
                          if c.kind == "heart-failure" and c.clinical_status not in HF_ENDED_CLINICAL_STATUS)
    baseline, baseline_label = lvef_baseline(summary, current_her2_start(summary, lines))
    return ClinicalPicture(
        summary=summary, her2_positive_mbc=her2_mbc, lines=lines, lines_given=lines_given,
        current_line_ongoing=ongoing, tfi_months=tfi, tfi_policy=tfi_policy, tfi_threshold=threshold,
        early_relapse=early, next_line=lines_given + 1 + (1 if early else 0),
        ild=bool(summary.ild), brain=summary.metastatic.brain, progression=progression,
        discordance=discordance, residual_her2_loss=residual, heart_failure=heart_failure,
        lvef_baseline=baseline, lvef_baseline_label=baseline_label)


TRIPLET = frozenset({RX_TUCATINIB, RX_TRASTUZUMAB, RX_CAPECITABINE})
