"""Derived clinical facts the rules share (line of therapy, treatment-free interval, what was received).

Computed once per call from the mapped `PatientSummary`, so every rule reads the same interpretation.
Pure: no clock (the summary's `as_of` is "today").
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cards.knowledge_base import Knowledge, TfiPolicy
from cards.policy import Policy
from fhir_mappings.model import (ANTHRACYCLINE, CDK46, ENDOCRINE, FLUOROPYRIMIDINE, HER2_CLASSES, OTHER_CHEMO,
                                 PLATINUM, RX_CAPECITABINE, RX_TRASTUZUMAB,
                                 RX_TUCATINIB, TAXANE, DraftOrder, Drug, Exposure, PatientSummary, ReceptorStatus,
                                 Regimen, Setting)

CHEMO_CLASSES = frozenset({TAXANE, ANTHRACYCLINE, PLATINUM, FLUOROPYRIMIDINE, OTHER_CHEMO})
# Classes that make a drafted order part of an anticancer regimen (for the HER2-blockade check).
ANTICANCER_CLASSES = CHEMO_CLASSES | {ENDOCRINE, CDK46} | HER2_CLASSES


def is_unconjugated_trastuzumab(drug: Drug) -> bool:
    return drug.unconjugated_trastuzumab


def is_her2_agent(drug: Drug) -> bool:
    return bool(drug.classes & HER2_CLASSES)


def draft_rxnorm(drafts: tuple[DraftOrder, ...]) -> frozenset[str]:
    return frozenset(d.rxnorm for o in drafts for d in o.drugs)


@dataclass(frozen=True)
class ClinicalPicture:
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

    @property
    def as_of(self) -> dt.date:
        return self.summary.as_of

    def received(self, rxnorm: str) -> bool:
        return rxnorm in self.summary.therapy.ever_given or any(
            e.drug.rxnorm == rxnorm for e in self.summary.therapy.exposures)

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

    def on_her2_therapy(self, window_days: float) -> bool:
        """An active HER2 order, or a HER2 dose within `window_days` (contract: 6 weeks)."""
        t = self.summary.therapy
        last = self.days_since(t.last_her2_dose)
        return t.her2_therapy_ongoing or bool(self.active_her2_exposures) or (last is not None and last <= window_days)


def counts_as_line(regimen: Regimen) -> bool:
    return regimen.setting == Setting.METASTATIC and bool(regimen.classes & (HER2_CLASSES | CHEMO_CLASSES))


def picture(summary: PatientSummary, knowledge: Knowledge, policy: Policy) -> ClinicalPicture:
    t = summary.therapy
    # The seed's lines are lines of HER2-directed or chemotherapy treatment: an endocrine-only regimen
    # (counted by the mapping's `metastatic_lines`) does not move a patient to the next HER2 line.
    lines = tuple(r for r in t.regimens if counts_as_line(r))
    lines_given = len(lines)
    ongoing = bool(lines) and lines[-1].ongoing and not lines[-1].progressed
    tfi = t.tfi_months
    tfi_policy = knowledge.tfi_policy(policy.tfi_policy)
    threshold = tfi_policy.threshold(t.early_her2_with_pertuzumab) if t.early_her2_end is not None else None
    early = tfi is not None and threshold is not None and tfi <= threshold
    her2_mbc = (summary.breast_cancer.present and summary.metastatic.metastatic
                and summary.her2.status == ReceptorStatus.POSITIVE)
    return ClinicalPicture(
        summary=summary, her2_positive_mbc=her2_mbc, lines=lines, lines_given=lines_given,
        current_line_ongoing=ongoing, tfi_months=tfi, tfi_policy=tfi_policy, tfi_threshold=threshold,
        early_relapse=early, next_line=lines_given + 1 + (1 if early else 0),
        ild=bool(summary.ild), brain=summary.metastatic.brain)


TRIPLET = frozenset({RX_TUCATINIB, RX_TRASTUZUMAB, RX_CAPECITABINE})
