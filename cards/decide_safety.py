"""Safety and guideline checks (W1-W4, S5, S11, S12, P1): one Decision per topic, thresholds from knowledge.

A check about drafted orders fires only when one of the drafts it names is selected (order-select
`selections`; every draft on order-sign), but looks at the whole draft set for combinations.
"""
from __future__ import annotations

from typing import Sequence

from cards.decide_unidentified import with_unidentified_drafts
from cards.decision import Decision, FactRow, Proposal
from cards.knowledge_base import Knowledge, RegimenEntry, SafetyCheck
from cards.clinical_picture import (ANTICANCER_CLASSES, CHEMO_CLASSES, TRIPLET, ClinicalPicture, draft_rxnorm,
                                    is_her2_agent, is_unconjugated_trastuzumab)
from cards.topics import INDICATOR_RANK, max_indicator
from fhir_mappings.model import (ANTHRACYCLINE, HER2_ADC, HER2_ANTIBODY, RX_CAPECITABINE, RX_PERTUZUMAB, RX_TDM1,
                                 RX_TDXD, TAXANE, DraftOrder, ReceptorStatus)


def _names(drafts: Sequence[DraftOrder]) -> str:
    return ", ".join(d.display or " + ".join(x.name for x in d.drugs) or d.resource_id for d in drafts)


