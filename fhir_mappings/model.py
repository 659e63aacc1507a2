"""Typed clinical facts: the one contract between `fhir_mappings` (which builds them from FHIR) and
`cards` (which decides from them).

Every fact carries the references of the resources it rests on (`sources`, as "Type/id"), so a card
can show the clinician where each statement came from. Absence is explicit: an unknown receptor status
is `ReceptorStatus.UNKNOWN` with a reason, never a guessed value.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum


class ReceptorStatus(str, Enum):
    POSITIVE = "positive"
    NEGATIVE = "negative"
    EQUIVOCAL = "equivocal"
    UNKNOWN = "unknown"


class Setting(str, Enum):
    """Treatment setting of a regimen, relative to the metastatic diagnosis and procedure intent."""

    NEOADJUVANT = "neoadjuvant"
    ADJUVANT = "adjuvant"
    EARLY = "early"            # curative intent / before metastasis, neo- vs adjuvant not determinable
    METASTATIC = "metastatic"
    UNKNOWN = "unknown"


# Drug classes used by the terminology table and the rules (strings, so the knowledge YAML can name them).
HER2_ANTIBODY = "her2-antibody"          # trastuzumab (incl. biosimilars, SC), pertuzumab, margetuximab
HER2_ADC = "her2-adc"                    # T-DM1, T-DXd
HER2_TKI = "her2-tki"                    # tucatinib, lapatinib, neratinib
TAXANE = "taxane"
ANTHRACYCLINE = "anthracycline"
PLATINUM = "platinum"
FLUOROPYRIMIDINE = "fluoropyrimidine"
ENDOCRINE = "endocrine"
CDK46 = "cdk4/6-inhibitor"
CHECKPOINT_INHIBITOR = "checkpoint-inhibitor"
OTHER_CHEMO = "other-chemotherapy"
HER2_CLASSES = frozenset({HER2_ANTIBODY, HER2_ADC, HER2_TKI})

# Canonical RxNorm ingredient (IN) codes the rules refer to (docs/card-contract.md, "RxNorm ingredient codes").
RX_TRASTUZUMAB = "224905"
RX_PERTUZUMAB = "1298944"
RX_TDM1 = "1371041"
RX_TDXD = "2267574"
RX_TUCATINIB = "2361285"
RX_CAPECITABINE = "194000"
RX_LAPATINIB = "480167"
RX_NERATINIB = "1940643"
RX_DOCETAXEL = "72962"
RX_PACLITAXEL = "56946"
RX_DOXORUBICIN = "3639"
RX_EPIRUBICIN = "3995"


@dataclass(frozen=True)
class Drug:
    """A canonical ingredient, after the RxNorm/ATC roll-up."""

    rxnorm: str                      # canonical ingredient (IN) code, e.g. "224905"
    name: str                        # canonical ingredient name, e.g. "trastuzumab"
    classes: frozenset[str]          # drug classes above
    unconjugated_trastuzumab: bool = False   # counts for the anthracycline washout (not T-DM1/T-DXd)


@dataclass(frozen=True)
class ReceptorResult:
    status: ReceptorStatus
    date: dt.date | None = None
    method: str = "none"             # "interpretation" | "IHC" | "ISH" | "condition" | "none"
    detail: str = ""                 # what was read, e.g. "IHC 3+", "HER2/CEP17 ratio 2.4"
    reason: str = ""                 # why this result was chosen, or why the status is unknown
    conflict: bool = False           # tissue results disagree (the reason says how it was settled)
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class BreastCancer:
    present: bool
    onset: dt.date | None = None
    display: str = ""
    sources: tuple[str, ...] = ()
    other_primaries: tuple[str, ...] = ()   # displays of non-breast primary cancers


@dataclass(frozen=True)
class MetastaticSite:
    site: str                        # "brain", "liver", "bone", "lung", "distant lymph node", "other", ...
    cns: bool
    code: str
    system: str
    display: str
    onset: dt.date | None
    source: str


@dataclass(frozen=True)
class MetastaticDisease:
    metastatic: bool
    first_known: dt.date | None = None
    sites: tuple[MetastaticSite, ...] = ()
    evidence: str = ""               # e.g. "secondary cancer Condition", "stage IV", "mCODE history of metastatic cancer"
    sources: tuple[str, ...] = ()

    @property
    def brain(self) -> bool:
        return any(s.cns for s in self.sites)


@dataclass(frozen=True)
class Exposure:
    """One agent given once or over a span, from one medication resource."""

    drug: Drug
    start: dt.date | None
    end: dt.date | None              # last known dose / end of period; None when ongoing or unknown
    ongoing: bool                    # active order / statement, or period without end
    status: str                      # FHIR status as recorded
    resource_type: str               # MedicationStatement | MedicationRequest | MedicationAdministration
    source: str                      # "Type/id"
    intent: str | None = None        # mCODE procedure intent: "curative" | "palliative" | None
    status_reason: str = ""          # display of statusReason (e.g. "Absent response to treatment")
    progressed: bool = False         # stopped for no response / progression


@dataclass(frozen=True)
class Regimen:
    exposures: tuple[Exposure, ...]
    setting: Setting
    line: int | None                 # metastatic line number (1-based), None outside the metastatic setting
    start: dt.date | None
    end: dt.date | None
    ongoing: bool
    progressed: bool                 # documented progression / stop for no response

    @property
    def drugs(self) -> frozenset[Drug]:
        return frozenset(e.drug for e in self.exposures)

    @property
    def rxnorm(self) -> frozenset[str]:
        return frozenset(e.drug.rxnorm for e in self.exposures)

    @property
    def classes(self) -> frozenset[str]:
        return frozenset(c for e in self.exposures for c in e.drug.classes)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(e.source for e in self.exposures)


@dataclass(frozen=True)
class TherapyHistory:
    exposures: tuple[Exposure, ...] = ()
    regimens: tuple[Regimen, ...] = ()          # chronological
    # Derived facts the rules use; each None/False when the record does not show it.
    metastatic_lines: int = 0                   # number of metastatic-setting regimens
    current_line_ongoing: bool = False          # the latest metastatic regimen is ongoing, no progression
    her2_agents_metastatic: frozenset[str] = frozenset()   # RxNorm IN codes given in the metastatic setting
    ever_given: frozenset[str] = frozenset()    # RxNorm IN codes given in any setting
    last_trastuzumab_dose: dt.date | None = None          # unconjugated trastuzumab-containing products
    last_trastuzumab_source: str | None = None
    trastuzumab_ongoing: bool = False            # an active trastuzumab-based order/statement
    her2_therapy_ongoing: bool = False           # any HER2-targeted agent active / dosed in the last 6 weeks
    last_her2_dose: dt.date | None = None
    early_her2_end: dt.date | None = None        # end of (neo)adjuvant HER2 therapy
    early_her2_with_pertuzumab: bool = False
    early_her2_sources: tuple[str, ...] = ()
    tfi_months: float | None = None              # months from early_her2_end to metastatic diagnosis


@dataclass(frozen=True)
class ConditionFact:
    kind: str                        # "ild" | "heart-failure" | "cardiomyopathy"
    code: str
    system: str
    display: str
    onset: dt.date | None
    clinical_status: str             # "active" | "recurrence" | "relapse" | "inactive" | "remission" | "resolved" | ""
    source: str


@dataclass(frozen=True)
class LvefMeasurement:
    value: float                     # percent
    date: dt.date
    code: str
    source: str


@dataclass(frozen=True)
class LvefSeries:
    measurements: tuple[LvefMeasurement, ...] = ()   # chronological

    @property
    def latest(self) -> LvefMeasurement | None:
        return self.measurements[-1] if self.measurements else None

    @property
    def baseline(self) -> LvefMeasurement | None:
        return self.measurements[0] if self.measurements else None

    @property
    def drop_from_baseline(self) -> float | None:
        if len(self.measurements) < 2:
            return None
        return self.measurements[0].value - self.measurements[-1].value


@dataclass(frozen=True)
class PregnancyFact:
    """A current pregnancy (contract v2 `pregnancy`): an active pregnancy Condition of the last 10 months
    with no later end, or a recent pregnancy-status Observation saying pregnant."""

    since: dt.date | None            # onset (or recorded date) of the pregnancy Condition / Observation date
    gestational_weeks: float | None  # as stated by the record (or derived from the onset), None when unknown
    basis: str                       # what was read, e.g. "Z33.1 Pregnant state, incidental (active)"
    source: str


@dataclass(frozen=True)
class Her2Result:
    """One definitive HER2 result of a test episode (for discordance between specimens)."""

    status: ReceptorStatus           # POSITIVE or NEGATIVE
    date: dt.date | None
    detail: str
    source: str
    specimen: str = ""               # what the record says the specimen was (bodySite, specimen display or note)


@dataclass(frozen=True)
class RecordIssue:
    """Something in the record that could not be used: reported on cards, never silently dropped."""

    source: str                      # "Type/id" or a prefetch key
    problem: str                     # human-readable, no PHI beyond codes/displays
    info: bool = False               # read, but not the usual way (e.g. a drug identified by name): said, not a gap


@dataclass(frozen=True)
class PatientSummary:
    patient_id: str
    as_of: dt.date
    breast_cancer: BreastCancer
    metastatic: MetastaticDisease
    her2: ReceptorResult
    er: ReceptorResult
    pr: ReceptorResult
    therapy: TherapyHistory
    ild: tuple[ConditionFact, ...] = ()            # ILD / pneumonitis history that counts (not refuted / entered in error)
    heart_failure: tuple[ConditionFact, ...] = ()  # heart failure or cardiomyopathy that counts
    lvef: LvefSeries = field(default_factory=LvefSeries)
    pregnancy: PregnancyFact | None = None         # a current pregnancy in the record
    her2_history: tuple[Her2Result, ...] = ()      # definitive HER2 results per test episode, chronological
    progression_dates: tuple[tuple[dt.date, str], ...] = ()  # disease-status Observations of progression (date, source)
    unmapped: tuple[RecordIssue, ...] = ()         # codes we could not map (e.g. unknown medication)
    skipped: tuple[RecordIssue, ...] = ()          # resources that could not be read
    notes: tuple[RecordIssue, ...] = ()            # read, but say how (e.g. medication identified by name only)

    @property
    def hr_status(self) -> ReceptorStatus:
        """HR-positive if ER or PR is positive; negative only if both are known negative."""
        if ReceptorStatus.POSITIVE in (self.er.status, self.pr.status):
            return ReceptorStatus.POSITIVE
        if self.er.status == ReceptorStatus.NEGATIVE and self.pr.status == ReceptorStatus.NEGATIVE:
            return ReceptorStatus.NEGATIVE
        return ReceptorStatus.UNKNOWN


@dataclass(frozen=True)
class ClassHint:
    """What an unidentified medication probably is, and the known drugs it could then be.

    Why the candidates: a draft whose drug is unknown but whose class is known can still be checked as
    each drug of that class the roll-up table knows (its ATC group), so a card it would get is not lost."""

    what: str                        # "an anthracycline": said on cards and in record issues
    atc_groups: tuple[str, ...]      # the ATC group prefixes of the class
    candidates: tuple[Drug, ...]     # ingredients of the roll-up table in those groups (table order)
    broad: bool = False              # a whole therapy area (L01, L02): checked for label safety harms only


@dataclass(frozen=True)
class DraftOrder:
    """A drafted order from the hook context (order-select / order-sign)."""

    resource_id: str                 # "MedicationRequest/<id>" (the `resourceId` a delete action names)
    drugs: tuple[Drug, ...]          # empty when the medication could not be mapped
    display: str                     # what the order says it is (text / coding display)
    selected: bool = True            # in `selections` (or no selections given)
    unmapped: bool = False
    planned_start: dt.date | None = None   # contract "Draft timing": None when the draft states no start
    planned_end: dt.date | None = None     # None when the draft states no end
    probable_class: ClassHint | None = None   # an unmapped draft's likely class (ATC group / name stem)
