"""`summarize`: raw FHIR R4 dicts of one patient -> `PatientSummary`.

Never raises: a resource that cannot be read becomes a `RecordIssue` in `skipped`, a medication that
cannot be mapped one in `unmapped`. Resources of another patient are ignored; duplicates (same
resourceType and id, e.g. from prefetch and a search) are used once; Bundles are unwrapped.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from functools import lru_cache
from operator import attrgetter, itemgetter, methodcaller
from typing import Any, Iterable, Mapping

from . import conditions as cond_mod
from .fhir_json import (LOINC, SNOMED, all_text, as_dict, as_list, as_str, choice_dates, clean_display, codings,
                       malformed_dates, parse_date, ref_type_id, source_of)
from .lvef import read_lvef
from .medications import MEDICATION_TYPES, exposures_of
from .model import (BreastCancer, ConditionFact, Exposure, LvefMeasurement, LvefSeries, MetastaticDisease,
                    MetastaticSite, PatientSummary, RecordIssue)
from .pregnancy import PREGNANCY_STATUS_LOINC, current_pregnancy
from .lvef import LVEF_LOINC, lvef_code, names_lvef
from .receptors import LOINC_MARKERS, MISCODED_LOINC, SERUM_HER2, Evidence, condition_evidence, \
    observation_evidence, receptor_results, report_evidence, report_markers, text_markers
from .regimens import build_history

log = logging.getLogger(__name__)

IGNORED_OBSERVATION_STATUS = frozenset({"entered-in-error", "cancelled"})
_MAX_DEPTH = 3
RECEPTOR_CODES = frozenset(LOINC_MARKERS) | SERUM_HER2 | frozenset(MISCODED_LOINC)
STAGING_CODES = cond_mod.STAGE_GROUP_CODES | cond_mod.M_CATEGORY_CODES
#: mCODE cancer disease status (STU3+: 97509-4; STU1/2: 88040-1); value 271299001 "Patient's condition
#: worsened" is documented progression (contract v2, the next-regimen card).
DISEASE_STATUS_CODES = frozenset({"97509-4", "88040-1"})
PROGRESSION_STATUS_VALUES = frozenset({"271299001"})
#: Observation codes any rule reads; everything else (labs, vitals) is skipped after one set lookup.
RELEVANT_OBSERVATION_CODES = (RECEPTOR_CODES | LVEF_LOINC | STAGING_CODES | DISEASE_STATUS_CODES
                              | frozenset({PREGNANCY_STATUS_LOINC}))


def observation_search_tokens() -> tuple[str, ...]:
    """`system|code` tokens of every Observation code the mapping reads, for the FHIR search that feeds it.

    The service's prefetch template and its fallback query are built from this, so a code the mapping
    learns to read is fetched too. LOINC codes have a check digit after a dash; the others are SNOMED
    staging codes, except Synthea's SNOMED code filed under the LOINC system (`MISCODED_LOINC`).
    """
    def system(code: str) -> str:
        return LOINC if "-" in code or code in MISCODED_LOINC else SNOMED
    return tuple(f"{system(code)}|{code}" for code in sorted(RELEVANT_OBSERVATION_CODES))


def _all_codes(obs: dict[str, Any]) -> set[str]:
    """Codes of Observation.code and of its components (strings only)."""
    out: set[str] = set()
    _add_codes(obs.get("code"), out)
    if "component" in obs:       # most labs have none: no list built for them
        for c in as_list(obs["component"]):
            _add_codes(as_dict(c).get("code"), out)
    return out


def _add_codes(concept: Any, out: set[str]) -> None:
    coding = concept.get("coding") if isinstance(concept, dict) else None
    if isinstance(coding, list):
        for c in coding:
            if isinstance(c, dict):
                code = c.get("code")
                if isinstance(code, str):
                    out.add(code)


def _may_be_pregnancy_status(obs: dict[str, Any], codes: set[str]) -> bool:
    """False only for an Observation `current_pregnancy` would certainly pass over, so the 5,000 labs of a
    long chart are not walked a second time (its own check is stricter: LOINC system, stripped code)."""
    for c in codes:
        if PREGNANCY_STATUS_LOINC in c:
            return True
    code = obs.get("code")
    if code is None:
        return False
    return not (isinstance(code, dict) and isinstance(code.get("coding"), list))   # odd shape: let it decide


def _obs_date(obs: dict[str, Any]) -> dt.date | None:
    d = obs.get("effectiveDateTime")
    if isinstance(d, str):
        parsed = parse_date(d)
        if parsed:
            return parsed
    start, _ = choice_dates(obs, "effective")
    return start or parse_date(obs.get("issued"))


_RECEPTOR_WORDS = re.compile(r"her-?\s?2|erbb|c-?erb|estrogen|oestrogen|progesterone|\ber\b|\bpr\b", re.I)


def _names_by_text(concept: Any, memo: dict[Any, tuple[bool, bool]]) -> tuple[bool, bool]:
    """(names HER2/ER/PR, names LVEF) for a code without a known LOINC code.

    Memoised per code - its text, first coding and number of codings (the same lab code under the same
    name is the same test): a regex over every lab's text would double the mapping time.
    """
    try:
        coding = concept["coding"]
        first = coding[0]
        key: Any = (concept.get("text"), first.get("system"), first.get("code"), first.get("display"), len(coding))
        hit = memo.get(key)
    except (TypeError, KeyError, IndexError, AttributeError):      # odd shapes: not memoised
        key = hit = None
    if hit is not None:
        return hit
    receptor = isinstance(concept, dict) and bool(_RECEPTOR_WORDS.search(all_text(concept))) \
        and bool(text_markers(concept))
    flags = (receptor, names_lvef(concept))
    if key is not None:
        memo[key] = flags
    return flags


def _text_relevance(obs: dict[str, Any], memo: dict[Any, tuple[bool, bool]]) -> tuple[bool, bool]:
    """(receptor by text, LVEF by text) for an Observation and its components (an echo report panel)."""
    receptor, lvef = _names_by_text(obs.get("code"), memo)
    if "component" in obs:
        for c in as_list(obs.get("component")):
            lvef = lvef or _names_by_text(as_dict(c).get("code"), memo)[1]
    return receptor, lvef


#: What an Observation's code says (see `_triage`):
#: (no relevant code, may be a pregnancy status, receptor code, receptor by text, LVEF (code or text),
#:  its LVEF code when already known (else None), disease-status code, staging code, code text names metastasis)
_Triage = tuple[bool, bool, bool, bool, bool, "str | None", bool, bool, bool]


def _triage(obs: dict[str, Any], memo: dict[Any, _Triage], text_memo: dict[Any, tuple[bool, bool]]) -> _Triage:
    """The code-derived relevance of an Observation.

    For the common shape (no components, one coding) it depends only on the code's text, system, code and
    display, and is kept per code for the process (`_code_triage`): a long chart repeats a few dozen lab
    codes thousands of times, an LVEF code thousands of times (its LVEF code is kept too, so `read_lvef`
    does not look for it again), and every record repeats the receptor and LVEF codes; `memo` (one call's)
    answers the repeats within a call for less than the lru_cache. Other shapes, and codes with unhashable
    parts (a list where a string belongs), are triaged from the Observation itself."""
    if "component" not in obs:
        try:                     # JSON shapes: anything but {"coding": [{...}]} fails one of these
            concept = obs["code"]
            coding = concept["coding"]
            if coding.__class__ is list and len(coding) == 1:
                c = coding[0]
                key = (concept.get("text"), c.get("system"), c.get("code"), c.get("display"))
                hit = memo.get(key)
                if hit is None:
                    hit = memo[key] = _code_triage(key)
                return hit
        except (KeyError, TypeError, AttributeError):
            pass
    return _triage_of(obs, text_memo, False)


@lru_cache(maxsize=4096)          # a pure function of code strings: no patient data, the same codes call after call
def _code_triage(key: tuple[Any, Any, Any, Any]) -> _Triage:
    text, system, code, display = key
    concept: dict[str, Any] = {"coding": [{"system": system, "code": code, "display": display}]}
    if text is not None:
        concept["text"] = text
    return _triage_of({"code": concept}, {}, True)


def _triage_of(obs: dict[str, Any], text_memo: dict[Any, tuple[bool, bool]], one_coding: bool) -> _Triage:
    codes = _all_codes(obs)
    unknown = RELEVANT_OBSERVATION_CODES.isdisjoint(codes)
    by_text = lvef_by_text = False
    if unknown:
        by_text, lvef_by_text = _text_relevance(obs, text_memo)
    lvef = lvef_by_text or not LVEF_LOINC.isdisjoint(codes)
    return (unknown, _may_be_pregnancy_status(obs, codes), not RECEPTOR_CODES.isdisjoint(codes), by_text, lvef,
            lvef_code(obs["code"]) if lvef and one_coding else None,
            not DISEASE_STATUS_CODES.isdisjoint(codes), not STAGING_CODES.isdisjoint(codes),
            _code_names_metastatic(obs))


def _receptor_reports(items: list[dict[str, Any]]) -> tuple[dict[str, tuple], list[tuple[dict[str, Any], tuple]]]:
    """(Observation id -> markers of the DiagnosticReport listing it, [(report, markers)]) for receptor reports."""
    context: dict[str, tuple] = {}
    reports = []
    for r in items:      # DiagnosticReports only
        if as_str(r.get("status")).lower() in IGNORED_OBSERVATION_STATUS:
            continue
        markers = report_markers(r)
        reports.append((r, markers))
        for result in as_list(r.get("result")):
            tid = ref_type_id(result)
            if markers and tid and tid[0] == "Observation":
                context[tid[1]] = markers
    return context, reports


def _profile_names_metastatic(obs: dict[str, Any]) -> bool:
    meta = obs.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("profile"), list):
        if any(isinstance(p, str) and "metasta" in p for p in meta["profile"]):
            return True
    return False


def _code_names_metastatic(obs: dict[str, Any]) -> bool:
    code = obs.get("code")
    text = code.get("text") if isinstance(code, dict) else None
    return isinstance(text, str) and "metasta" in text.lower()


_RESOURCE_TYPE = methodcaller("get", "resourceType")


def _flatten(resources: Any, skipped: list[RecordIssue]) -> list[dict[str, Any]]:
    """The resources of the input, Bundles unwrapped; what is not a resource is reported in `skipped`."""
    if isinstance(resources, (list, tuple)) and set(map(type, resources)) <= {dict}:
        try:      # the usual input, checked at C speed: resources with a resourceType, none a Bundle
            types = set(map(_RESOURCE_TYPE, resources))
        except TypeError:                     # an unhashable resourceType: walked (and reported) below
            types = {None}
        if "Bundle" not in types and set(map(type, types)) <= {str} and "" not in types:   # non-empty strings
            return list(resources)
    out: list[dict[str, Any]] = []
    if isinstance(resources, (str, bytes)):
        skipped.append(RecordIssue("input", "resources must be FHIR resource dicts, not text"))
        return out
    _walk(resources if resources is not None else [], 0, "input", out, skipped)
    return out


def _walk(items: Any, depth: int, where: str, out: list[dict[str, Any]], skipped: list[RecordIssue]) -> None:
    """Resources of `items` into `out`, Bundles unwrapped. A module function, not a closure: a recursive
    closure is a reference cycle (function -> cell -> function) that kept `out`, so every resource of
    the call, alive until the cycle collector's next full pass instead of freed when the call ends."""
    if isinstance(items, dict):
        items = [items]
    try:
        iterator = iter(items)
    except TypeError:
        skipped.append(RecordIssue(where, f"not a list of resources ({type(items).__name__})"))
        return
    for i, r in enumerate(iterator):
        if not isinstance(r, dict):
            skipped.append(RecordIssue(f"{where}[{i}]", f"not a FHIR resource ({type(r).__name__})"))
            continue
        rtype = r.get("resourceType")
        if not isinstance(rtype, str) or not rtype:
            skipped.append(RecordIssue(f"{where}[{i}]", "no resourceType"))
            continue
        if rtype == "Bundle":
            if depth >= _MAX_DEPTH:
                skipped.append(RecordIssue(source_of(r), "Bundle nested too deeply"))
                continue
            _walk([as_dict(e).get("resource") for e in as_list(r.get("entry")) if as_dict(e).get("resource") is not None],
                  depth + 1, source_of(r), out, skipped)
            continue
        out.append(r)


_TYPE_OF = itemgetter("resourceType")
_ID_OF = methodcaller("get", "id")


def dedupe_resources(resources: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each (resourceType, id) once, first copy kept, order kept; resources without an id are all kept.

    When every resource has a non-empty string id (FHIR servers and prefetch give one to each), the answer
    is built from the (resourceType, id) keys at C speed: a dict from the reversed pairs holds each key's
    first copy, `dict.fromkeys` the keys in first-seen order. why: 60 instead of 560 bytecodes on a record
    of 15 resources, and it runs twice per hook call (the gather, then `summarize`). Other records are
    walked one resource at a time (`_dedupe_walk`)."""
    items = resources if resources.__class__ is list else list(resources)
    try:
        ids = list(map(_ID_OF, items))
        if set(map(type, ids)) == {str} and "" not in ids:
            keys = list(zip(map(_TYPE_OF, items), ids))
            first = dict(zip(reversed(keys), reversed(items)))
            if len(first) == len(items):
                return list(items)
            return list(map(first.__getitem__, dict.fromkeys(keys)))
    except (AttributeError, KeyError, TypeError):     # not dicts, no resourceType, unhashable parts
        pass
    return _dedupe_walk(items)


def _dedupe_walk(resources: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[tuple[str, str]] = set()
    out = []
    for r in resources:
        rid = r.get("id")
        if isinstance(rid, str) and rid:
            key = (r["resourceType"], rid)
            if key in seen:
                continue
            seen.add(key)
        out.append(r)
    return out


def _patient_ids(resource: dict[str, Any]) -> list[str]:
    ids = []
    for key in ("subject", "patient"):
        ref = resource.get(key)
        tid = ref_type_id(ref) if isinstance(ref, (dict, str)) else None
        if tid and tid[0] == "Patient":
            ids.append(tid[1])
    return ids


def _belongs(resource: dict[str, Any], patient_id: str) -> bool:
    """Whether a resource is this patient's (or names no patient). The caller first checks the usual
    `subject.reference` "Patient/<id>" itself: one comparison per resource of a long chart."""
    ids = _patient_ids(resource)
    return not ids or patient_id in ids


def summarize(resources: Iterable[Mapping[str, Any]], patient_id: str, as_of: dt.date) -> PatientSummary:
    """The typed summary of one patient's record as of a date.

    Never raises for bad input: every resource is read defensively, and one that cannot be used is
    reported in `skipped`. A bug in the aggregation itself does raise, on purpose: an empty summary
    would become `cards: []`, which a clinician reads as "nothing to flag".
    """
    skipped: list[RecordIssue] = []
    pid = as_str(patient_id).strip()
    pid = pid.split("/")[-1] if "/" in pid else pid
    if not isinstance(as_of, dt.date):
        as_of = dt.datetime.now(dt.timezone.utc).date()
        skipped.append(RecordIssue("as_of", "no valid as-of date given: today (UTC) used"))
    elif isinstance(as_of, dt.datetime):
        as_of = as_of.date()
    return _summarize(resources, pid, as_of, skipped)


def _summarize(resources: Any, pid: str, as_of: dt.date, skipped: list[RecordIssue]) -> PatientSummary:
    own_ref = f"Patient/{pid}"
    # This patient's resources (one check per resource of a long chart: the usual `subject.reference` first),
    # then the Medications, Conditions and DiagnosticReports the main pass looks up, each indexed only when
    # the record has that type (a set of the types, at C speed, tells).
    items = [r for r in dedupe_resources(_flatten(resources, skipped))
             if ((subject := r.get("subject")).__class__ is dict and subject.get("reference") == own_ref)
             or _belongs(r, pid)]
    types = set(map(_TYPE_OF, items))
    medications: dict[str, dict[str, Any]] = {
        r["id"]: r for r in items if r["resourceType"] == "Medication" and isinstance(r.get("id"), str)
    } if "Medication" in types else {}
    conditions: dict[str, dict[str, Any]] = {
        r["id"]: r for r in items
        if r["resourceType"] == "Condition" and isinstance(r.get("id"), str) and not cond_mod.verification_ignored(r)
    } if "Condition" in types else {}
    diagnostic_reports = [r for r in items if r["resourceType"] == "DiagnosticReport"] \
        if "DiagnosticReport" in types else []

    unmapped: list[RecordIssue] = []
    breast: list[tuple[dt.date | None, str, str]] = []
    other_primaries: list[str] = []
    kinds: dict[str, cond_mod.CancerKind] = {}
    for cid, c in conditions.items():
        try:
            kinds[cid] = cond_mod.classify_cancer(c, source_of(c))
        except Exception:   # noqa: BLE001 - reported when the Condition itself is processed below
            pass
    secondaries: list[tuple[dict[str, Any], MetastaticSite]] = []
    stage_evidence: list[tuple[dt.date | None, str, str]] = []
    facts: list[ConditionFact] = []
    tissue: list[Evidence] = []
    status_conditions: list[Evidence] = []
    serum: list[str] = []
    lvefs: list[LvefMeasurement] = []
    progression: list[tuple[dt.date, str]] = []
    exposures: list[Exposure] = []
    surgeries: list[dt.date] = []
    report_context, receptor_reports = _receptor_reports(diagnostic_reports)
    text_memo: dict[Any, tuple[bool, bool]] = {}
    triage_memo: dict[Any, _Triage] = {}
    pregnancy_candidates: list[dict[str, Any]] = []    # Conditions and possible pregnancy-status Observations

    for r in items:
        rtype = r["resourceType"]
        if rtype == "Condition":
            pregnancy_candidates.append(r)
        elif rtype == "Observation":
            (unknown_codes, maybe_pregnancy, receptor, by_text, lvef, known_lvef_code, disease_status, staging_code,
             code_hint) = _triage(r, triage_memo, text_memo)
            if maybe_pregnancy:
                pregnancy_candidates.append(r)
            metastatic_hint = code_hint or ("meta" in r and _profile_names_metastatic(r))
            if unknown_codes:
                by_text = by_text or (bool(report_context) and as_str(r.get("id")) in report_context)
                if not (metastatic_hint or by_text or lvef):
                    continue          # labs and vitals no rule reads: one set lookup
            status = r.get("status")
            if isinstance(status, str) and status.lower() in IGNORED_OBSERVATION_STATUS:
                continue
        rid = r.get("id")
        source = f"{rtype}/{rid}" if isinstance(rid, str) and rid else source_of(r)
        bad_dates = malformed_dates(r)
        if bad_dates:
            skipped.extend(RecordIssue(source, f"{bad} is not a FHIR date; that date is not used") for bad in bad_dates)
        try:
            if rtype == "Condition":
                if (not isinstance(rid, str) or conditions.get(rid) is not r) and cond_mod.verification_ignored(r):
                    continue          # (the index holds every other Condition with an id, already checked)
                kind = kinds.get(as_str(rid)) or cond_mod.classify_cancer(r, source)
                if kind.breast:
                    when = cond_mod.onset(r)
                    breast.append((when, source, cond_mod.all_text(r.get("code"))))
                    if cond_mod.stage_iv(r):
                        stage_evidence.append((when, "stage IV", source))
                    elif kind.says_metastatic:
                        stage_evidence.append((when, "breast cancer Condition named metastatic", source))
                elif kind.other_primary:
                    other_primaries.append(clean_display(cond_mod.all_text(r.get("code"))).split(" ; ")[0] or source)
                elif kind.secondary and not kind.regional_only:
                    secondaries.append((r, kind.secondary))
                fact = cond_mod.condition_fact(r, source)
                if fact:
                    facts.append(fact)
                status_conditions.extend(condition_evidence(r, source))
            elif rtype == "Observation":
                if receptor or by_text:
                    ev, was_serum, issues = observation_evidence(r, source, report_context.get(as_str(r.get("id")), ()))
                    tissue.extend(ev)
                    if was_serum:
                        serum.append(source)
                    skipped.extend(issues)
                if lvef:
                    read_lvef(r, source, _obs_date(r), known_lvef_code, lvefs, skipped)
                if disease_status:
                    values = {c for _, c, _ in codings(r.get("valueCodeableConcept"))}
                    when = _obs_date(r)
                    if values & PROGRESSION_STATUS_VALUES and when:
                        progression.append((when, source))
                kind_text = cond_mod.observation_metastatic(r) if staging_code or metastatic_hint else ""
                if kind_text:
                    focus = [ref_type_id(f) for f in as_list(r.get("focus"))]
                    focus_ids = [f[1] for f in focus if f and f[0] == "Condition"]
                    if not focus_ids or not all(_other_primary(conditions, kinds, fid) for fid in focus_ids):
                        start, _ = cond_mod.choice_dates(r, "effective")
                        stage_evidence.append((start or cond_mod.parse_date(r.get("issued")), kind_text, source))
            elif rtype in MEDICATION_TYPES:
                exps, un, sk = exposures_of(r, medications, as_of, source)
                exposures.extend(exps)
                unmapped.extend(un)
                skipped.extend(sk)
            elif rtype == "Procedure":
                d = cond_mod.breast_surgery_date(r)
                if d:
                    surgeries.append(d)
            elif rtype == "DiagnosticReport" and as_str(r.get("status")).lower() not in IGNORED_OBSERVATION_STATUS:
                ev, issues = report_evidence(r, source, report_markers(r))
                tissue.extend(ev)
                skipped.extend(issues)
        except Exception as exc:   # noqa: BLE001 - one broken resource must not hide the rest
            log.debug("mapping.resource_skipped", extra={"resource_type": rtype, "error": type(exc).__name__})
            skipped.append(RecordIssue(source, f"could not be read ({type(exc).__name__}: {str(exc)[:120]})"))

    breast.sort(key=lambda b: (b[0] or dt.date.max, b[1]))
    bc = BreastCancer(present=bool(breast), onset=min((b[0] for b in breast if b[0]), default=None),
                      display=clean_display(breast[0][2]).split(" ; ")[0] if breast else "",
                      sources=tuple(dict.fromkeys(b[1] for b in breast)),
                      other_primaries=tuple(dict.fromkeys(other_primaries)))

    sites: list[MetastaticSite] = []
    for r, site in secondaries:
        related = cond_mod.related_condition_ids(r)
        if related and all(_other_primary(conditions, kinds, rid) for rid in related):
            continue          # metastasis of another primary (e.g. NSCLC brain metastasis)
        sites.append(site)
    sites.sort(key=lambda s: (s.onset or dt.date.max, s.source))
    evidence_dates = [s.onset for s in sites if s.onset] + [d for d, _, _ in stage_evidence if d]
    evidence_kinds = (["secondary cancer Condition"] if sites else []) + [k for _, k, _ in stage_evidence]
    met = MetastaticDisease(
        metastatic=bool(sites or stage_evidence),
        first_known=min(evidence_dates) if evidence_dates else None,
        sites=tuple(sites),
        evidence=", ".join(dict.fromkeys(evidence_kinds)),
        sources=tuple(dict.fromkeys([s.source for s in sites] + [src for _, _, src in stage_evidence])),
    )

    skipped.extend(_unread_reports(receptor_reports, tissue))
    her2, er, pr, her2_history = receptor_results(tissue, status_conditions, serum)
    therapy = build_history(exposures, as_of, met.first_known, met.metastatic, sorted(set(surgeries)))

    facts.sort(key=lambda f: (f.onset or dt.date.min, f.source))
    lvefs.sort(key=attrgetter("date", "source"))
    lvef_unique = tuple(dict(zip(map(attrgetter("date", "source", "value"), lvefs), lvefs)).values())   # each once
    return PatientSummary(
        patient_id=pid, as_of=as_of, breast_cancer=bc, metastatic=met, her2=her2, er=er, pr=pr, therapy=therapy,
        ild=tuple(f for f in facts if f.kind == "ild"),
        heart_failure=tuple(f for f in facts if f.kind in ("heart-failure", "cardiomyopathy")),
        lvef=LvefSeries(lvef_unique),
        pregnancy=current_pregnancy(pregnancy_candidates, as_of),
        her2_history=her2_history,
        progression_dates=tuple(sorted(set(progression))),
        unmapped=tuple(i for i in unmapped if not i.info), skipped=tuple(skipped),
        notes=tuple(i for i in unmapped if i.info))


def _unread_reports(reports: list[tuple[dict[str, Any], tuple]], tissue: list[Evidence]) -> list[RecordIssue]:
    """A receptor report none of whose results (nor its conclusion) could be read: said, never silent."""
    issues = []
    for report, markers in reports:
        if not markers:
            continue
        results = {f"{t[0]}/{t[1]}" for t in (ref_type_id(x) for x in as_list(report.get("result"))) if t}
        sources = results | {source_of(report)}
        for marker in dict.fromkeys(m for m, _, _ in markers):
            if not any(e.marker == marker and e.source in sources for e in tissue):
                issues.append(RecordIssue(source_of(report), f"{marker} report without a readable result"
                                          + (f" (results {', '.join(sorted(results))} unreadable or not in the record)"
                                             if results else " (no results, no conclusion)")))
    return issues


def _other_primary(conditions: Mapping[str, dict[str, Any]], kinds: Mapping[str, cond_mod.CancerKind], cid: str) -> bool:
    """True when a referenced Condition is a known non-breast primary cancer."""
    if cid not in conditions:
        return False
    kind = kinds.get(cid)
    return bool(kind and kind.other_primary and not kind.breast)
