"""A current pregnancy from Conditions and pregnancy-status Observations (card contract v2 `pregnancy`).

Codes (clinical.md §4.4): ICD-10-CM Z33.1 pregnant state, Z34.* supervision of normal pregnancy,
O09.* supervision of high-risk pregnancy, the O00-O9A chapter except delivery (O80-O82), the
puerperium (O85-O92) and termination (O03, O04; Z33.2), which end a pregnancy; SNOMED CT 77386006 pregnant, 60001007 not pregnant;
Observation LOINC 82810-3 pregnancy status with LA15173-0 pregnant / LA26683-5 not pregnant.

Current: an active pregnancy Condition (no abatement) whose onset or recorded date is within the
last 10 months, with no later delivery, puerperium, abatement or not-pregnant result; or the latest
pregnancy-status Observation says pregnant and is under 9 months old. The gestational age is not
coded in the records seen: the weeks since the recorded onset are reported (a lower bound when the
onset is the date of conception or of diagnosis), and the rules read them as the gestational age.
"""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any, Iterable

from .fhir_json import all_text, as_str, choice_dates, codings, is_icd10, is_loinc, is_snomed, parse_date, status_code, two_digits
from .model import PregnancyFact

PREGNANCY_STATUS_LOINC = "82810-3"
PREGNANT_ANSWERS = frozenset({"LA15173-0", "77386006"})
NOT_PREGNANT_ANSWERS = frozenset({"LA26683-5", "60001007"})
PREGNANT_SNOMED = frozenset({"77386006"})
NOT_PREGNANT_SNOMED = frozenset({"60001007"})
CONDITION_WINDOW_DAYS = 304            # 10 months
OBSERVATION_WINDOW_DAYS = 274          # 9 months
_IGNORED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
_ENDED_CLINICAL = frozenset({"inactive", "resolved", "remission"})


def _icd(code: str) -> str:
    c = code.upper().strip()
    return c[:3] + "." + c[3:] if len(c) > 3 and "." not in c else c


# Termination ends a pregnancy (contract v2: "no later delivery, termination, ..."): O03 spontaneous abortion,
# O04 complications following (induced) termination of pregnancy, Z33.2 encounter for elective termination of
# pregnancy (ICD-10-CM block O00-O08 "Pregnancy with abortive outcome"; status P: read in ICD-10-CM code
# browsers quoting the CMS FY2026 tables, e.g. icd10data.com / icd10codingpro.com, not in clinical.md).
# O07 (failed attempted termination) and O00-O02 / O08 are left as pregnancy codes: the pregnancy may continue
# or still needs care, and a missed pregnancy is the costlier error for embryo-fetal toxicity.
# O03 spontaneous abortion, O04 complications following (induced) termination, Z33.2 encounter for elective
# termination (audited 2026-12-02, P: icd10data.com O03, icd10codingpro.com O04, cco.us abortion coding guide).
TERMINATION_ICD_PREFIXES = ("O03", "O04", "Z33.2")


def _ends_pregnancy_icd(c: str) -> bool:
    """Delivery (O80-O82), puerperium (O85-O92) and termination (O03, O04, Z33.2) codes."""
    if c.startswith(TERMINATION_ICD_PREFIXES):
        return True
    if not c.startswith("O") or not two_digits(c[1:3]):
        return False
    n = int(c[1:3])
    return 80 <= n <= 82 or 85 <= n <= 92


def _pregnant_icd(c: str) -> bool:
    if c.startswith(("Z33.1", "Z34", "O09")):
        return True
    return c.startswith("O") and len(c) >= 3 and (two_digits(c[1:3]) or c[1:3] == "9A") and not _ends_pregnancy_icd(c)


def _condition_kind(cond: dict[str, Any]) -> tuple[str, str]:
    """('pregnant' | 'ended' | '', what was read)."""
    return _coded_kind(codings(cond.get("code")))


