"""Authored fixtures equivalent to the public mCODE examples (see fixtures/README.md)."""
from __future__ import annotations

from pathlib import Path

from cds_service.relative_dates import load_json
from fhir_mappings import summarize
from fhir_mappings import model as m
from support import TODAY, ago, bundle_resources

FIXTURES = Path(__file__).with_name("fixtures")


def load(name: str, patient: str) -> m.PatientSummary:
    return summarize(bundle_resources(load_json(FIXTURES / name, TODAY)), patient, TODAY)


def test_jenny_m_like_is_er_positive_pr_negative_her2_negative_breast_cancer():
    s = load("jenny_m_like.json", "fixture-jm")
    assert s.breast_cancer.present and s.breast_cancer.onset == ago(2800)
    assert (s.her2.status, s.er.status, s.pr.status) == (m.ReceptorStatus.NEGATIVE, m.ReceptorStatus.POSITIVE,
                                                        m.ReceptorStatus.NEGATIVE)
    assert s.hr_status == m.ReceptorStatus.POSITIVE


def test_jenny_m_like_stage_iiic_and_cm0_are_not_metastatic():
    s = load("jenny_m_like.json", "fixture-jm")
    assert not s.metastatic.metastatic and s.metastatic.first_known is None


def test_jenny_m_like_therapy_is_adjuvant_ac_t_then_anastrozole():
    t = load("jenny_m_like.json", "fixture-jm").therapy
    assert [(r.setting, set(r.rxnorm)) for r in t.regimens] == [
        (m.Setting.ADJUVANT, {"3639", "3002", "56946"}), (m.Setting.ADJUVANT, {"84857"})]
    assert t.metastatic_lines == 0 and t.early_her2_end is None and t.tfi_months is None
    assert t.ever_given == {"3639", "3002", "56946", "84857"}


def test_jenny_m_like_has_no_heart_failure_and_nothing_unread():
    s = load("jenny_m_like.json", "fixture-jm")
    assert s.heart_failure == () and s.ild == () and s.skipped == () and s.unmapped == ()


def test_brain_metastasis_of_nsclc_is_not_breast_metastasis():
    s = load("nsclc_brain_metastasis.json", "fixture-ln")
    assert not s.breast_cancer.present
    assert s.breast_cancer.other_primaries == ("Non-small cell lung cancer",)   # no SNOMED semantic tag
    assert not s.metastatic.metastatic and not s.metastatic.brain


def test_chf_condition_is_heart_failure():
    (hf,) = load("chf_condition.json", "fixture-hf").heart_failure
    assert (hf.kind, hf.code, hf.clinical_status, hf.onset) == ("heart-failure", "I50.32", "active", ago(900))
    assert hf.source == "Condition/fixture-hf-chf"
