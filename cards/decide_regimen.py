"""Next-regimen decision for HER2-positive metastatic breast cancer (rules S1-S13, line plans in knowledge).

The line plan lists regimens in order of preference; this module only filters them by the record
(already received, contraindicated, not listed by policy) and picks the first eligible seed regimen.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cards.decision import Decision, Excluded, FactRow, Proposal
from cards.fact_rows import ordinal
from cards.knowledge_base import Knowledge, LinePlan, RegimenEntry, Rule
from cards.clinical_picture import ClinicalPicture
from cards.policy import Policy
from fhir_mappings.model import RX_TDM1, RX_TDXD, RX_TRASTUZUMAB, ReceptorStatus

# Findings a regimen's `requires` can name.
def _requirement_met(requirement: str, p: ClinicalPicture) -> bool:
    if requirement == "hr-positive":
        return p.summary.hr_status == ReceptorStatus.POSITIVE
    return False


def plan_for(p: ClinicalPicture, knowledge: Knowledge) -> LinePlan:
    if p.next_line <= 1:
        return knowledge.line_plans["first-line"]
    if p.received(RX_TDXD):
        # after T-DXd (e.g. first-line T-DXd + pertuzumab, DESTINY-Breast09): the tucatinib triplet leads,
        # T-DM1 and the chemotherapy-free / trastuzumab-chemotherapy options are the alternatives (S9)
        return knowledge.line_plans["after-tdxd"]
    if p.next_line == 2:
        return knowledge.line_plans["second-line-brain" if p.brain else "second-line"]
    return knowledge.line_plans["later-line"]


def progressed_on(p: ClinicalPicture) -> dict[str, str]:
    """RxNorm -> the metastatic line it progressed on, for every agent of a progressed line except the
    trastuzumab backbone (continued beyond progression, S11)."""
    out: dict[str, str] = {}
    for i, line in enumerate(p.lines, start=1):
        if not line.progressed:
            continue
        for e in line.exposures:
            if e.drug.rxnorm != RX_TRASTUZUMAB and not e.drug.unconjugated_trastuzumab:
                out.setdefault(e.drug.rxnorm, f"metastatic line {i} ({line.start.isoformat() if line.start else '?'})")
    return out


def exclusion_reason(regimen: RegimenEntry, p: ClinicalPicture, policy: Policy, failed: dict[str, str]) -> str | None:
    """Why the regimen is not offered, or None. `failed`: `progressed_on(p)`, made once for all candidates."""
    for c in regimen.components:
        if c.drug.rxnorm in failed:
            return (f"not offered again: the disease progressed on {c.drug.label} ({failed[c.drug.rxnorm]}); "
                    "a regimen or its chemotherapy/TKI partner is not repeated after progression")
    if "ild" in regimen.contraindicated_by and p.ild:
        refs = ", ".join(c.source for c in p.summary.ild)
        return f"not offered: interstitial lung disease / pneumonitis history ({refs}); not recommended with an ILD history (project policy; the label has a boxed warning)"
    for drug in regimen.exclude_if_received:
        if p.received(drug.rxnorm):
            exp = p.exposures_of(drug.rxnorm)
            where = ", ".join(f"{e.source} from {e.start.isoformat() if e.start else '?'}" for e in exp)
            return f"not offered again: {drug.label} already received" + (f" ({where})" if where else "")
    if regimen.status == "later-evidence" and not policy.list_post_seed_regimens:
        return "later evidence; not listed by configuration (HER2CDS_LIST_POST_SEED_REGIMENS=false)"
    return None


def choose(plan: LinePlan, p: ClinicalPicture, policy: Policy) -> tuple[list[RegimenEntry], list[Excluded],
                                                                         list[RegimenEntry]]:
    eligible, excluded, named = [], [], []
    failed = progressed_on(p)
    for regimen in plan.candidates:
        if not all(_requirement_met(r, p) for r in regimen.requires):
            continue
        if not regimen.orderable:
            named.append(regimen)
            continue
        reason = exclusion_reason(regimen, p, policy, failed)
        if reason:
            excluded.append(Excluded(regimen, reason))
        else:
            eligible.append(regimen)
    return eligible, excluded, named


@dataclass(frozen=True)
class RegimenChoice:
    """What the line plan offers this record: the plan, the preferred seed regimen first and then the other
    eligible ones, the excluded ones with their reasons, and those only named. Every hook needs the preferred
    regimen (the safety cards propose it as the replacement); only a shown next-regimen card needs the rest
    worded (`regimen_decision`)."""

    plan: LinePlan
    ordered: tuple[RegimenEntry, ...]
    excluded: tuple[Excluded, ...]
    named: tuple[RegimenEntry, ...]

    @property
    def preferred(self) -> RegimenEntry:
        return self.ordered[0]


def choose_regimen(p: ClinicalPicture, knowledge: Knowledge, policy: Policy) -> RegimenChoice | None:
    """The regimens the next-regimen card would offer, or None when the algorithm does not apply (stay quiet)."""
    if not p.regimen_list_applies:
        return None     # HER2 unknown or discordant: confirm first; pregnancy: the regimen list does not apply
    plan = plan_for(p, knowledge)
    eligible, excluded, named = choose(plan, p, policy)
    seed = [r for r in eligible if r.status == "seed"]
    if not seed and plan.id != "later-line":
        # everything in this line was used up or is contraindicated: fall through to the later-line plan
        plan = knowledge.line_plans["later-line"]
        eligible, more_excluded, named = choose(plan, p, policy)
        excluded += [e for e in more_excluded if e not in excluded]
        seed = [r for r in eligible if r.status == "seed"]
    if not seed:
        return None
    preferred = seed[0]
    ordered = (preferred, *(r for r in eligible if r is not preferred))
    return RegimenChoice(plan, ordered, tuple(excluded), tuple(named))


def decide_regimen(p: ClinicalPicture, knowledge: Knowledge, policy: Policy) -> Decision | None:
    """The her2-next-regimen decision, or None when the algorithm does not apply (stay quiet)."""
    choice = choose_regimen(p, knowledge, policy)
    return None if choice is None else regimen_decision(p, choice, knowledge)


def regimen_decision(p: ClinicalPicture, choice: RegimenChoice, knowledge: Knowledge) -> Decision:
    """The her2-next-regimen card's decision for this choice: summary, findings, notes, rules and facts."""
    plan, ordered, excluded, named = choice.plan, list(choice.ordered), choice.excluded, choice.named
    preferred = choice.preferred
    proposals = tuple(Proposal(label=_label(r, r is preferred), regimen=r, recommended=r is preferred) for r in ordered)

    line = ordinal(p.next_line)
    alternatives = [r for r in ordered[1:]]
    cardiac, indicator = _cardiac(p, knowledge)
    prefix = f"{cardiac}: " if cardiac else ""
    if p.current_line_ongoing:
        summary = f"{prefix}Plan at progression ({line} line, HER2+ MBC): {preferred.name}"
    else:
        summary = f"{prefix}{line.capitalize()}-line HER2+ MBC: {preferred.name} recommended"
    summary = fit_summary(summary, [_short(r) for r in alternatives])
    findings = [_framing(p, plan.title)]
    if p.progression and not p.current_line_ongoing:
        findings.append("Documented progression: " + "; ".join(p.progression) + ".")
    rules = list(plan.rules)
    if cardiac:
        hf = "; ".join(f"{c.display or c.code} ({c.source})" for c in p.heart_failure)
        latest = p.summary.lvef.latest
        findings.append(f"Cardiac caution: {cardiac}" + (f" - active heart failure: {hf}" if hf else "")
                        + (f"; latest LVEF {latest.value:g}% on {latest.date.isoformat()}" if latest else "")
                        + ". HER2-targeted agents can cause cardiac failure: cardio-oncology review and LVEF "
                          "monitoring before and during the next regimen.")
        rules.append(knowledge.rules["W5"])
    label_notes = _label_notes(p, ordered)
    if label_notes:
        rules.append(knowledge.rules["P3"])
    if p.early_relapse:
        rules.insert(0, knowledge.rules["S5"])
    if any("ild" in e.regimen.contraindicated_by for e in excluded) and p.ild:
        rules.insert(0, knowledge.rules["S3"])   # the card's source is then the ILD rule
    notes = [*label_notes, _hr_note(p, knowledge), _rule_note(knowledge, "S11")]
    if p.current_line_ongoing:
        notes.insert(0, "The current metastatic line is ongoing with no documented progression: this is the plan "
                        "at progression, not a reason to stop the current regimen (continue until progression "
                        "or unacceptable toxicity).")
    if p.tfi_months is None and p.summary.therapy.early_her2_end is not None:
        notes.append("The treatment-free interval could not be computed (no metastatic diagnosis date): check the "
                     "interval since adjuvant HER2 therapy by hand before following this line.")
    if p.summary.her2.conflict:
        notes.append(f"HER2 results conflict; the record was read as positive: {p.summary.her2.reason or 'see sources'}.")
    notes.append(_investigational_note(knowledge.investigational))
    facts: list[FactRow] = [*p.receptor_rows, *p.disease_rows, *p.therapy_rows, p.line_row,
                         *p.contraindication_rows, *p.lvef_rows]
    return Decision(
        topic="her2-next-regimen", indicator=indicator, summary=summary, rules=tuple(dict.fromkeys(rules)),
        findings=tuple(findings), facts=tuple(facts), notes=tuple(n for n in notes if n), proposals=proposals,
        excluded=excluded, named_only=named)


