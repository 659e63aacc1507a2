"""A large, realistic synthetic record for the mapping benchmark and the mapping property tests.

`large_record(5000, 1000, "bench-pat")` gives a HER2-positive metastatic patient with thousands of
lab / vital Observations (mostly irrelevant to the rules, as in a real chart), repeated receptor
tests, LVEF echoes every 3 months, and 1,000 medication resources: cycles of THP then T-DXd as
MedicationAdministrations, plus supportive drugs that are not in the roll-up table. Deterministic.
Test-data tooling, so it lives with the bench, not in the mapping package (no timed tests live here).

    python -m bench.synthetic      # prints the mapping time of the default record
"""
from __future__ import annotations

import datetime as dt
import time
from typing import Any

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"

_LABS = [("718-7", "Hemoglobin", "g/dL", 12.5), ("2951-2", "Sodium", "mmol/L", 140.0),
         ("6768-6", "Alkaline Phosphatase", "U/L", 90.0), ("1742-6", "ALT", "U/L", 25.0),
         ("2160-0", "Creatinine", "mg/dL", 0.9), ("8867-4", "Heart rate", "/min", 72.0),
         ("8480-6", "Systolic blood pressure", "mm[Hg]", 120.0), ("29463-7", "Body weight", "kg", 68.0)]
_SUPPORTIVE = [("26225", "ondansetron"), ("3264", "dexamethasone"), ("161", "acetaminophen"), ("41493", "meloxicam")]


def _ref(pid: str) -> dict[str, str]:
    return {"reference": f"Patient/{pid}"}


def _cc(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def large_record(n_obs: int = 5000, n_meds: int = 1000, patient_id: str = "bench-pat",
                 today: dt.date | None = None) -> list[dict[str, Any]]:
    """Raw FHIR R4 dicts of one patient: `n_obs` Observations and `n_meds` medication resources."""
    today = today or dt.date(2026, 12, 1)

    def day(n: int) -> str:
        return (today - dt.timedelta(days=n)).isoformat()

    pid = patient_id
    out: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1970-01-01"},
        {"resourceType": "Condition", "id": f"{pid}-primary", "subject": _ref(pid),
         "clinicalStatus": _cc("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
         "code": _cc(ICD, "C50.912", "Malignant neoplasm of unspecified site of left female breast"),
         "onsetDateTime": day(2000)},
        {"resourceType": "Condition", "id": f"{pid}-liver", "subject": _ref(pid),
         "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/condition-related",
                        "valueReference": {"reference": f"Condition/{pid}-primary"}}],
         "code": _cc(ICD, "C78.7", "Secondary malignant neoplasm of liver"), "onsetDateTime": day(1500)},
    ]
    receptor = [("48676-1", "LA6576-8", "Positive"), ("85337-4", "LA6577-6", "Negative"), ("85339-0", "LA6577-6", "Negative")]
    for i in range(n_obs):
        if i % 500 == 0:
            code, ans, disp = receptor[(i // 500) % 3]
            obs = {"resourceType": "Observation", "id": f"{pid}-rec-{i}", "status": "final", "subject": _ref(pid),
                   "code": _cc(LOINC, code, code), "effectiveDateTime": day(1990 - (i // 500)),
                   "valueCodeableConcept": _cc(LOINC, ans, disp)}
        elif i % 90 == 0:
            obs = {"resourceType": "Observation", "id": f"{pid}-lvef-{i}", "status": "final", "subject": _ref(pid),
                   "code": _cc(LOINC, "10230-1", "Left ventricular Ejection fraction"),
                   "effectiveDateTime": day(max(1, 1980 - i // 3)),
                   "valueQuantity": {"value": 60 - (i % 7), "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}}
        else:
            code, disp, unit, base = _LABS[i % len(_LABS)]
            obs = {"resourceType": "Observation", "id": f"{pid}-obs-{i}", "status": "final", "subject": _ref(pid),
                   "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                             "code": "laboratory"}]}],
                   "code": _cc(LOINC, code, disp), "effectiveDateTime": day(2000 - (i * 2000) // max(n_obs, 1)),
                   "valueQuantity": {"value": base + (i % 5) * 0.1, "unit": unit}}
        out.append(obs)
    regimens = [("224905", "trastuzumab"), ("1298944", "pertuzumab"), ("72962", "docetaxel")]
    for j in range(n_meds):
        days_ago = 1490 - (j * 1480) // max(n_meds, 1)
        if j % 4 == 3:
            code, name = _SUPPORTIVE[j % len(_SUPPORTIVE)]
        elif days_ago > 700:
            code, name = regimens[j % 3]
        else:
            code, name = ("2267574", "fam-trastuzumab deruxtecan-nxki")
        out.append({"resourceType": "MedicationAdministration", "id": f"{pid}-ma-{j}", "status": "completed",
                    "subject": _ref(pid), "medicationCodeableConcept": _cc(RXNORM, code, name),
                    "effectiveDateTime": day(days_ago) + "T10:00:00Z"})
    return out


def time_mapping(n_obs: int = 5000, n_meds: int = 1000, repeat: int = 5) -> float:
    """Best-of-`repeat` wall time (seconds) of `summarize` on `large_record(n_obs, n_meds)`."""
    from fhir_mappings import summarize

    record = large_record(n_obs, n_meds)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        summarize(record, "bench-pat", dt.date(2026, 12, 1))
        best = min(best, time.perf_counter() - t0)
    return best


if __name__ == "__main__":   # pragma: no cover
    print(f"summarize(5000 Observations, 1000 medication resources): {time_mapping() * 1000:.1f} ms (best of 5)")
