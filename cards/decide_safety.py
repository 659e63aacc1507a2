"""Safety and guideline checks (W1-W4, S5, S11, S12, P1): one Decision per topic, thresholds from knowledge.

A check about drafted orders fires only when one of the drafts it names is selected (order-select
`selections`; every draft on order-sign), but looks at the whole draft set for combinations.
"""
from __future__ import annotations

from typing import Sequence

from cards.decision import Decision, Fact, Proposal
from cards.facts import contraindication_facts, disease_facts, line_fact, lvef_facts, receptor_facts, therapy_facts
from cards.knowledge_base import Knowledge, RegimenEntry, SafetyCheck
from cards.picture import (ANTICANCER_CLASSES, TRIPLET, ClinicalPicture, draft_rxnorm, is_her2_agent,
                           is_unconjugated_trastuzumab)
from cards.topics import max_indicator
from fhir_mappings.model import (ANTHRACYCLINE, RX_PERTUZUMAB, RX_TDM1, RX_TDXD, TAXANE, DraftOrder, ReceptorStatus)


def _names(drafts: Sequence[DraftOrder]) -> str:
    return ", ".join(d.display or " + ".join(x.name for x in d.drugs) or d.resource_id for d in drafts)


def _draft_facts(drafts: Sequence[DraftOrder]) -> tuple[Fact, ...]:
    return tuple(Fact("Drafted order", d.display or " + ".join(x.name for x in d.drugs) or "unmapped medication",
                      None, (d.resource_id,)) for d in drafts)


def _any_selected(drafts: Sequence[DraftOrder]) -> bool:
    return any(d.selected for d in drafts)


def _has(d: DraftOrder, rxnorm: str) -> bool:
    return any(x.rxnorm == rxnorm for x in d.drugs)


def _has_class(d: DraftOrder, cls: str) -> bool:
    return any(cls in x.classes for x in d.drugs)


def _remove(drafts: Sequence[DraftOrder], what: str) -> Proposal:
    return Proposal(label=f"Remove the drafted {what}", remove=tuple(drafts))


def _replace(drafts: Sequence[DraftOrder], regimen: RegimenEntry | None) -> tuple[Proposal, ...]:
    if regimen is None:
        return ()
    return (Proposal(label=f"Replace with {regimen.name}", regimen=regimen, remove=tuple(drafts)),)


def _fmt(check: SafetyCheck, **values: object) -> str:
    return check.wording.format(**values)


def anthracycline(p: ClinicalPicture, drafts: Sequence[DraftOrder], k: Knowledge) -> Decision | None:
    """W1/W2: anthracycline with, or within 7 months of, unconjugated trastuzumab (ADCs not counted)."""
    anth = [d for d in drafts if _has_class(d, ANTHRACYCLINE)]
    tras = [d for d in drafts if any(is_unconjugated_trastuzumab(x) for x in d.drugs)]
    if not anth or not _any_selected(anth + tras):
        return None
    concurrent, washout = k.check("anthracycline-concurrent"), k.check("anthracycline-washout")
    t = p.summary.therapy
    days = p.days_since(t.last_trastuzumab_dose)
    findings, checks, indicator = [], [], None
    if tras:
        findings.append(f"Anthracycline ({_names(anth)}) drafted together with trastuzumab-based therapy ({_names(tras)}).")
    if t.trastuzumab_ongoing:
        findings.append("Trastuzumab-based therapy is ongoing (an active order or statement).")
    if days is not None and days <= concurrent.param("ongoing_window_days"):
        findings.append(f"Last trastuzumab-based dose {days} days ago (within "
                        f"{concurrent.param('ongoing_window_days'):g} days: still on therapy).")
    if findings:
        indicator, checks = concurrent.indicator, [concurrent]
        summary = _fmt(concurrent)
    elif days is not None and days <= washout.param("washout_days"):
        indicator, checks = washout.indicator, [washout]
        findings.append(f"Last trastuzumab-based dose {days} days ago, inside the {washout.param('washout_days'):g}-day "
                        "(7-month) washout; T-DM1/T-DXd doses are not counted.")
        summary = _fmt(washout, days=days)
    else:
        return None
    return Decision(
        topic="anthracycline-her2-cardiotoxicity", indicator=indicator, summary=summary,
        rules=tuple(c.rule for c in checks), findings=tuple(findings),
        facts=(*_draft_facts(anth + tras), *therapy_facts(p), *contraindication_facts(p), *lvef_facts(p)),
        proposals=(_remove(anth, "anthracycline order" + ("s" if len(anth) > 1 else "")),),
        about_drafts=True, check_ids=tuple(c.id for c in checks))


