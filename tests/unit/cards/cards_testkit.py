"""Hand-built PatientSummary / DraftOrder objects for the cards tests (no FHIR, no mapping code).

The drug table is a tiny stand-in for `fhir_mappings.terminology` (classes as the model defines them).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Iterable

import cards
from cds_service.services import service_for_hook
from fhir_mappings import model as m

TODAY = dt.date(2026, 12, 1)

DRUGS = {
    m.RX_TRASTUZUMAB: m.Drug(m.RX_TRASTUZUMAB, "trastuzumab", frozenset({m.HER2_ANTIBODY}), True),
    m.RX_PERTUZUMAB: m.Drug(m.RX_PERTUZUMAB, "pertuzumab", frozenset({m.HER2_ANTIBODY})),
    m.RX_TDM1: m.Drug(m.RX_TDM1, "ado-trastuzumab emtansine", frozenset({m.HER2_ADC})),
    m.RX_TDXD: m.Drug(m.RX_TDXD, "fam-trastuzumab deruxtecan-nxki", frozenset({m.HER2_ADC})),
    m.RX_TUCATINIB: m.Drug(m.RX_TUCATINIB, "tucatinib", frozenset({m.HER2_TKI})),
    m.RX_LAPATINIB: m.Drug(m.RX_LAPATINIB, "lapatinib", frozenset({m.HER2_TKI})),
    m.RX_NERATINIB: m.Drug(m.RX_NERATINIB, "neratinib", frozenset({m.HER2_TKI})),
    m.RX_CAPECITABINE: m.Drug(m.RX_CAPECITABINE, "capecitabine", frozenset({m.FLUOROPYRIMIDINE})),
    m.RX_DOCETAXEL: m.Drug(m.RX_DOCETAXEL, "docetaxel", frozenset({m.TAXANE})),
    m.RX_PACLITAXEL: m.Drug(m.RX_PACLITAXEL, "paclitaxel", frozenset({m.TAXANE})),
    m.RX_DOXORUBICIN: m.Drug(m.RX_DOXORUBICIN, "doxorubicin", frozenset({m.ANTHRACYCLINE})),
    m.RX_EPIRUBICIN: m.Drug(m.RX_EPIRUBICIN, "epirubicin", frozenset({m.ANTHRACYCLINE})),
    "40048": m.Drug("40048", "carboplatin", frozenset({m.PLATINUM})),
    "3002": m.Drug("3002", "cyclophosphamide", frozenset({m.OTHER_CHEMO})),
    "72965": m.Drug("72965", "letrozole", frozenset({m.ENDOCRINE})),
}
THP = (m.RX_PERTUZUMAB, m.RX_TRASTUZUMAB, m.RX_DOCETAXEL)
TCH = (m.RX_DOCETAXEL, "40048", m.RX_TRASTUZUMAB)
TRIPLET = (m.RX_TUCATINIB, m.RX_TRASTUZUMAB, m.RX_CAPECITABINE)


def ago(days: float) -> dt.date:
    return TODAY - dt.timedelta(days=round(days))


def months_ago(months: float) -> dt.date:
    return ago(months * 365.25 / 12)


def exposure(rx: str, start: dt.date | None, end: dt.date | None = None, *, ongoing: bool = False,
             progressed: bool = False, pid: str = "p") -> m.Exposure:
    return m.Exposure(drug=DRUGS[rx], start=start, end=end, ongoing=ongoing,
                      status="active" if ongoing else ("stopped" if progressed else "completed"),
                      resource_type="MedicationStatement", source=f"MedicationStatement/{pid}-{DRUGS[rx].name[:12]}",
                      status_reason="Absent response to treatment" if progressed else "", progressed=progressed)


def regimen(rxs: Iterable[str], start: dt.date, end: dt.date | None = None, *, setting: m.Setting = m.Setting.METASTATIC,
            line: int | None = 1, ongoing: bool = False, progressed: bool = True) -> m.Regimen:
    exps = tuple(exposure(rx, start, end, ongoing=ongoing, progressed=progressed) for rx in rxs)
    return m.Regimen(exposures=exps, setting=setting, line=line if setting == m.Setting.METASTATIC else None,
                     start=start, end=end, ongoing=ongoing, progressed=progressed)


def therapy(*regimens: m.Regimen, last_trastuzumab: dt.date | None = None, trastuzumab_ongoing: bool = False,
            her2_ongoing: bool | None = None, early_end: dt.date | None = None, early_pertuzumab: bool = False,
            tfi_months: float | None = None) -> m.TherapyHistory:
    exps = tuple(e for r in regimens for e in r.exposures)
    met = [r for r in regimens if r.setting == m.Setting.METASTATIC]
    her2 = [e for e in exps if e.drug.classes & m.HER2_CLASSES]
    last_her2 = max((e.end or e.start for e in her2 if (e.end or e.start)), default=None)
    if her2_ongoing is None:
        her2_ongoing = any(e.ongoing for e in her2) or (last_her2 is not None and (TODAY - last_her2).days <= 42)
    tras = [e for e in exps if e.drug.unconjugated_trastuzumab]
    if last_trastuzumab is None and tras:
        last_trastuzumab = max((e.end or e.start for e in tras if (e.end or e.start)), default=None)
    return m.TherapyHistory(
        exposures=exps, regimens=tuple(regimens), metastatic_lines=len(met),
        current_line_ongoing=bool(met) and met[-1].ongoing and not met[-1].progressed,
        her2_agents_metastatic=frozenset(e.drug.rxnorm for r in met for e in r.exposures if e.drug.classes & m.HER2_CLASSES),
        ever_given=frozenset(e.drug.rxnorm for e in exps),
        last_trastuzumab_dose=last_trastuzumab, last_trastuzumab_source="MedicationStatement/p-trastuzumab" if last_trastuzumab else None,
        trastuzumab_ongoing=trastuzumab_ongoing or any(e.ongoing for e in tras),
        her2_therapy_ongoing=her2_ongoing, last_her2_dose=last_her2,
        early_her2_end=early_end, early_her2_with_pertuzumab=early_pertuzumab,
        early_her2_sources=("MedicationStatement/p-adjuvant",) if early_end else (), tfi_months=tfi_months)


def receptor(status: m.ReceptorStatus, **kw) -> m.ReceptorResult:
    return m.ReceptorResult(status=status, date=kw.pop("date", ago(400)), method=kw.pop("method", "interpretation"),
                            sources=kw.pop("sources", ("Observation/p-her2",)), **kw)


POS, NEG = m.ReceptorStatus.POSITIVE, m.ReceptorStatus.NEGATIVE


def site(name: str, onset: dt.date, *, cns: bool = False) -> m.MetastaticSite:
    return m.MetastaticSite(site=name, cns=cns, code="C79.31" if cns else "C78.7", system="http://hl7.org/fhir/sid/icd-10-cm",
                            display=f"Secondary malignant neoplasm of {name}", onset=onset, source=f"Condition/p-{name}")


def summary(*, her2: m.ReceptorStatus = POS, er: m.ReceptorStatus = NEG, pr: m.ReceptorStatus = NEG,
            metastatic: bool = True, met_date: dt.date | None = None, sites: tuple[m.MetastaticSite, ...] = (),
            therapy_history: m.TherapyHistory | None = None, ild: bool = False,
            lvef: Iterable[tuple[float, dt.date]] = (), breast: bool = True, **kw) -> m.PatientSummary:
    met_date = met_date or ago(400)
    sites = sites or ((site("liver", met_date),) if metastatic else ())
    ild_facts = (m.ConditionFact("ild", "J84.9", "http://hl7.org/fhir/sid/icd-10-cm", "Interstitial pulmonary disease",
                                 ago(300), "active", "Condition/p-ild"),) if ild else ()
    series = m.LvefSeries(tuple(m.LvefMeasurement(v, d, "10230-1", f"Observation/p-lvef-{i}")
                                for i, (v, d) in enumerate(sorted(lvef, key=lambda x: x[1]))))
    return m.PatientSummary(
        patient_id="p", as_of=TODAY,
        breast_cancer=m.BreastCancer(present=breast, onset=ago(500), display="Malignant neoplasm of breast",
                                     sources=("Condition/p-primary",)),
        metastatic=m.MetastaticDisease(metastatic=metastatic, first_known=met_date if metastatic else None,
                                       sites=sites if metastatic else (), evidence="secondary cancer Condition",
                                       sources=tuple(s.source for s in sites) if metastatic else ()),
        her2=receptor(her2), er=receptor(er, sources=("Observation/p-er",)), pr=receptor(pr, sources=("Observation/p-pr",)),
        therapy=therapy_history or therapy(), ild=ild_facts, lvef=series, **kw)


def draft(rx: str, *, selected: bool = True, pid: str = "p") -> m.DraftOrder:
    d = DRUGS[rx]
    return m.DraftOrder(resource_id=f"MedicationRequest/{pid}-draft-{d.name[:12].replace(' ', '-')}", drugs=(d,),
                        display=d.name, selected=selected)


def drafts(*rxs: str) -> tuple[m.DraftOrder, ...]:
    return tuple(draft(rx) for rx in rxs)


def with_therapy(s: m.PatientSummary, **kw) -> m.PatientSummary:
    return replace(s, therapy=replace(s.therapy, **kw))


# ----------------------------------------------------------------------------- reading cards back

REGIMEN_TOPIC = "her2-next-regimen"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
TAXANES = {m.RX_DOCETAXEL, m.RX_PACLITAXEL}


def topics(cards_: list[dict]) -> dict[str, str]:
    return {c["source"]["topic"]["code"]: c["indicator"] for c in cards_}


def card(cards_: list[dict], topic: str) -> dict:
    found = [c for c in cards_ if c["source"]["topic"]["code"] == topic]
    assert len(found) == 1, f"expected one {topic} card, got {topics(cards_)}"
    return found[0]


def suggestion_codes(s: dict) -> frozenset[str]:
    return frozenset(c["code"] for a in s.get("actions", []) if a["type"] == "create"
                     for c in a["resource"]["medicationCodeableConcept"]["coding"] if c["system"] == RXNORM)


def regimen_sets(cards_: list[dict]) -> list[frozenset[str]]:
    return [suggestion_codes(s) for s in card(cards_, REGIMEN_TOPIC)["suggestions"]]


def recommended_set(cards_: list[dict]) -> frozenset[str]:
    recs = [s for s in card(cards_, REGIMEN_TOPIC)["suggestions"] if s.get("isRecommended") is True]
    assert len(recs) == 1
    return suggestion_codes(recs[0])


def matches(codes: frozenset[str], expected: Iterable[str]) -> bool:
    """Probe semantics: the token TAXANE stands for docetaxel or paclitaxel."""
    exp = list(expected)
    if "TAXANE" in exp:
        rest = frozenset(c for c in exp if c != "TAXANE")
        return any(codes == rest | {t} for t in TAXANES)
    return codes == frozenset(exp)


def timed(d: m.DraftOrder, start_days: int | None, end_days: int | None) -> m.DraftOrder:
    """The draft with a planned start/end `start_days`/`end_days` after TODAY (contract v2, Draft timing)."""
    fwd = lambda n: None if n is None else TODAY + dt.timedelta(days=n)   # noqa: E731
    return replace(d, planned_start=fwd(start_days), planned_end=fwd(end_days))


def hf_fact(status: str = "active", onset: dt.date | None = None) -> m.ConditionFact:
    return m.ConditionFact("heart-failure", "I50.22", "http://hl7.org/fhir/sid/icd-10-cm",
                           "Chronic systolic (congestive) heart failure", onset or ago(1500), status, "Condition/p-hf")


def pregnant(weeks: float | None = 20) -> m.PregnancyFact:
    since = ago(weeks * 7) if weeks is not None else None
    return m.PregnancyFact(since=since, gestational_weeks=weeks, basis="Z33.1 Pregnant state, incidental (active)",
                           source="Condition/p-pregnancy")


def her2_result(status: m.ReceptorStatus, days_ago: int, detail: str, source: str) -> m.Her2Result:
    return m.Her2Result(status, ago(days_ago), detail, source)


def run(s: m.PatientSummary, hook: str = "patient-view", ds: Iterable[m.DraftOrder] = (),
        policy: cards.Policy | None = None, *, knowledge: cards.Knowledge | None = None,
        data_gaps: Iterable[m.RecordIssue] = ()) -> list[dict]:
    """The cards of one call, made as `pipeline.evaluate` makes them: decide within the cards the hook's service
    declares, then render."""
    k = knowledge or cards.load_knowledge()
    ds = tuple(ds)
    decisions = cards.decide(s, ds, service_for_hook(hook).cards, knowledge=k, policy=policy or cards.Policy())
    return cards.render_cards(decisions, s, ds, knowledge=k, data_gaps=tuple(data_gaps))
