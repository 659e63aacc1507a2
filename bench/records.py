"""Patients for the bench: one realistic HER2+ record (with draft orders for the order hooks) and
synthetic histories of a given size for the scaling runs.

Realistic record, first found wins: `../shared/scenarios/S02-*` (relapse after adjuvant trastuzumab,
THP drafted: exercises every hook), else the repo's `sandbox/patients/demo-2-*.json` with its
`sandbox/drafts/demo-2-*.json` (the same situation), else a built-in record
(so the bench runs in a fresh clone). Synthetic records come from `bench.synthetic` for the
in-process mapping target (a realistic chart), and from `synthetic_history` below for the
service scaling runs: a built-in HER2+ core plus an LVEF series and medication administrations
(5 Observations per medication resource), every one of them returned by the service's own prefetch
queries, so a history of N resources reaches the service as N resources (the worst case).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.synthetic import large_record
from cds_service.relative_dates import load_json

REPO = Path(__file__).resolve().parent.parent
SHARED_SCENARIOS = REPO.parent / "shared" / "scenarios"
SANDBOX_PATIENTS = REPO / "sandbox" / "patients"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"


@dataclass(frozen=True)
class BenchPatient:
    patient_id: str
    resources: tuple[dict[str, Any], ...]          # loaded into the FHIR server
    drafts: tuple[dict[str, Any], ...]             # draft MedicationRequests for order-select / order-sign
    source: str                                    # where the record came from (printed in the report)
    transaction: dict[str, Any] | None = None      # post as-is when the record came as a transaction Bundle
    counts: dict[str, int] = field(default_factory=dict)


def _counts(resources: tuple[dict[str, Any], ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in resources:
        out[r["resourceType"]] = out.get(r["resourceType"], 0) + 1
    return out


def _from_scenario(folder: Path, today: dt.date) -> BenchPatient:
    bundle = load_json(folder / "bundle.json", today)
    cases = load_json(folder / "cases.json", today)
    drafts: tuple[dict[str, Any], ...] = ()
    for case in cases.get("cases", []):
        if case.get("draftOrders"):
            drafts = tuple(case["draftOrders"])
            break
    resources = tuple(e["resource"] for e in bundle["entry"])
    patient = cases.get("patient") or next(r["id"] for r in resources if r["resourceType"] == "Patient")
    return BenchPatient(patient, resources, drafts or tuple(thp_drafts(patient, today)),
                        f"scenario {folder.name}", bundle, _counts(resources))


def _from_sandbox(path: Path, today: dt.date) -> BenchPatient:
    """A demo patient (transaction Bundle) and its drafts file `sandbox/drafts/<demo-N>-*.json`."""
    data = load_json(path, today)
    resources = tuple(e["resource"] for e in data.get("entry", []))
    patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    stem = "-".join(path.stem.split("-")[:2])                       # demo-2-early-relapse -> demo-2
    drafts: tuple[dict[str, Any], ...] = ()
    for draft_file in sorted((SANDBOX_PATIENTS.parent / "drafts").glob(f"{stem}-*.json")):
        bundle = load_json(draft_file, today)
        drafts = tuple(e["resource"] for e in bundle.get("entry", []) if "resource" in e)
        break
    return BenchPatient(patient, resources, drafts or tuple(thp_drafts(patient, today)),
                        f"sandbox {path.relative_to(REPO)}", data if data.get("type") == "transaction" else None,
                        _counts(resources))


def realistic_patient(today: dt.date, prefer: str = "auto") -> BenchPatient:
    """The HER2+ record the per-hook runs use (see the module docstring for the order)."""
    if prefer in ("auto", "shared"):
        folders = sorted(SHARED_SCENARIOS.glob("S02-*")) if SHARED_SCENARIOS.is_dir() else []
        if folders and (folders[0] / "bundle.json").exists():
            return _from_scenario(folders[0], today)
    if prefer in ("auto", "sandbox") and SANDBOX_PATIENTS.is_dir():
        paths = sorted(SANDBOX_PATIENTS.glob("*.json"), key=lambda p: (not p.name.startswith("demo-2-"), p.name))
        for path in paths:
            try:
                return _from_sandbox(path, today)
            except (KeyError, StopIteration, ValueError):
                continue
    core = tuple(her2_core("bench-pat", today))
    return BenchPatient("bench-pat", core, tuple(thp_drafts("bench-pat", today)), "built-in bench record",
                        None, _counts(core))


def second_line_patient(today: dt.date) -> BenchPatient:
    """The second-line record of issue 15's CPU target: `../shared/scenarios/S01-*` (HER2+ HR- MBC with
    liver metastases, progressed after first-line TCH), else the built-in record (the same situation)."""
    folders = sorted(SHARED_SCENARIOS.glob("S01-*")) if SHARED_SCENARIOS.is_dir() else []
    if folders and (folders[0] / "bundle.json").exists():
        return _from_scenario(folders[0], today)
    core = tuple(her2_core("bench-2l", today))
    return BenchPatient("bench-2l", core, tuple(thp_drafts("bench-2l", today)), "built-in bench record (2nd line)",
                        None, _counts(core))


# ----------------------------------------------------------------------------- built-in records
def _med(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": RXNORM, "code": code, "display": display}], "text": display}


def thp_drafts(patient_id: str, today: dt.date) -> list[dict[str, Any]]:
    """Pertuzumab + trastuzumab + docetaxel drafted today (order-select / order-sign context)."""
    out = []
    for code, name in (("1298944", "pertuzumab"), ("224905", "trastuzumab"), ("72962", "docetaxel")):
        out.append({"resourceType": "MedicationRequest", "id": f"{patient_id}-draft-{name}", "status": "draft",
                    "intent": "order", "medicationCodeableConcept": _med(code, name),
                    "subject": {"reference": f"Patient/{patient_id}"},
                    "authoredOn": f"{today.isoformat()}T00:00:00Z",
                    "dosageInstruction": [{"text": "every 21 days"}]})
    return out


def her2_core(patient_id: str, today: dt.date) -> list[dict[str, Any]]:
    """HER2+ HR- breast cancer, liver metastases, progressed after first-line TCH (8 resources)."""
    subject = {"reference": f"Patient/{patient_id}"}
    d = lambda days: (today - dt.timedelta(days=days)).isoformat()   # noqa: E731
    active = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]}
    confirmed = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]}
    out: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": patient_id, "gender": "female", "birthDate": "1970-03-14",
         "name": [{"family": "Bench", "given": ["Test"]}]},
        {"resourceType": "Condition", "id": f"{patient_id}-primary", "clinicalStatus": active,
         "verificationStatus": confirmed, "subject": subject, "onsetDateTime": d(700),
         "code": {"coding": [{"system": ICD10, "code": "C50.911",
                              "display": "Malignant neoplasm of unspecified site of right female breast"}]}},
        {"resourceType": "Condition", "id": f"{patient_id}-liver", "clinicalStatus": active,
         "verificationStatus": confirmed, "subject": subject, "onsetDateTime": d(400),
         "code": {"coding": [{"system": ICD10, "code": "C78.7",
                              "display": "Secondary malignant neoplasm of liver and intrahepatic bile duct"}]}},
        {"resourceType": "Observation", "id": f"{patient_id}-her2", "status": "final", "subject": subject,
         "effectiveDateTime": d(690),
         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                   "code": "laboratory"}]}],
         "code": {"coding": [{"system": LOINC, "code": "48676-1", "display": "HER2 [Interpretation] in Tissue"}]},
         "valueCodeableConcept": {"coding": [{"system": LOINC, "code": "LA6576-8", "display": "Positive"}]}},
    ]
    for code, name in (("72962", "docetaxel"), ("40048", "carboplatin"), ("224905", "trastuzumab")):
        out.append({"resourceType": "MedicationRequest", "id": f"{patient_id}-mr-{name}", "status": "completed",
                    "intent": "order", "subject": subject, "medicationCodeableConcept": _med(code, name),
                    "authoredOn": d(390),
                    "dispenseRequest": {"validityPeriod": {"start": d(390), "end": d(60)}}})
    out.append({"resourceType": "Observation", "id": f"{patient_id}-lvef-0", "status": "final", "subject": subject,
                "effectiveDateTime": d(30),
                "code": {"coding": [{"system": LOINC, "code": "10230-1", "display": "Left ventricular Ejection fraction"}]},
                "valueQuantity": {"value": 60, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}})
    return out


# LVEF codes the service asks for (services.PATIENT_RECORD): every filler Observation is one the service's
# own query returns, so a history of N resources reaches the service as N resources (worst case).
_LVEF = (("10230-1", "Left ventricular Ejection fraction"),
         ("18043-0", "Left ventricular Ejection fraction by US"),
         ("8806-2", "Left ventricular Ejection fraction by 2D echo"))
_SUPPORTIVE = (("26225", "ondansetron"), ("3264", "dexamethasone"), ("5640", "ibuprofen"))
_TCH = (("72962", "docetaxel"), ("40048", "carboplatin"), ("224905", "trastuzumab"))


def synthetic_history(total: int, patient_id: str, today: dt.date) -> list[dict[str, Any]]:
    """A record of `total` resources (the 8-resource core plus fillers). Fillers keep the clinical
    picture (TCH administrations inside the first-line window, supportive drugs, an LVEF series of
    55-64 %)."""
    core = her2_core(patient_id, today)
    extra = max(0, total - len(core))
    n_meds = extra // 6
    n_obs = extra - n_meds
    subject = {"reference": f"Patient/{patient_id}"}
    out = list(core)
    for i in range(n_obs):
        code, display = _LVEF[i % len(_LVEF)]
        day = (today - dt.timedelta(days=5 + (i * 7) % 680)).isoformat()
        out.append({"resourceType": "Observation", "id": f"{patient_id}-obs-{i}", "status": "final",
                    "subject": subject, "effectiveDateTime": day,
                    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                              "code": "imaging"}]}],
                    "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                    "valueQuantity": {"value": 55 + i % 10, "unit": "%",
                                      "system": "http://unitsofmeasure.org", "code": "%"}})
    for i in range(n_meds):
        if i % 3 == 0:
            code, name = _TCH[(i // 3) % 3]
            day = (today - dt.timedelta(days=70 + (i * 3) % 310)).isoformat()
        else:
            code, name = _SUPPORTIVE[i % len(_SUPPORTIVE)]
            day = (today - dt.timedelta(days=5 + (i * 3) % 600)).isoformat()
        out.append({"resourceType": "MedicationAdministration", "id": f"{patient_id}-ma-{i}", "status": "completed",
                    "subject": subject, "medicationCodeableConcept": _med(code, name),
                    "effectiveDateTime": f"{day}T10:00:00Z"})
    return out


def mapping_record(n_obs: int, n_meds: int, patient_id: str, today: dt.date) -> tuple[list[dict[str, Any]], str]:
    """(resources, generator) for the in-process mapping target: a realistic chart
    (`bench.synthetic.large_record`: mostly irrelevant labs, as in a real chart)."""
    return list(large_record(n_obs, n_meds, patient_id, today)), "bench.synthetic.large_record"
