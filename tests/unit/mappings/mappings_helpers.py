"""Builders for small FHIR R4 dicts used by the mapping tests, so each test shows only what matters."""
from __future__ import annotations

import datetime as dt
from typing import Any

from fhir_mappings import summarize
from fhir_mappings.model import PatientSummary
from support import ago

AS_OF = dt.date(2026, 6, 1)
PID = "p1"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
ATC = "http://www.whocc.no/atc"
PALLIATIVE = ("363676003", "Palliative - procedure intent")
CURATIVE = ("373808002", "Curative - procedure intent")
NO_RESPONSE = ("266721009", "Absent response to treatment (situation)")

_counter = {"n": 0}


def day(days: int) -> dt.date:
    """The date `days` before AS_OF."""
    return ago(days, AS_OF)


def iso_day(days: int) -> str:
    """The same date as FHIR JSON writes it."""
    return day(days).isoformat()


def _id(prefix: str) -> str:
    _counter["n"] += 1
    return f"{prefix}-{_counter['n']}"


def cc(system: str, code: str, display: str = "", text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"coding": [{"system": system, "code": code, **({"display": display} if display else {})}]}
    if text is not None:
        out["text"] = text
    return out


def condition(system: str, code: str, display: str = "", *, onset: int | None = 100, clinical: str = "active",
              verification: str = "confirmed", id: str | None = None, related: str | None = None,
              body_site: dict[str, Any] | None = None, stage: dict[str, Any] | None = None, patient: str = PID,
              **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"resourceType": "Condition", "id": id or _id("cond"), "subject": {"reference": f"Patient/{patient}"},
                         "code": cc(system, code, display)}
    if clinical:
        r["clinicalStatus"] = cc("http://terminology.hl7.org/CodeSystem/condition-clinical", clinical)
    if verification:
        r["verificationStatus"] = cc("http://terminology.hl7.org/CodeSystem/condition-ver-status", verification)
    if onset is not None:
        r["onsetDateTime"] = iso_day(onset)
    if related:
        r["extension"] = [{"url": "http://hl7.org/fhir/StructureDefinition/condition-related",
                           "valueReference": {"reference": f"Condition/{related}"}}]
    if body_site:
        r["bodySite"] = [body_site]
    if stage:
        r["stage"] = [{"summary": stage}]
    r.update(extra)
    return r


def breast(onset: int = 400, id: str = "bc") -> dict[str, Any]:
    return condition(ICD10, "C50.912", "Malignant neoplasm of unspecified site of left female breast", onset=onset, id=id)


def observation(code: str, *, system: str = LOINC, days: int = 100, id: str | None = None, status: str = "final",
                patient: str = PID, **value: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"resourceType": "Observation", "id": id or _id("obs"), "status": status,
                         "subject": {"reference": f"Patient/{patient}"}, "code": cc(system, code, code),
                         "effectiveDateTime": iso_day(days)}
    r.update(value)
    return r


def coded(code: str, system: str = LOINC, text: str | None = None) -> dict[str, Any]:
    return {"valueCodeableConcept": cc(system, code, "", text)}


POSITIVE = coded("LA6576-8")
NEGATIVE = coded("LA6577-6")


def intent_ext(intent: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"url": "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-procedure-intent",
             "valueCodeableConcept": cc(SNOMED, *intent)}]


def med(rtype: str, code: str, *, start: int | None = None, end: int | None = None, status: str = "completed",
        display: str = "", intent: tuple[str, str] | None = None, reason: tuple[str, str] | None = None,
        id: str | None = None, patient: str = PID, system: str = RXNORM, **extra: Any) -> dict[str, Any]:
    """A medication resource; dates as days before AS_OF, placed where that resource type keeps them."""
    r: dict[str, Any] = {"resourceType": rtype, "id": id or _id(rtype[10:].lower() or "med"), "status": status,
                         "medicationCodeableConcept": cc(system, code, display, display or None)}
    r["patient" if rtype == "MedicationStatement" and extra.pop("use_patient", False) else "subject"] = {"reference": f"Patient/{patient}"}
    if rtype == "MedicationRequest":
        r["intent"] = extra.pop("request_intent", "order")
        if start is not None:
            bounds: dict[str, Any] = {"start": iso_day(start)}
            if end is not None:
                bounds["end"] = iso_day(end)
            r["dosageInstruction"] = [{"timing": {"repeat": {"boundsPeriod": bounds}}}]
            r["authoredOn"] = iso_day(start)
    elif start is not None:
        if end is None and rtype == "MedicationAdministration":
            r["effectiveDateTime"] = iso_day(start) + "T09:30:00Z"
        else:
            p = {"start": iso_day(start)}
            if end is not None:
                p["end"] = iso_day(end)
            r["effectivePeriod"] = p
    if intent:
        r["extension"] = intent_ext(intent)
    if reason:
        concept = cc(SNOMED, *reason)
        r["statusReason"] = concept if rtype == "MedicationRequest" else [concept]
    r.update(extra)
    return r


def ms(code: str, start: int | None = None, end: int | None = None, **kw: Any) -> dict[str, Any]:
    return med("MedicationStatement", code, start=start, end=end, **kw)


def mr(code: str, start: int | None = None, end: int | None = None, **kw: Any) -> dict[str, Any]:
    return med("MedicationRequest", code, start=start, end=end, **kw)


def ma(code: str, on: int, **kw: Any) -> dict[str, Any]:
    return med("MedicationAdministration", code, start=on, **kw)


def surgery(days: int, text: str = "Modified radical mastectomy, right") -> dict[str, Any]:
    return {"resourceType": "Procedure", "id": _id("proc"), "status": "completed", "subject": {"reference": f"Patient/{PID}"},
            "code": {"text": text}, "performedDateTime": iso_day(days)}


def summary(*resources: dict[str, Any], as_of: dt.date = AS_OF) -> PatientSummary:
    return summarize(list(resources), PID, as_of)
