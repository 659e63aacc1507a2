"""The summary of each demo patient in sandbox/patients, field by field (the facts its cards rest on).

The situations are described in sandbox/patients/README.md; dates are relative (days before today).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from cds_service.relative_dates import load_json
from fhir_mappings import summarize
from fhir_mappings.model import PatientSummary
from support import SANDBOX, TODAY, bundle_resources


@dataclass(frozen=True)
class Expected:
    her2: str
    her2_method: str
    er: str
    pr: str
    metastatic_days_ago: int | None
    sites: set[str]
    brain: bool
    regimens: list[tuple[int | None, str, set[str], bool]]   # (line, setting, drugs, progressed)
    current_line_ongoing: bool
    tfi_months: float | None
    last_trastuzumab_days_ago: int | None
    trastuzumab_ongoing: bool
    ild: bool
    latest_lvef: tuple[float, int] | None                     # (value %, days ago)


TCH = {"docetaxel", "carboplatin", "trastuzumab"}
EXPECTED = {
    "demo-1-2l-after-tch": Expected(
        "positive", "interpretation", "positive", "negative", 398, {"liver", "lung"}, False,
        [(1, "metastatic", TCH, True)], False, None, 49, False, False, (60.0, 40)),
    "demo-2-early-relapse-after-adjuvant": Expected(
        "positive", "ISH", "negative", "negative", 25, {"bone", "liver"}, False,
        [(None, "early", {"paclitaxel", "pertuzumab", "trastuzumab"}, False)], False, 4.1, 150, False, False,
        (63.0, 20)),
    "demo-3-ild-history": Expected(
        "positive", "IHC", "negative", "negative", 615, {"distant lymph node", "liver", "lung"}, False,
        [(1, "metastatic", {"docetaxel", "pertuzumab", "trastuzumab"}, True)], False, None, 40, True, True,
        (57.0, 45)),
    "demo-4-brain-metastases": Expected(
        "positive", "interpretation", "positive", "positive", 498, {"bone", "brain"}, True,
        [(1, "metastatic", {"letrozole", "paclitaxel", "pertuzumab", "trastuzumab"}, True)], False, None, 35, True,
        False, (59.0, 60)),
    "demo-5-anthracycline-order": Expected(
        "positive", "IHC", "negative", "negative", 328, {"liver"}, False,
        [(1, "metastatic", {"docetaxel", "pertuzumab", "trastuzumab"}, True)], False, None, 33, True, False,
        (58.0, 60)),
    "demo-6-her2-negative": Expected(
        "negative", "interpretation", "positive", "positive", 90, {"bone"}, False,
        [(1, "metastatic", {"letrozole"}, False)], True, None, None, False, False, None),
    "demo-7-de-novo-first-line": Expected(
        "positive", "interpretation", "negative", "negative", 20, {"lung"}, False,   # axillary nodes are regional
        [], False, None, None, False, False, (65.0, 10)),
}


def days_ago(day: dt.date | None) -> int | None:
    return None if day is None else (TODAY - day).days


def summary_of(name: str) -> PatientSummary:
    resources = bundle_resources(load_json(SANDBOX / "patients" / f"{name}.json", TODAY))
    patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    return summarize(resources, patient, TODAY)


def test_every_demo_patient_has_an_expected_summary():
    assert {p.stem for p in (SANDBOX / "patients").glob("demo-*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_demo_patient_summary_field_by_field(name):
    want, s = EXPECTED[name], summary_of(name)
    t = s.therapy
    assert s.breast_cancer.present and s.skipped == () and s.unmapped == ()
    assert (s.her2.status.value, s.her2.method) == (want.her2, want.her2_method), s.her2.reason
    assert (s.er.status.value, s.pr.status.value) == (want.er, want.pr)
    assert s.metastatic.metastatic and days_ago(s.metastatic.first_known) == want.metastatic_days_ago
    assert {site.site for site in s.metastatic.sites} == want.sites and s.metastatic.brain == want.brain
    assert [(r.line, r.setting.value, {d.name for d in r.drugs}, r.progressed) for r in t.regimens] == want.regimens
    assert t.current_line_ongoing == want.current_line_ongoing
    assert t.tfi_months == want.tfi_months
    assert days_ago(t.last_trastuzumab_dose) == want.last_trastuzumab_days_ago
    assert t.trastuzumab_ongoing == want.trastuzumab_ongoing
    assert bool(s.ild) == want.ild and s.heart_failure == ()
    latest = s.lvef.latest
    assert (None if latest is None else (latest.value, days_ago(latest.date))) == want.latest_lvef
