"""Medication resources -> `Exposure`s (one per mapped ingredient per resource).

What counts as history (issue 5): MedicationStatement, MedicationRequest and MedicationAdministration,
except entered-in-error / not-taken / not-done / cancelled / draft records and requests whose intent is
proposal or plan (those are suggestions, not treatment). Dates come from effective[x]; for requests
from dosageInstruction timing bounds (boundsPeriod, boundsDuration, count x period), then
dispenseRequest.validityPeriod, then authoredOn.

Reported history (issue 10): outside records arrive as MedicationStatements, or as requests with
`reportedBoolean` / `reportedReference`, often with intent `plan`. A plan or proposal whose status is
`completed`, or a reported one that is `active`, is therapy that happened: its status and dates say so.

The drug is named by `medicationCodeableConcept`, or by `medicationReference` to a contained Medication
("#id") or one gathered with the record (`Medication/<id>`, absolute URL, `urn:uuid:` fullUrl). A
reference that resolves nowhere is identified by its display if it has one, and is always reported.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any, Mapping

from .fhir_json import (all_text, as_dict, as_list, as_str, choice_dates, clean_display, codings, extensions,
                       parse_date, period, ref_type_id, source_of)
from .model import Drug, Exposure, RecordIssue
from .terminology import MedicationMapping, map_codeable_concept

log = logging.getLogger(__name__)

MEDICATION_TYPES = ("MedicationStatement", "MedicationRequest", "MedicationAdministration")
NOT_HISTORY_STATUS = frozenset({"entered-in-error", "not-taken", "not-done", "cancelled", "draft", "unknown-never"})
NOT_HISTORY_INTENT = frozenset({"proposal", "plan"})
ONGOING_STATUS = {
    "MedicationStatement": frozenset({"active"}),
    "MedicationRequest": frozenset({"active"}),
    "MedicationAdministration": frozenset({"in-progress"}),
}
CURATIVE, PALLIATIVE = "373808002", "363676003"
# 266721009 absent response (mCODE termination reasons), 271299001 patient's condition worsened (mCODE disease
# status), 444391001 malignant tumor progression (P, public FHIR code). 385633008 removed (audit 2026-12-02): public
# value sets give it as "Improving" / "Goal achieved", the opposite of progression.
PROGRESSION_CODES = frozenset({"266721009", "271299001", "444391001"})
_PROGRESSION_TEXT = re.compile(r"progress|absent response|no response|not respond|refractory|treatment failure", re.I)
_UNITS_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1, "wk": 7, "mo": 30.4375, "a": 365.25}


def resolve_medication(resource: dict[str, Any], medications: Mapping[str, dict[str, Any]]
                       ) -> tuple[MedicationMapping, str]:
    """(mapping, reference problem or "") of `medicationCodeableConcept`, or of `medicationReference` to a
    contained / bundled Medication. A pair, not a frozen dataclass: built per medication resource, and a frozen
    instance costs some 3,000 instructions."""
    cc = resource.get("medicationCodeableConcept")
    if isinstance(cc, dict):
        return map_codeable_concept(cc), ""
    ref = as_dict(resource.get("medicationReference"))
    ref_display = as_str(ref.get("display"))
    reference = as_str(ref.get("reference")).strip()
    med: dict[str, Any] | None = None
    if reference.startswith("#"):
        for c in as_list(resource.get("contained")):
            if isinstance(c, dict) and c.get("resourceType") == "Medication" and c.get("id") == reference[1:]:
                med = c
                break
    elif reference:
        med = medications.get(reference)                 # urn:uuid:... (Bundle fullUrl) or an exact key
        tid = ref_type_id(reference) if med is None else None
        if tid and tid[0] == "Medication":
            med = medications.get(tid[1])
    if med is None:
        if reference:
            problem = f"medication reference {reference!r} not found"
        elif ref_display:
            problem = "medicationReference without a reference"
        else:
            problem = "no medication given"
        return map_codeable_concept({}, ref_display), problem
    mapping = map_codeable_concept(med.get("code") if isinstance(med.get("code"), dict) else {}, ref_display)
    if not mapping.drugs:                     # a Medication with only ingredients (combination / compounded)
        drugs: dict[str, Drug] = {}
        names = []
        for ing in as_list(med.get("ingredient")):
            item = as_dict(ing).get("itemCodeableConcept")
            if isinstance(item, dict):
                m = map_codeable_concept(item)
                drugs.update((d.rxnorm, d) for d in m.drugs)
                names.append(m.display)
        if drugs:
            mapping = MedicationMapping(tuple(sorted(drugs.values(), key=lambda d: d.rxnorm)), "rxnorm",
                                        mapping.display or " / ".join(n for n in names if n))
    return mapping, ""


def _reported(resource: dict[str, Any]) -> bool:
    return resource.get("reportedBoolean") is True or isinstance(resource.get("reportedReference"), dict)


def _happened(request: dict[str, Any], status: str) -> bool:
    """A plan/proposal request that records therapy given: completed, or reported from elsewhere and active."""
    return status == "completed" or (_reported(request) and status in ("active", "on-hold", "stopped"))


def procedure_intent(resource: dict[str, Any]) -> str | None:
    if "extension" not in resource:         # most records: nothing to look through
        return None
    for ext in extensions(resource, "mcode-procedure-intent"):
        for _, code, _ in codings(ext.get("valueCodeableConcept")):
            if code == CURATIVE:
                return "curative"
            if code == PALLIATIVE:
                return "palliative"
    return None


def _status_reason(resource: dict[str, Any]) -> tuple[str, bool]:
    if "statusReason" not in resource and "extension" not in resource and "reasonNotTaken" not in resource:
        return "", False                    # most records: no reason given
    concepts = list(as_list(resource.get("statusReason")))
    concepts += [as_dict(e).get("valueCodeableConcept") for e in extensions(resource, "treatment-termination-reason")]
    concepts += as_list(resource.get("reasonNotTaken"))
    if not concepts:
        return "", False                    # mCODE resources: an extension, usually the procedure intent only
    text = clean_display(" ; ".join(t for t in (all_text(c) for c in concepts if isinstance(c, dict)) if t))
    progressed = any(code in PROGRESSION_CODES for c in concepts for _, code, _ in codings(c)) \
        or bool(_PROGRESSION_TEXT.search(text))
    return text, progressed


def _duration_days(value: Any) -> float | None:
    d = as_dict(value)
    v = d.get("value")
    unit = as_str(d.get("code")) or as_str(d.get("unit"))
    unit = {"day": "d", "days": "d", "week": "wk", "weeks": "wk", "month": "mo", "months": "mo", "year": "a",
            "years": "a", "hour": "h", "hours": "h"}.get(unit.lower(), unit)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or unit not in _UNITS_DAYS:
        return None
    return float(v) * _UNITS_DAYS[unit]


def _request_dates(mr: dict[str, Any]) -> tuple[dt.date | None, dt.date | None]:
    starts: list[dt.date] = []
    ends: list[dt.date] = []
    for di in as_list(mr.get("dosageInstruction")):
        repeat = as_dict(as_dict(as_dict(di).get("timing")).get("repeat"))
        s, e = period(repeat.get("boundsPeriod"))
        if s:
            starts.append(s)
            if not e:
                days = _duration_days(repeat.get("boundsDuration"))
                count, per = repeat.get("count"), repeat.get("period")
                if days is None and isinstance(count, int) and not isinstance(count, bool) and count > 0 \
                        and isinstance(per, (int, float)) and not isinstance(per, bool):
                    unit = as_str(repeat.get("periodUnit"))
                    if unit in _UNITS_DAYS:
                        freq = repeat.get("frequency") if isinstance(repeat.get("frequency"), int) else 1
                        days = (count / max(freq, 1) - 1) * per * _UNITS_DAYS[unit]
                if days is not None and 0 <= days < 36500:
                    e = s + dt.timedelta(days=round(days))
        if e:
            ends.append(e)
        for t in as_list(as_dict(as_dict(di).get("timing")).get("event")):
            d = parse_date(t)
            if d:
                starts.append(d)
                ends.append(d)
    if not starts:
        s, e = period(as_dict(as_dict(mr.get("dispenseRequest")).get("validityPeriod")))
        if s:
            starts.append(s)
        if e:
            ends.append(e)
    if not starts:
        a = parse_date(mr.get("authoredOn"))
        if a:
            starts.append(a)
    return (min(starts) if starts else None), (max(ends) if ends else None)


def exposures_of(resource: dict[str, Any], medications: Mapping[str, dict[str, Any]], as_of: dt.date,
                 source: str | None = None) -> tuple[list[Exposure], list[RecordIssue], list[RecordIssue]]:
    """(exposures, unmapped issues, skipped issues) for one medication resource. Never raises on shape.
    `source`: its "Type/id" when the caller already has it."""
    rtype = resource.get("resourceType")
    source = source or source_of(resource)
    status = as_str(resource.get("status")).lower()
    if status in NOT_HISTORY_STATUS:
        return [], [], []
    if rtype == "MedicationRequest":
        intent = as_str(resource.get("intent")).lower()
        if intent in NOT_HISTORY_INTENT and not _happened(resource, status):
            return [], [], []
        if as_dict(resource.get("doNotPerform")) or resource.get("doNotPerform") is True:
            return [], [], []
        start, end = _request_dates(resource)
    elif rtype == "MedicationStatement":
        if status == "intended":
            return [], [], []
        start, end = choice_dates(resource, "effective")
    else:
        start, end = choice_dates(resource, "effective")
    mapping, reference_problem = resolve_medication(resource, medications)
    unmapped: list[RecordIssue] = []
    if not mapping.drugs:
        what = mapping.display or ", ".join(mapping.unknown_codes) or "no code or name"
        problem = reference_problem or "medication not in the RxNorm/ATC roll-up table"
        when = "" if not reference_problem else \
            f" ({rtype}, {start.isoformat()})" if start else f" ({rtype}, undated)"
        unmapped.append(RecordIssue(source, f"{problem}: {what}" + (f" ({', '.join(mapping.unknown_codes)})"
                                                                       if mapping.unknown_codes and mapping.display else "")
                                    + when))
        return [], unmapped, []
    if mapping.via == "name":
        why = reference_problem or f"code {', '.join(mapping.unknown_codes) or '(none)'} not in the roll-up table"
        unmapped.append(RecordIssue(source, f"identified by name as {', '.join(d.name for d in mapping.drugs)} "
                                            f"({why}): {mapping.display!r}", info=True))
    if mapping.display_conflict:
        log.info("mapping.display_conflict", extra={"resource_type": rtype})   # no ids or drug names in logs
        unmapped.append(RecordIssue(source, "code/display conflict: " + mapping.display_conflict))
    if start and end and end < start:
        start, end = end, start
    if start and start > as_of:
        return [], unmapped, [RecordIssue(source, f"{rtype} starts after {as_of.isoformat()} "
                                                  f"({start.isoformat()}): planned, not history")]
    ongoing = status in ONGOING_STATUS.get(str(rtype), ()) and (end is None or end >= as_of)
    reason, progressed = _status_reason(resource)
    intent = procedure_intent(resource)
    last = None if ongoing else (min(end, as_of) if end else None)
    # in Exposure's field order (drug, start, end, ongoing, status, resource_type, source, intent, status_reason,
    # progressed): keywords cost a dict per instance, a fifth of building it
    exposures = [Exposure(d, start, last, ongoing, status, str(rtype), source, intent, reason, progressed)
                 for d in mapping.drugs]
    return exposures, unmapped, []