@lru_cache(maxsize=1024)          # pure function of the codings (strings), the same few codes call after call
def _coded_kind(coded: tuple[tuple[str, str, str], ...]) -> tuple[str, str]:
    for system, code, display in coded:
        if is_icd10(system):
            c = _icd(code)
            if _ends_pregnancy_icd(c):
                return "ended", f"{c} {display}".strip()
            if _pregnant_icd(c):
                return "pregnant", f"{c} {display}".strip()
        elif is_snomed(system):
            if code in PREGNANT_SNOMED:
                return "pregnant", f"SNOMED {code} {display}".strip()
            if code in NOT_PREGNANT_SNOMED:
                return "ended", f"SNOMED {code} {display}".strip()
    return "", ""


def _condition_date(cond: dict[str, Any]) -> dt.date | None:
    start, _ = choice_dates(cond, "onset")
    return start or parse_date(cond.get("recordedDate"))


def _abated(cond: dict[str, Any]) -> dt.date | None:
    start, _ = choice_dates(cond, "abatement")
    if start:
        return start
    if cond.get("abatementBoolean") is False:
        return None
    return dt.date.min if any(k.startswith("abatement") for k in cond) else None


def _source(resource: dict[str, Any]) -> str:
    """"Type/id" as the pregnancy fact names it, made only for a resource that says something about pregnancy."""
    return f"{resource.get('resourceType')}/{as_str(resource.get('id'))}"


def current_pregnancy(resources: Iterable[dict[str, Any]], as_of: dt.date) -> PregnancyFact | None:
    """The current pregnancy of one patient's record, or None. Never raises on odd shapes."""
    pregnant: list[tuple[dt.date, str, str]] = []     # (since, basis, source)
    ended: list[dt.date] = []
    observations: list[tuple[dt.date, bool, str, str]] = []
    for r in resources:
        rtype = r.get("resourceType")
        if rtype == "Condition":
            kind, basis = _condition_kind(r)      # (kept per code) first: most Conditions are not about pregnancy
            if not kind or status_code(r.get("verificationStatus")) in _IGNORED_VERIFICATION:
                continue
            when = _condition_date(r)
            if kind == "ended":
                if when:
                    ended.append(when)
                continue
            if kind != "pregnant" or when is None:
                continue
            abated = _abated(r)
            if abated is not None:
                if abated != dt.date.min:
                    ended.append(abated)
                continue
            if status_code(r.get("clinicalStatus")) in _ENDED_CLINICAL:
                continue
            if status_code(r.get("clinicalStatus")) not in ("active", "recurrence", "relapse"):
                continue
            if 0 <= (as_of - when).days <= CONDITION_WINDOW_DAYS:
                pregnant.append((when, f"{basis} ({status_code(r.get('clinicalStatus'))})", _source(r)))
        elif rtype == "Observation":
            if as_str(r.get("status")).lower() in ("entered-in-error", "cancelled"):
                continue
            if not any(is_loinc(s) and c == PREGNANCY_STATUS_LOINC for s, c, _ in codings(r.get("code"))):
                continue
            start, _ = choice_dates(r, "effective")
            when = start or parse_date(r.get("issued"))
            if when is None:
                continue
            value = r.get("valueCodeableConcept")
            codes = {c for _, c, _ in codings(value)}
            if codes & PREGNANT_ANSWERS:
                observations.append((when, True, f"pregnancy status: {all_text(value) or 'pregnant'}", _source(r)))
            elif codes & NOT_PREGNANT_ANSWERS:
                observations.append((when, False, "", _source(r)))
    if observations:
        when, is_pregnant, basis, source = max(observations, key=lambda o: (o[0], o[3]))
        if is_pregnant and 0 <= (as_of - when).days <= OBSERVATION_WINDOW_DAYS:
            pregnant.append((when, basis, source))
        elif not is_pregnant:
            ended.append(when)
    current = [p for p in pregnant if not any(e > p[0] for e in ended)]
    if not current:
        return None
    since, basis, source = min(current, key=lambda p: (p[0], p[2]))
    weeks = round((as_of - since).days / 7, 1)
    return PregnancyFact(since=since, gestational_weeks=weeks, basis=basis, source=source)