def ild(p: ClinicalPicture, drafts: Sequence[DraftOrder], k: Knowledge,
        recommended: RegimenEntry | None, safer: RegimenEntry | None) -> Decision | None:
    """W4 / S3: T-DXd drafted with ILD history (critical); T-DM1 drafted or recommended with ILD (warning)."""
    if not p.ild:
        return None
    tdxd = [d for d in drafts if _has(d, RX_TDXD)]
    tdm1 = [d for d in drafts if _has(d, RX_TDM1)]
    tdxd = tdxd if _any_selected(tdxd) else []
    tdm1 = tdm1 if _any_selected(tdm1) else []
    rec_tdm1 = recommended is not None and RX_TDM1 in recommended.rxnorm
    if not (tdxd or tdm1 or rec_tdm1):
        return None
    c_tdxd, c_tdm1 = k.check("ild-tdxd-draft"), k.check("ild-tdm1")
    findings, checks, proposals = [], [], []
    if tdxd:
        checks.append(c_tdxd)
        findings.append(f"T-DXd drafted ({_names(tdxd)}) for a patient with an ILD/pneumonitis history: "
                        "not recommended (project policy from the seed; the label has a boxed warning, not a contraindication).")
        proposals.append(_remove(tdxd, "T-DXd order"))
        proposals.extend(_replace(tdxd, safer))
    if tdm1 or rec_tdm1:
        checks.append(c_tdm1)
        what = f"T-DM1 drafted ({_names(tdm1)})" if tdm1 else "T-DM1 is the recommended next regimen"
        findings.append(f"{what} with an ILD/pneumonitis history: monitor for ILD; the T-DM1 label stops T-DM1 "
                        "permanently if ILD/pneumonitis is diagnosed.")
        if tdm1:
            proposals.append(_remove(tdm1, "T-DM1 order"))
    indicator = max_indicator(*(c.indicator for c in checks))
    rules = tuple(dict.fromkeys([c.rule for c in checks] + ([k.rules["W4"]] if not tdxd else [])))
    return Decision(
        topic="ild-pneumonitis", indicator=indicator, summary=_fmt(checks[0]), rules=rules,
        findings=tuple(findings), facts=(*_draft_facts(tdxd + tdm1), *contraindication_facts(p)),
        proposals=tuple(proposals), about_drafts=bool(tdxd or tdm1), check_ids=tuple(c.id for c in checks),
        source=checks[0].source)


def lvef(p: ClinicalPicture, drafts: Sequence[DraftOrder], k: Knowledge) -> Decision | None:
    """W3: LVEF overdue on HER2 therapy; latest below 50/40; drop of 10+ points from baseline.

    Overdue needs HER2 therapy now (or drafted); low values also count when HER2 therapy is about to be
    proposed (HER2-positive MBC), on every hook alike."""
    overdue, b50, b40, drop = (k.check(i) for i in ("lvef-overdue", "lvef-below-50", "lvef-below-40", "lvef-drop"))
    her2_drafts = [d for d in drafts if any(is_her2_agent(x) for x in d.drugs)]
    her2_drafts = her2_drafts if _any_selected(her2_drafts) else []
    on_therapy = p.on_her2_therapy(overdue.param("ongoing_window_days"))
    if not (on_therapy or her2_drafts or p.her2_positive_mbc):
        return None
    series = p.summary.lvef
    latest = series.latest
    fired: list[SafetyCheck] = []
    findings: list[str] = []
    summary = ""
    context = "on HER2-targeted therapy" if on_therapy else ("HER2-targeted agent drafted" if her2_drafts
                                                            else "HER2-targeted therapy proposed")
    if latest is not None and latest.value < b40.param("below_percent"):
        fired.append(b40)
        findings.append(f"Latest LVEF {latest.value:g}% ({latest.date.isoformat()}) is below {b40.param('below_percent'):g}%.")
        summary = _fmt(b40, value=f"{latest.value:g}")
    elif latest is not None and latest.value < b50.param("below_percent"):
        fired.append(b50)
        findings.append(f"Latest LVEF {latest.value:g}% ({latest.date.isoformat()}) is below {b50.param('below_percent'):g}%.")
        summary = _fmt(b50, value=f"{latest.value:g}")
    fall = series.drop_from_baseline
    if fall is not None and fall >= drop.param("drop_points"):
        fired.append(drop)
        findings.append(f"LVEF fell {fall:g} points from baseline ({series.baseline.value:g}% on "
                        f"{series.baseline.date.isoformat()} to {latest.value:g}%).")
        summary = summary or _fmt(drop, drop=f"{fall:g}", baseline=f"{series.baseline.value:g}", value=f"{latest.value:g}")
    if on_therapy or her2_drafts:
        age = p.days_since(latest.date) if latest else None
        if age is None or age > overdue.param("interval_days"):
            fired.append(overdue)
            findings.append(("No LVEF in the record" if age is None else f"Last LVEF {age} days ago")
                            + f" ({context}); LVEF is due every 3 months "
                            f"({overdue.param('interval_days'):g} days).")
            summary = summary or _fmt(overdue)
    if not fired:
        return None
    indicator = max_indicator(*(c.indicator for c in fired))
    warn_on_drafts = bool(her2_drafts) and indicator != "info"
    proposals = (_remove(her2_drafts, "HER2-targeted order" + ("s" if len(her2_drafts) > 1 else "")),) if warn_on_drafts else ()
    return Decision(
        topic="lvef-monitoring", indicator=indicator, summary=summary, rules=(overdue.rule,),
        findings=tuple(findings), facts=(*lvef_facts(p), *_draft_facts(her2_drafts), *contraindication_facts(p)),
        proposals=proposals, about_drafts=warn_on_drafts, check_ids=tuple(c.id for c in fired))