def _cardiac(p: ClinicalPicture, knowledge: Knowledge) -> tuple[str, str]:
    """(the cardiac problem named in the summary, indicator): heart failure or a latest LVEF below 50%
    raises the card to a warning, below 40% to critical (contract v2; the LVEF checks' thresholds)."""
    low, very_low = (knowledge.check(c).param("below_percent") for c in ("lvef-below-50", "lvef-below-40"))
    latest = p.summary.lvef.latest
    parts = []
    if p.heart_failure:
        parts.append("Heart failure")
    if latest is not None and latest.value < low:
        parts.append(f"LVEF {latest.value:g}%")
    if not parts:
        return "", "info"
    return ", ".join(parts), "critical" if latest is not None and latest.value < very_low else "warning"


def _label_notes(p: ClinicalPicture, regimens: list[RegimenEntry]) -> list[str]:
    """Label wording versus guideline (P3): an early relapse treated as second line rests on the guideline."""
    if not (p.early_relapse and p.lines_given == 0 and p.tfi_months is not None):
        return []
    rx = set().union(*(r.rxnorm for r in regimens)) if regimens else set()
    notes = []
    if p.tfi_months > 6 and rx & {RX_TDXD, RX_TDM1}:
        notes.append(f"Label versus guideline: the T-DXd and T-DM1 US labels cover recurrence during or within 6 months "
                     f"of completing adjuvant therapy; at {p.tfi_months:.1f} months this choice is guideline-based, "
                     "outside the label wording.")
    if any(r.rxnorm >= {"2361285", RX_TRASTUZUMAB, "194000"} for r in regimens):
        notes.append("Label versus guideline: the tucatinib US label covers patients after at least one prior "
                     "anti-HER2-based regimen in the metastatic setting; at early relapse the tucatinib triplet is "
                     "guideline-based, outside the label wording.")
    return notes