def _draft_facts(drafts: Sequence[DraftOrder]) -> tuple[FactRow, ...]:
    return tuple(FactRow("Drafted order", d.display or " + ".join(x.name for x in d.drugs) or "unmapped medication",
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


def _period(d: DraftOrder) -> str:
    return f"{d.planned_start.isoformat() if d.planned_start else '?'} to {d.planned_end.isoformat() if d.planned_end else '?'}"


def draft_timing(anth: Sequence[DraftOrder], tras: Sequence[DraftOrder]) -> str:
    """'sequential' when every anthracycline draft ends before every trastuzumab-based draft starts,
    'overlap' when the stated timing overlaps, 'unstated' when a needed start or end is missing
    (contract v2, Draft timing: such a draft starts now and runs on)."""
    ends = [d.planned_end for d in anth]
    starts = [d.planned_start for d in tras]
    if any(x is None for x in ends + starts):
        return "unstated"
    return "sequential" if max(ends) < min(starts) else "overlap"   # type: ignore[type-var]


def sequential_plan(drafts: Sequence[DraftOrder]) -> tuple[list[DraftOrder], list[DraftOrder]] | None:
    """(anthracycline drafts, trastuzumab-based drafts) of a sequential AC-then-trastuzumab plan, or None."""
    anth = [d for d in drafts if _has_class(d, ANTHRACYCLINE)]
    if not anth:
        return None
    tras = [d for d in drafts if any(is_unconjugated_trastuzumab(x) for x in d.drugs)]
    if tras and _any_selected(anth + tras) and draft_timing(anth, tras) == "sequential":
        return anth, tras
    return None
    return None


def anthracycline_regimen(anth: Sequence[DraftOrder], drafts: Sequence[DraftOrder]) -> list[DraftOrder]:
    """The anthracycline drafts and their chemotherapy partners (e.g. the cyclophosphamide of AC/EC):
    non-HER2, non-taxane chemotherapy drafts (capecitabine excepted) that start with the anthracycline
    when both state a start."""
    out = list(anth)
    starts = {d.planned_start for d in anth}
    for d in drafts:
        if d in out or not d.drugs or any(is_her2_agent(x) or TAXANE in x.classes or x.rxnorm == RX_CAPECITABINE
                                          for x in d.drugs):
            continue
        if not all(x.classes & CHEMO_CLASSES for x in d.drugs):
            continue
        if d.planned_start is not None and None not in starts and d.planned_start not in starts:
            continue
        out.append(d)
    return out


def anthracycline(p: ClinicalPicture, drafts: Sequence[DraftOrder], k: Knowledge) -> Decision | None:
    """W1/W2: anthracycline with, or within 7 months of, unconjugated trastuzumab; a sequential plan
    (AC then THP) is not co-use; with an antibody-drug conjugate (T-DM1, T-DXd): warning."""
    anth = [d for d in drafts if _has_class(d, ANTHRACYCLINE)]
    if not anth:
        return None
    tras = [d for d in drafts if any(is_unconjugated_trastuzumab(x) for x in d.drugs)]
    adc = [d for d in drafts if _has_class(d, HER2_ADC)]
    if not _any_selected(anth + tras + adc):
        return None
    concurrent, washout = k.check("anthracycline-concurrent"), k.check("anthracycline-washout")
    untimed, with_adc = k.check("anthracycline-untimed"), k.check("anthracycline-adc")
    window = concurrent.param("ongoing_window_days")
    t = p.summary.therapy
    days = p.days_since(t.last_trastuzumab_dose)
    active = [e for e in t.exposures if e.ongoing and e.drug.unconjugated_trastuzumab]
    fired: list[tuple] = []                       # (check, finding, summary)
    if active:
        refs = ", ".join(dict.fromkeys(e.source for e in active))
        fired.append((concurrent, f"Trastuzumab-based therapy is ongoing: an active order or statement ({refs}).",
                      _fmt(concurrent)))
    elif days is not None and days <= window:
        fired.append((concurrent, f"Last trastuzumab-based dose {days} days ago (within {window:g} days: still on "
                                  "therapy).", _fmt(concurrent)))
    if tras and not fired:
        timing = draft_timing(anth, tras)
        if timing == "overlap":
            fired.append((concurrent, f"Anthracycline ({_names(anth)}, planned {', '.join(_period(d) for d in anth)}) "
                                      f"overlaps trastuzumab-based therapy ({_names(tras)}, planned "
                                      f"{', '.join(_period(d) for d in tras)}).", _fmt(concurrent)))
        elif timing == "unstated":
            fired.append((untimed, f"Anthracycline ({_names(anth)}) drafted together with trastuzumab-based therapy "
                                   f"({_names(tras)}) without a stated start and end for each: confirm that "
                                   "trastuzumab starts after the last anthracycline dose (sequential, as in AC then "
                                   "THP), never concurrently.", _fmt(untimed)))
    if not any(c is concurrent for c, _, _ in fired) and days is not None and days <= washout.param("washout_days"):
        fired.append((washout, f"Last trastuzumab-based dose {days} days ago, inside the "
                               f"{washout.param('washout_days'):g}-day (7-month) washout; T-DM1/T-DXd doses are not "
                               "counted.", _fmt(washout, days=days)))
    adc_ongoing = p.drug_ongoing(lambda x: HER2_ADC in x.classes, with_adc.param("ongoing_window_days"))
    if adc or adc_ongoing:
        what = f"drafted ({_names(adc)})" if adc else "ongoing (" + ", ".join(dict.fromkeys(e.source for e in adc_ongoing)) + ")"
        fired.append((with_adc, f"T-DM1/T-DXd {what} with an anthracycline ({_names(anth)}): both are cardiotoxic.",
                      _fmt(with_adc)))
    if not fired:
        return None
    top = max(fired, key=lambda f: INDICATOR_RANK[f[0].indicator])
    regimen = anthracycline_regimen(anth, drafts)
    label = "Remove the anthracycline regimen: " + _names(regimen)
    return Decision(
        topic="anthracycline-her2-cardiotoxicity", indicator=top[0].indicator, summary=top[2],
        rules=tuple(dict.fromkeys(c.rule for c, _, _ in fired)), findings=tuple(f for _, f, _ in fired),
        facts=(*_draft_facts(regimen + [d for d in tras + adc if d not in regimen]), *p.therapy_rows,
               *p.contraindication_rows, *p.lvef_rows),
        proposals=(Proposal(label=label[:200], remove=tuple(regimen)),),
        about_drafts=True, check_ids=tuple(dict.fromkeys(c.id for c, _, _ in fired)))


def ild(p: ClinicalPicture, drafts: Sequence[DraftOrder], k: Knowledge,
        recommended: RegimenEntry | None, safer: RegimenEntry | None) -> Decision | None:
    """W4 / S3: T-DXd drafted with ILD history (critical); ILD recorded while T-DXd is ongoing (critical:
    the label says to interrupt); T-DM1 drafted or recommended, or T-DXd/T-DM1 ongoing, with ILD (warning)."""
    if not p.ild:
        return None
    tdxd = [d for d in drafts if _has(d, RX_TDXD)]
    tdm1 = [d for d in drafts if _has(d, RX_TDM1)]
    tdxd = tdxd if _any_selected(tdxd) else []
    tdm1 = tdm1 if _any_selected(tdm1) else []
    rec_tdm1 = recommended is not None and RX_TDM1 in recommended.rxnorm
    c_tdxd, c_tdm1 = k.check("ild-tdxd-draft"), k.check("ild-tdm1")
    c_on_tdxd, c_on_adc = k.check("ild-tdxd-ongoing"), k.check("ild-adc-ongoing")
    on_tdxd = p.drug_ongoing(lambda x: x.rxnorm == RX_TDXD, c_on_tdxd.param("ongoing_window_days"))
    on_adc = p.drug_ongoing(lambda x: x.rxnorm in (RX_TDXD, RX_TDM1), c_on_adc.param("ongoing_window_days"))
    tdxd_start = min((e.start for e in p.exposures_of(RX_TDXD) if e.start), default=None)
    ild_on_tdxd = [c for c in p.summary.ild if on_tdxd and tdxd_start and c.onset and c.onset >= tdxd_start]
    if not (tdxd or tdm1 or rec_tdm1 or on_adc):
        return None
    findings, checks, proposals = [], [], []
    if ild_on_tdxd:
        checks.append(c_on_tdxd)
        findings.append(f"ILD/pneumonitis recorded on {ild_on_tdxd[-1].onset.isoformat()} "
                        f"({ild_on_tdxd[-1].source}) while T-DXd is ongoing: the label says to interrupt T-DXd "
                        "(permanently discontinue for symptomatic ILD).")
    elif on_adc:
        checks.append(c_on_adc)
        refs = ", ".join(dict.fromkeys(e.source for e in on_adc))
        findings.append(f"T-DXd/T-DM1 is ongoing ({refs}) for a patient with an ILD/pneumonitis history: monitor "
                        "closely; the labels interrupt or stop the drug if ILD/pneumonitis is diagnosed.")
    if tdxd:
        checks.append(c_tdxd)
        findings.append(f"T-DXd drafted ({_names(tdxd)}) for a patient with an ILD/pneumonitis history: "
                        "not recommended (project policy from the seed; the label has a boxed warning, not a contraindication).")
        proposals.extend(_replace(tdxd, safer))
        proposals.append(_remove(tdxd, "T-DXd order"))
    if tdm1 or rec_tdm1:
        checks.append(c_tdm1)
        what = f"T-DM1 drafted ({_names(tdm1)})" if tdm1 else "T-DM1 is the recommended next regimen"
        findings.append(f"{what} with an ILD/pneumonitis history: monitor for ILD; the T-DM1 label stops T-DM1 "
                        "permanently if ILD/pneumonitis is diagnosed.")
        if tdm1:
            proposals.append(_remove(tdm1, "T-DM1 order"))
    checks.sort(key=lambda c: -INDICATOR_RANK[c.indicator])
    indicator = checks[0].indicator
    rules = tuple(dict.fromkeys([c.rule for c in checks] + ([k.rules["W4"]] if not tdxd else [])))
    return Decision(
        topic="ild-pneumonitis", indicator=indicator, summary=_fmt(checks[0]), rules=rules,
        findings=tuple(findings), facts=(*_draft_facts(tdxd + tdm1), *p.therapy_rows, *p.contraindication_rows),
        proposals=tuple(proposals), about_drafts=bool(tdxd or tdm1), check_ids=tuple(c.id for c in checks),
        source=checks[0].source)


def _withhold(p: ClinicalPicture, drafts: Sequence[DraftOrder], k: Knowledge) -> tuple[str, float] | None:
    """(drug, fall) when a HER2-targeted agent drafted or ongoing is in its label's withhold zone."""
    check = k.check("lvef-withhold")
    latest, fall = p.summary.lvef.latest, p.lvef_drop
    if latest is None or fall is None:
        return None
    window = k.check("lvef-overdue").param("ongoing_window_days")

    def given(match) -> bool:
        return any(match(x) for d in drafts if d.selected for x in d.drugs) or bool(p.drug_ongoing(match, window))

    if fall >= check.param("trastuzumab_drop_points") and given(is_unconjugated_trastuzumab):
        return "trastuzumab", fall
    if (p.summary.metastatic.metastatic and fall >= check.param("pertuzumab_drop_points")
            and check.param("pertuzumab_low_percent") <= latest.value <= check.param("pertuzumab_high_percent")
            and given(lambda x: x.rxnorm == RX_PERTUZUMAB)):
        return "pertuzumab", fall
    return None


def lvef(p: ClinicalPicture, drafts: Sequence[DraftOrder], k: Knowledge) -> Decision | None:
    """W3: LVEF overdue on HER2 therapy; latest below 50/40; drop of 10+ points from baseline (the last
    LVEF before the current HER2-directed therapy began); a label's withhold zone (critical); a sequential
    anthracycline-then-trastuzumab plan (an LVEF before the first trastuzumab-based dose).

    Overdue needs HER2 therapy now (or drafted); low values also count when HER2 therapy is about to be
    proposed (HER2-positive MBC), on every hook alike."""
    overdue, b50, b40, drop = (k.check(i) for i in ("lvef-overdue", "lvef-below-50", "lvef-below-40", "lvef-drop"))
    withhold, before_tras = k.check("lvef-withhold"), k.check("lvef-before-trastuzumab")
    her2_drafts = [d for d in drafts if any(is_her2_agent(x) for x in d.drugs)]
    her2_drafts = her2_drafts if _any_selected(her2_drafts) else []
    sequential = sequential_plan(drafts)
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
    zone = _withhold(p, her2_drafts, k)
    if zone is not None and latest is not None:
        drug, fall = zone
        fired.append(withhold)
        findings.append(f"Latest LVEF {latest.value:g}% ({latest.date.isoformat()}), {fall:g} points below the "
                        f"baseline {p.lvef_baseline.value:g}% ({p.lvef_baseline.date.isoformat()}): the {drug} label "
                        "says to withhold it and repeat the LVEF.")
        summary = _fmt(withhold, value=f"{latest.value:g}", drop=f"{fall:g}", drug=drug)
    if latest is not None and latest.value < b40.param("below_percent"):
        fired.append(b40)
        findings.append(f"Latest LVEF {latest.value:g}% ({latest.date.isoformat()}) is below {b40.param('below_percent'):g}%.")
        summary = summary or _fmt(b40, value=f"{latest.value:g}")
    elif latest is not None and latest.value < b50.param("below_percent"):
        fired.append(b50)
        findings.append(f"Latest LVEF {latest.value:g}% ({latest.date.isoformat()}) is below {b50.param('below_percent'):g}%.")
        summary = summary or _fmt(b50, value=f"{latest.value:g}")
    fall = p.lvef_drop
    if fall is not None and fall >= drop.param("drop_points") and zone is None:
        fired.append(drop)
        findings.append(f"LVEF fell {fall:g} points from baseline ({p.lvef_baseline.value:g}% on "
                        f"{p.lvef_baseline.date.isoformat()}, {p.lvef_baseline_label}, "
                        f"to {latest.value:g}%).")
        summary = summary or _fmt(drop, drop=f"{fall:g}", baseline=f"{p.lvef_baseline.value:g}", value=f"{latest.value:g}")
    if on_therapy or her2_drafts:
        age = p.days_since(latest.date) if latest else None
        if age is None or age > overdue.param("interval_days"):
            fired.append(overdue)
            findings.append(("No LVEF in the record" if age is None else f"Last LVEF {age} days ago")
                            + f" ({context}); LVEF is due every 3 months "
                            f"({overdue.param('interval_days'):g} days).")
            summary = summary or _fmt(overdue)
    if sequential is not None:
        anth, tras = sequential
        first = min(d.planned_start for d in tras if d.planned_start)
        fired.append(before_tras)
        findings.append(f"Sequential plan: the anthracycline ({_names(anth)}) ends before trastuzumab-based therapy "
                        f"({_names(tras)}) starts on {first.isoformat()}: measure LVEF after the anthracycline and "
                        "before the first trastuzumab-based dose.")
        summary = summary or _fmt(before_tras)
    if not fired:
        return None
    indicator = max_indicator(*(c.indicator for c in fired))
    warn_on_drafts = bool(her2_drafts) and indicator != "info"
    proposals = (_remove(her2_drafts, "HER2-targeted order" + ("s" if len(her2_drafts) > 1 else "")),) if warn_on_drafts else ()
    return Decision(
        topic="lvef-monitoring", indicator=indicator, summary=summary, rules=(overdue.rule,),
        findings=tuple(findings), facts=(*p.lvef_rows, *_draft_facts(her2_drafts), *p.contraindication_rows),
        proposals=proposals, about_drafts=warn_on_drafts, check_ids=tuple(c.id for c in fired),
        source=withhold.source if zone is not None else None)


def her2_unknown(p: ClinicalPicture, drafts: Sequence[DraftOrder], k: Knowledge) -> Decision | None:
    """P1: metastatic or recurrent breast cancer with missing / equivocal / unresolved HER2, or a
    HER2-targeted agent drafted at any stage with no positive HER2 result on record."""
    s = p.summary
    undetermined = s.her2.status not in (ReceptorStatus.POSITIVE, ReceptorStatus.NEGATIVE)
    metastatic_case = s.breast_cancer.present and s.metastatic.metastatic and undetermined
    if not metastatic_case and (p.any_positive_her2 or p.residual_her2_loss):
        return None     # no metastatic case, and a HER2 draft is no draft case either: the drafts need no look
    her2_drafts = [d for d in drafts if any(is_her2_agent(x) for x in d.drugs)]
    her2_drafts = her2_drafts if _any_selected(her2_drafts) else []
    draft_case = bool(her2_drafts) and not p.any_positive_her2 and not p.residual_her2_loss
    if not (metastatic_case or draft_case):
        return None
    check = k.check("her2-status-unknown")
    if s.her2.status == ReceptorStatus.EQUIVOCAL:
        missing = (f"HER2 is equivocal ({s.her2.detail or s.her2.method}): a reflex in-situ hybridisation (ISH/FISH, "
                   "HER2/CEP17 ratio) result is needed, or a repeat IHC on another specimen.")
    elif s.her2.conflict and undetermined:
        missing = f"HER2 results conflict and could not be settled ({s.her2.reason}): review the pathology or retest."
    elif s.her2.status == ReceptorStatus.NEGATIVE:
        missing = f"The HER2 result on record is negative ({s.her2.detail or s.her2.method}, {s.her2.date or 'undated'})."
    else:
        missing = ("No HER2 result in the record: a HER2 immunohistochemistry (IHC 0-3+) result, with reflex ISH "
                   "for IHC 2+, is needed on the primary or a metastatic biopsy.")
    findings = [missing]
    if draft_case:
        findings.append(f"HER2-targeted agent drafted ({_names(her2_drafts)}) with no positive HER2 result on record: "
                        "the labels require HER2 testing (IHC 3+ or ISH amplified) before HER2-targeted therapy.")
    if metastatic_case:
        findings.append("No HER2-targeted regimen is proposed until HER2 status is known.")
    if s.her2.reason and not s.her2.conflict and undetermined:
        findings.append(f"Mapping note: {s.her2.reason}")
    return Decision(topic="her2-status-unknown", indicator=check.indicator, summary=_fmt(check), rules=(check.rule,),
                    findings=tuple(findings), facts=(*_draft_facts(her2_drafts), *p.receptor_rows, *p.disease_rows),
                    about_drafts=draft_case, check_ids=(check.id,))


def her2_discordant(p: ClinicalPicture, k: Knowledge) -> Decision | None:
    """P2: HER2-positive on an earlier specimen, negative on the latest, in metastatic or recurrent disease."""
    s, d = p.summary, p.discordance
    if d is None or not (s.breast_cancer.present and s.metastatic.metastatic):
        return None
    check = k.check("her2-status-discordant")

    def result(r) -> str:
        specimen = f", specimen: {r.specimen.rstrip('. ')}" if r.specimen else ", specimen not named in the record"
        return f"{r.status.value} ({r.detail}) on {r.date.isoformat() if r.date else 'an unknown date'}, {r.source}{specimen}"

    bone = any(site.site == "bone" for site in s.metastatic.sites)
    findings = [f"Earlier specimen: HER2 {result(d.earlier)}.",
                f"Most recent specimen: HER2 {result(d.latest)} (HER2-low counts as negative here).",
                "Confirm HER2 before choosing therapy: retest the specimen or re-biopsy"
                + ("; decalcified bone specimens are unreliable for HER2." if bone else
                   " (decalcified bone specimens are unreliable)."),
                "Guidelines accept HER2-directed therapy when at least one adequate biopsy was HER2-positive; no "
                "next-regimen card is issued while the record is discordant."]
    return Decision(topic="her2-status-discordant", indicator=check.indicator, summary=_fmt(check),
                    rules=(check.rule,), findings=tuple(findings), facts=(*p.receptor_rows, *p.disease_rows),
                    check_ids=(check.id,))


def heart_failure(p: ClinicalPicture, drafts: Sequence[DraftOrder], k: Knowledge) -> Decision | None:
    """W5: active heart-failure diagnosis and a HER2-targeted agent or an anthracycline drafted (order hooks;
    on patient-view the next-regimen card carries it)."""
    if not p.heart_failure:
        return None
    her2 = [d for d in drafts if any(is_her2_agent(x) for x in d.drugs)]
    anth = [d for d in drafts if _has_class(d, ANTHRACYCLINE)]
    her2, anth = (her2 if _any_selected(her2) else []), (anth if _any_selected(anth) else [])
    if not (her2 or anth):
        return None
    check = k.check("heart-failure")
    latest = p.summary.lvef.latest
    critical = (latest is not None and latest.value < check.param("critical_below_percent")) or (
        bool(anth) and (latest is None or latest.value < check.param("anthracycline_critical_below_percent")))
    hf = p.heart_failure[-1]
    lvef_text = f"latest LVEF {latest.value:g}% ({latest.date.isoformat()})" if latest else "no LVEF on record"
    drugs = _names(her2 + anth)
    findings = [f"Active heart failure: {hf.display or hf.code} ({hf.source}, {hf.clinical_status or 'status not recorded'}); "
                f"{lvef_text}.",
                f"Drafted: {drugs}. HER2-targeted agents and anthracyclines can cause or worsen cardiac failure: "
                "cardio-oncology review, LVEF before starting and during treatment."]
    return Decision(
        topic="heart-failure", indicator="critical" if critical else check.indicator,
        summary=_fmt(check, drug=drugs[:60], lvef=f" ({lvef_text.split(' (')[0]})"), rules=(check.rule,),
        findings=tuple(findings), facts=(*_draft_facts(her2 + anth), *p.contraindication_rows, *p.lvef_rows),
        about_drafts=True, check_ids=(check.id,))


def pregnancy(p: ClinicalPicture, drafts: Sequence[DraftOrder], regimen_card_allowed: bool,
              k: Knowledge) -> Decision | None:
    """W6: a current pregnancy with a HER2-targeted agent, capecitabine, a taxane or an anthracycline drafted
    or ongoing; for HER2-positive MBC, where the service may show the next-regimen card (patient-view), the
    card replaces it."""
    preg = p.pregnancy
    if preg is None:
        return None
    check = k.check("pregnancy")
    window, weeks = check.param("ongoing_window_days"), preg.gestational_weeks
    early = weeks is None or weeks < check.param("chemo_from_weeks")

    def targeted(x) -> bool:
        return is_her2_agent(x) or x.rxnorm == RX_CAPECITABINE

    def chemo(x) -> bool:
        return bool(x.classes & {ANTHRACYCLINE, TAXANE})

    selected = [d for d in drafts if d.selected] if _any_selected(drafts) else []
    d_targeted = [d for d in selected if any(targeted(x) for x in d.drugs)]
    d_chemo = [d for d in selected if any(chemo(x) for x in d.drugs) and d not in d_targeted]
    o_targeted = p.drug_ongoing(targeted, window)
    o_chemo = p.drug_ongoing(chemo, window)
    age = (f"about {weeks:g} weeks since the recorded pregnancy onset ({preg.since.isoformat()})"
           if weeks is not None and preg.since else "gestational age not recorded")
    findings = [f"Current pregnancy: {preg.basis} ({preg.source}); {age}."]
    indicator = None
    what = ""
    if d_targeted or o_targeted:
        indicator = "critical"
        names = _names(d_targeted) if d_targeted else ", ".join(dict.fromkeys(e.drug.name for e in o_targeted))
        state = "drafted" if d_targeted else "ongoing"
        findings.append(f"{names} {state}: trastuzumab, pertuzumab, T-DM1 and T-DXd carry boxed embryo-fetal toxicity "
                        "warnings; tucatinib, lapatinib, neratinib and capecitabine carry label warnings.")
        what = f"{names} {state} (embryo-fetal toxicity)"
    if d_chemo or o_chemo:
        names = _names(d_chemo) if d_chemo else ", ".join(dict.fromkeys(e.drug.name for e in o_chemo))
        findings.append(f"{names} {'drafted' if d_chemo else 'ongoing'}: anthracycline- and taxane-based chemotherapy "
                        f"is given from the second trimester (about {check.param('chemo_from_weeks'):g} weeks) under "
                        "specialist care" + (" - not before." if early else "."))
        indicator = max_indicator(indicator or "warning", "critical" if early else "warning")
        what = what or f"{names} ({age.split(' since')[0] if weeks is not None else 'gestational age unknown'})"
    if indicator is None:
        if not regimen_card_allowed or not p.her2_positive_mbc:
            return None
        indicator = "warning"
        findings.append("HER2-positive metastatic breast cancer during pregnancy: the regimen list does not apply; "
                        "plan treatment with obstetrics and specialist oncology (no next-regimen card).")
        what = "HER2+ metastatic disease; regimen list does not apply, plan with obstetrics"
    her2_ab = [e for e in p.summary.therapy.exposures if HER2_ANTIBODY in e.drug.classes]
    # an active order / statement is exposure up to today, not at its start
    last_ab = max(((p.as_of if e.ongoing else (e.end or e.start)) for e in her2_ab if (e.ongoing or e.end or e.start)),
                  default=None)
    if last_ab and preg.since and last_ab >= preg.since:
        findings.append(f"HER2-antibody exposure during the pregnancy (last on {last_ab.isoformat()}, pregnancy "
                        f"recorded from {preg.since.isoformat()}): inform obstetric care.")
    elif last_ab and preg.since and 0 <= (preg.since - last_ab).days <= check.param("prior_exposure_days"):
        findings.append(f"HER2-antibody exposure {(preg.since - last_ab).days} days before the pregnancy onset "
                        "(within the 7 months the labels ask for contraception): inform obstetric care.")
    removable = d_targeted + [d for d in d_chemo if early]
    return Decision(
        topic="pregnancy", indicator=indicator, summary=_fmt(check, what=what)[:139], rules=(check.rule,),
        findings=tuple(findings), facts=(*_draft_facts(d_targeted + d_chemo), *p.therapy_rows),
        proposals=(_remove(removable, "order" + ("s" if len(removable) > 1 else "")),) if removable else (),
        about_drafts=bool(d_targeted or d_chemo), check_ids=(check.id,))


def blockade_gap(p: ClinicalPicture, drafts: Sequence[DraftOrder], k: Knowledge,
                 recommended: RegimenEntry | None, anthracycline_card: bool = False) -> Decision | None:
    """S11: a drafted anticancer regimen for HER2+ MBC without any HER2 agent. Drafts containing an
    anthracycline are left to the anthracycline card (contract), but only when that card is issued: an
    anthracycline drafted long after trastuzumab, with no HER2 agent, is still a regimen without HER2 blockade."""
    if not p.her2_positive_mbc or not drafts:
        return None
    anticancer = [d for d in drafts if any(x.classes & ANTICANCER_CLASSES for x in d.drugs)]
    if not anticancer or not _any_selected(anticancer):
        return None
    if any(is_her2_agent(x) for d in drafts for x in d.drugs):
        return None
    if anthracycline_card and any(_has_class(d, ANTHRACYCLINE) for d in drafts):
        return None
    if p.active_her2_exposures:
        return None  # HER2 blockade continues through an active order; the draft adds to it
    check = k.check("her2-blockade-gap")
    return Decision(
        topic="her2-blockade-gap", indicator=check.indicator, summary=_fmt(check), rules=(check.rule,),
        findings=(f"Drafted ({_names(anticancer)}) without trastuzumab or another HER2-targeted agent for "
                  "HER2-positive metastatic disease, and no HER2-targeted therapy is active.",),
        facts=(*_draft_facts(anticancer), *p.receptor_rows, *p.therapy_rows),
        proposals=(*_replace(anticancer, recommended), _remove(anticancer, "regimen without HER2 blockade")),
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
        facts=(*_draft_facts(thp), *p.therapy_rows, p.line_row),
        proposals=(*_replace(thp, recommended), _remove(thp, "first-line regimen")),
        about_drafts=True, check_ids=(check.id,))


def tdxd_not_offered(p: ClinicalPicture, drafts: Sequence[DraftOrder], k: Knowledge) -> Decision | None:
    """S12: another HER2 regimen drafted at 2L+ while T-DXd was never given and is not contraindicated.
    Not during pregnancy: T-DXd carries a boxed embryo-fetal toxicity warning, and the pregnancy card
    covers the draft (the regimen list does not apply, contract v2)."""
    if not p.regimen_list_applies or p.next_line < 2 or p.ild or p.received(RX_TDXD):
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
        findings=(f"Drafted HER2 regimen ({_names(her2)}) for the {p.line_row.value}; T-DXd was never given and no "
                  "ILD/pneumonitis history is recorded.",),
        facts=(*_draft_facts(her2), *p.therapy_rows, p.line_row, *p.contraindication_rows),
        proposals=(*_replace(her2, k.regimens["tdxd"]), _remove(her2, "HER2 regimen")),
        about_drafts=True, check_ids=(check.id,))


def safety_decisions(p: ClinicalPicture, drafts: Sequence[DraftOrder], k: Knowledge,
                     recommended: RegimenEntry | None, regimen_shown: bool,
                     regimen_card_allowed: bool = True) -> list[Decision]:
    """All safety/guideline decisions for this call (unordered; the renderer orders cards), including
    those a draft whose drug could not be identified would get as any known drug of its probable class
    (`cards.decide_unidentified`: never a silent empty answer)."""
    return with_unidentified_drafts(
        lambda ds: _checks(p, ds, k, recommended, regimen_shown, regimen_card_allowed), drafts)


def _checks(p: ClinicalPicture, drafts: Sequence[DraftOrder], k: Knowledge,
            recommended: RegimenEntry | None, regimen_shown: bool, regimen_card_allowed: bool) -> list[Decision]:
    """Every check on these drafts as mapped.

    A replacement regimen is proposed only where the regimen list applies (contract v2: not while HER2 is
    unknown or discordant, nor during pregnancy); elsewhere the cards offer to remove the draft only."""
    safer_than_tdxd = recommended if recommended is not None and RX_TDXD not in recommended.rxnorm else (
        None if p.received(RX_TDM1) or not p.regimen_list_applies else k.regimens["tdm1"])
    anthracycline_card = anthracycline(p, drafts, k)
    out = [
        pregnancy(p, drafts, regimen_card_allowed, k),
        anthracycline_card,
        heart_failure(p, drafts, k),
        ild(p, drafts, k, recommended if regimen_shown else None, safer_than_tdxd),
        lvef(p, drafts, k),
        her2_discordant(p, k),
        her2_unknown(p, drafts, k),
        blockade_gap(p, drafts, k, recommended, anthracycline_card is not None),
    ]
    restart = first_line_restart(p, drafts, k, recommended)
    out.append(restart)
    if restart is None:
        out.append(tdxd_not_offered(p, drafts, k))
    return [d for d in out if d is not None]