def her2_unknown(p: ClinicalPicture, k: Knowledge) -> Decision | None:
    """P1: breast cancer with missing / equivocal / unresolved HER2: say which test is missing."""
    s = p.summary
    if not s.breast_cancer.present or s.her2.status in (ReceptorStatus.POSITIVE, ReceptorStatus.NEGATIVE):
        return None
    check = k.check("her2-status-unknown")
    if s.her2.status == ReceptorStatus.EQUIVOCAL:
        missing = (f"HER2 is equivocal ({s.her2.detail or s.her2.method}): a reflex in-situ hybridisation (ISH/FISH, "
                   "HER2/CEP17 ratio) result is needed, or a repeat IHC on another specimen.")
    elif s.her2.conflict:
        missing = f"HER2 results conflict and could not be settled ({s.her2.reason}): review the pathology or retest."
    else:
        missing = ("No HER2 result in the record: a HER2 immunohistochemistry (IHC 0-3+) result, with reflex ISH "
                   "for IHC 2+, is needed on the primary or a metastatic biopsy.")
    findings = [missing, "No HER2-targeted regimen is proposed until HER2 status is known."]
    if s.her2.reason and not s.her2.conflict:
        findings.append(f"Mapping note: {s.her2.reason}")
    return Decision(topic="her2-status-unknown", indicator=check.indicator, summary=_fmt(check), rules=(check.rule,),
                    findings=tuple(findings), facts=(*receptor_facts(p), *disease_facts(p)), check_ids=(check.id,))


def blockade_gap(p: ClinicalPicture, drafts: Sequence[DraftOrder], k: Knowledge,
                 recommended: RegimenEntry | None) -> Decision | None:
    """S11: a drafted anticancer regimen for HER2+ MBC without any HER2 agent (anthracycline drafts excluded)."""
    if not p.her2_positive_mbc or not drafts:
        return None
    anticancer = [d for d in drafts if any(x.classes & ANTICANCER_CLASSES for x in d.drugs)]
    if not anticancer or not _any_selected(anticancer):
        return None
    if any(is_her2_agent(x) for d in drafts for x in d.drugs) or any(_has_class(d, ANTHRACYCLINE) for d in drafts):
        return None
    if p.active_her2_exposures:
        return None  # HER2 blockade continues through an active order; the draft adds to it
    check = k.check("her2-blockade-gap")
    return Decision(
        topic="her2-blockade-gap", indicator=check.indicator, summary=_fmt(check), rules=(check.rule,),
        findings=(f"Drafted ({_names(anticancer)}) without trastuzumab or another HER2-targeted agent for "
                  "HER2-positive metastatic disease, and no HER2-targeted therapy is active.",),
        facts=(*_draft_facts(anticancer), *receptor_facts(p), *therapy_facts(p)),
        proposals=(_remove(anticancer, "regimen without HER2 blockade"), *_replace(anticancer, recommended)),
        about_drafts=True, check_ids=(check.id,))