def fit_summary(base: str, alternatives: list[str], limit: int = 139) -> str:
    """Add as many alternatives as fit under the CDS Hooks summary limit ("+N more" for the rest)."""
    for n in range(len(alternatives), 0, -1):
        rest = len(alternatives) - n
        text = f"{base}; alternatives: {', '.join(alternatives[:n])}" + (f" +{rest} more" if rest else "")
        if len(text) <= limit:
            return text
    return base if len(base) <= limit else base[: limit - 1] + "…"


@lru_cache(maxsize=1024)      # knowledge regimens only (no patient data): worded once per process
def _short(r: RegimenEntry) -> str:
    return " + ".join(c.drug.short or c.drug.name for c in r.components)


@lru_cache(maxsize=1024)      # knowledge regimens only (no patient data): worded once per process
def _label(r: RegimenEntry, preferred: bool) -> str:
    tag = "recommended" if preferred else ("alternative, later evidence" if r.status == "later-evidence" else "alternative")
    return f"Order {r.name} ({tag})"


def _framing(p: ClinicalPicture, plan_title: str) -> str:
    if p.next_line == 1:
        if p.summary.therapy.early_her2_end is not None and p.tfi_months is not None:
            return (f"{plan_title}: recurrence {p.tfi_months:.1f} months after (neo)adjuvant HER2 therapy, beyond the "
                    f"{p.tfi_threshold:g}-month threshold ({p.tfi_policy.display}), so first-line therapy is restarted.")
        return f"{plan_title}: no metastatic-line therapy recorded (de novo or late recurrence)."
    if p.early_relapse and p.lines_given == 0:
        return (f"{plan_title}: recurrence {p.tfi_months:.1f} months after (neo)adjuvant HER2 therapy, within the "
                f"{p.tfi_threshold:g}-month threshold ({p.tfi_policy.display}): treated as second line.")
    state = "ongoing" if p.current_line_ongoing else "ended or progressed"
    return f"{plan_title}: {p.lines_given} metastatic line(s) recorded, the latest {state}."


def _hr_note(p: ClinicalPicture, knowledge: Knowledge) -> str:
    hr = p.summary.hr_status
    if hr == ReceptorStatus.POSITIVE:
        return _positive_hr_note(knowledge.rules["S7"])
    if hr == ReceptorStatus.NEGATIVE:
        return _negative_hr_note(knowledge.rules["S8"])
    return "HR status unknown in the record: whether endocrine therapy has a role cannot be judged."


# The notes below are knowledge text only (no patient data): worded once per process.
@lru_cache(maxsize=64)
def _positive_hr_note(rule: Rule) -> str:
    return f"HR-positive: {rule.statement} The proposed regimen does not change."


@lru_cache(maxsize=64)
def _negative_hr_note(rule: Rule) -> str:
    return f"HR-negative: {rule.statement}"


def _rule_note(knowledge: Knowledge, rule_id: str) -> str:
    return _titled_statement(knowledge.rules[rule_id])


@lru_cache(maxsize=64)
def _titled_statement(rule: Rule) -> str:
    return f"{rule.title}: {rule.statement}"


@lru_cache(maxsize=64)
def _investigational_note(regimens: tuple[RegimenEntry, ...]) -> str:
    return f"Not recommended outside clinical trials: {', '.join(r.name for r in regimens)}."