def first_line_restart(p: ClinicalPicture, drafts: Sequence[DraftOrder], k: Knowledge,
                       recommended: RegimenEntry | None) -> Decision | None:
    """S5: first-line pertuzumab + trastuzumab (+ taxane) drafted although the relapse came within the TFI."""
    if not p.her2_positive_mbc or not p.early_relapse or p.lines_given > 0:
        return None
    rx = draft_rxnorm(tuple(drafts))
    has_p = RX_PERTUZUMAB in rx
    has_t = any(is_unconjugated_trastuzumab(x) for d in drafts for x in d.drugs)
    thp = [d for d in drafts if _has(d, RX_PERTUZUMAB) or _has_class(d, TAXANE)
           or any(is_unconjugated_trastuzumab(x) for x in d.drugs)]
    if not (has_p and has_t) or not _any_selected(thp):
        return None
    check = k.check("first-line-restart")
    months = f"{p.tfi_months:.1f}"
    threshold = f"≤ {p.tfi_threshold:g} mo"
    return Decision(
        topic="first-line-restart", indicator=check.indicator,
        summary=_fmt(check, months=months, threshold=threshold), rules=(check.rule, k.rules["S1"]),
        findings=(f"Recurrence {months} months after the end of (neo)adjuvant HER2 therapy, within the "
                  f"{p.tfi_threshold:g}-month threshold ({p.tfi_policy.display}).",
                  f"First-line regimen drafted: {_names(thp)}. Follow the second-line recommendation instead."),
        facts=(*_draft_facts(thp), *therapy_facts(p), line_fact(p)),
        proposals=(_remove(thp, "first-line regimen"), *_replace(thp, recommended)),
        about_drafts=True, check_ids=(check.id,))


def tdxd_not_offered(p: ClinicalPicture, drafts: Sequence[DraftOrder], k: Knowledge) -> Decision | None:
    """S12: another HER2 regimen drafted at 2L+ while T-DXd was never given and is not contraindicated."""
    if not p.her2_positive_mbc or p.next_line < 2 or p.ild or p.received(RX_TDXD):
        return None
    her2 = [d for d in drafts if any(is_her2_agent(x) for x in d.drugs)]
    if not her2 or not _any_selected(her2) or any(_has(d, RX_TDXD) for d in drafts):
        return None
    rx = draft_rxnorm(tuple(drafts))
    if p.brain and TRIPLET <= rx:
        return None  # tucatinib triplet for brain metastases: exempt (S4)
    ongoing = p.ongoing_regimen
    her2_rx = draft_rxnorm(tuple(her2))
    if ongoing is not None and her2_rx <= ongoing.rxnorm:
        return None  # a re-order of the ongoing line, not a new later-line regimen
    check = k.check("tdxd-not-offered")
    return Decision(
        topic="tdxd-not-offered", indicator=check.indicator, summary=_fmt(check), rules=(check.rule, k.rules["S1"]),
        findings=(f"Drafted HER2 regimen ({_names(her2)}) for the {line_fact(p).value}; T-DXd was never given and no "
                  "ILD/pneumonitis history is recorded.",),
        facts=(*_draft_facts(her2), *therapy_facts(p), line_fact(p), *contraindication_facts(p)),
        proposals=(_remove(her2, "HER2 regimen"), *_replace(her2, k.regimens["tdxd"])),
        about_drafts=True, check_ids=(check.id,))


def safety_decisions(p: ClinicalPicture, drafts: Sequence[DraftOrder], k: Knowledge,
                     recommended: RegimenEntry | None, regimen_shown: bool) -> list[Decision]:
    """All safety/guideline decisions for this call (unordered; the renderer orders cards)."""
    safer_than_tdxd = recommended if recommended is not None and RX_TDXD not in recommended.rxnorm else (
        None if p.received(RX_TDM1) else k.regimens["tdm1"])
    out = [
        anthracycline(p, drafts, k),
        ild(p, drafts, k, recommended if regimen_shown else None, safer_than_tdxd),
        lvef(p, drafts, k),
        her2_unknown(p, k),
        blockade_gap(p, drafts, k, recommended),
    ]
    restart = first_line_restart(p, drafts, k, recommended)
    out.append(restart)
    if restart is None:
        out.append(tdxd_not_offered(p, drafts, k))
    return [d for d in out if d is not None]
