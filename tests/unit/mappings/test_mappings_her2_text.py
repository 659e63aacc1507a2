"""HER2 / ER / PR read from text as EHRs send it: valueString, text-only codes, local codes, reports.

A misread HER2 is the worst error this service can make, so every negative phrasing found in real
pathology wording is table-tested under each code it arrives with, and a text that contradicts itself is
reported, never guessed.
"""
from __future__ import annotations

import pytest

from fhir_mappings.model import ReceptorStatus as S
from fhir_mappings.receptors import AMBIGUOUS, ER, HER2, PR, read_text
from mappings_helpers import LOINC, breast, observation, summary

LOCAL = "urn:oid:1.2.840.114350.1.13.0.1.7.2.768282"     # a local (non-LOINC) lab code system

NEGATIVE_PHRASES = [
    "Negative", "negative", "NEG", "HER2 negative", "HER2-negative", "HER2/neu negative", "Not amplified",
    "NOT AMPLIFIED", "HER2 NOT AMPLIFIED. HER2/CEP17 ratio 1.3", "Non-amplified", "nonamplified", "Unamplified",
    "No amplification", "No HER2 gene amplification", "No evidence of amplification", "Amplification not detected",
    "ERBB2 gene amplification: not detected", "Negative for amplification", "0", "1+", "IHC 1+", "IHC 0",
    "Score 0", "Score 1+", "HER2 (IHC): 1+", "Negative (1+)", "Negative (0)", "Negative (score 1+)",
    "HER2-low", "HER2 low", "HER2-ultralow", "Negative for HER2 protein overexpression (score 1+)",
    "No HER2 overexpression", "Not overexpressed", "not positive", "HER2/CEP17 ratio 1.3", "ratio: 1.1",
    "HER2/CEP17 ratio < 2.0", "less than 1.8",
    "2+ (Equivocal); FISH not amplified, HER2/CEP17 ratio 1.4",
    "HER2 IHC 2+ equivocal. Reflex FISH: no amplification (ratio 1.2)",
    "Negative for HER2 protein overexpression. Positive and negative controls stained appropriately.",
    "ER positive (95%); PR positive (40%); HER2 negative (IHC 1+)",
    "ER/PR positive, HER2 negative", "HER-2/neu 1+ (negative)", "Negative, score 0",
    "FISH: not amplified (HER2/CEP17 ratio = 1.06; mean HER2 copy number 1.9)",
]
POSITIVE_PHRASES = [
    "Positive (3+)", "3+", "IHC 3+", "HER2 positive", "HER2-positive", "Amplified", "AMPLIFIED",
    "HER2 gene amplification detected", "HER2/CEP17 ratio 2.4", "ratio 4.6", "greater than 2.2",
    "2+ (Equivocal); FISH amplified, HER2/CEP17 ratio 2.8", "ER negative; PR negative; HER2 positive (3+)",
]
EQUIVOCAL_PHRASES = ["2+ (Equivocal)", "Equivocal", "IHC 2+", "Score 2+ (equivocal)", "Indeterminate",
                     "greater than 1.8"]
AMBIGUOUS_PHRASES = ["HER2 positive but not amplified", "Positive (1+)", "Negative (3+)", "3+, not amplified",
                     "HER2/CEP17 ratio 1.8; average HER2 copy number 6.3 signals/cell"]

# (code, method) every phrase may arrive under: overall interpretation, IHC, ISH, a local code named HER2
CODES = [("48676-1", LOINC, ""), ("85319-2", LOINC, ""), ("85318-4", LOINC, ""), ("12345", LOCAL, "HER2 status")]


def _obs(code: str, system: str, text: str, value: str):
    o = observation(code, system=system, valueString=value)
    if text:
        o["code"] = {"coding": [{"system": system, "code": code, "display": text}], "text": text}
    return o


@pytest.mark.parametrize("code, system, text", CODES, ids=[c[0] for c in CODES])
@pytest.mark.parametrize("phrase", NEGATIVE_PHRASES)
def test_every_negative_phrasing_reads_negative_never_positive(code, system, text, phrase):
    her2 = summary(breast(), _obs(code, system, text, phrase)).her2
    assert her2.status != S.POSITIVE
    ihc_words_under_ish = code == "85318-4" and phrase in ("0", "1+", "IHC 0", "Score 0", "Score 1+", "HER2 (IHC): 1+")
    bare_number_without_method = code != "85318-4" and phrase in ("0", "less than 1.8")
    if not (ihc_words_under_ish or bare_number_without_method):
        assert her2.status == S.NEGATIVE, her2
    else:                                   # no method to read the number by: unknown, and reported
        assert her2.status in (S.NEGATIVE, S.UNKNOWN)


@pytest.mark.parametrize("phrase", [p for p in NEGATIVE_PHRASES if p not in ("0", "less than 1.8")])
def test_negative_phrasing_in_a_text_only_coded_value_reads_negative(phrase):
    obs = observation("48676-1", valueCodeableConcept={"text": phrase})
    assert summary(obs).her2.status == S.NEGATIVE


@pytest.mark.parametrize("phrase", POSITIVE_PHRASES)
def test_positive_phrasing_reads_positive(phrase):
    code = "85318-4" if "than" in phrase else "48676-1"      # a bare bound is a ratio only under an ISH code
    assert summary(_obs(code, LOINC, "", phrase)).her2.status == S.POSITIVE


@pytest.mark.parametrize("phrase", EQUIVOCAL_PHRASES)
def test_equivocal_phrasing_reads_equivocal(phrase):
    code = "85318-4" if "than" in phrase else "85319-2"
    assert summary(_obs(code, LOINC, "", phrase)).her2.status == S.EQUIVOCAL


@pytest.mark.parametrize("phrase", AMBIGUOUS_PHRASES)
def test_self_contradicting_text_is_reported_not_guessed(phrase):
    s = summary(_obs("48676-1", LOINC, "", phrase))
    assert s.her2.status == S.UNKNOWN
    assert any("contradicts itself" in i.problem for i in s.skipped)


def test_the_2_in_her2_is_not_a_ratio():
    """The bug this file exists for: "HER2 NOT AMPLIFIED" under an ISH code read the "2" as ratio 2.0."""
    assert read_text("HER2 NOT AMPLIFIED", HER2, "ISH", "presence") == (S.NEGATIVE, "HER2 not amplified")
    assert read_text("HER2", HER2, "ISH", "presence") is None
    assert read_text("ERBB2 / CEP17", HER2, "ISH", "ratio") is None


def test_unreadable_her2_text_is_reported():
    s = summary(_obs("48676-1", LOINC, "", "see scanned report"))
    assert s.her2.status == S.UNKNOWN
    assert any("HER2 result without a readable value" in i.problem and "scanned" in i.problem for i in s.skipped)


@pytest.mark.parametrize("text, marker, expected", [
    ("ER positive (95%); PR negative (<1%); HER2 negative (IHC 1+)", ER, S.POSITIVE),
    ("ER positive (95%); PR negative (<1%); HER2 negative (IHC 1+)", PR, S.NEGATIVE),
    ("Positive, 80% of tumor cells", ER, S.POSITIVE),
    ("<1%", ER, S.NEGATIVE),
    ("Negative (0%)", PR, S.NEGATIVE),
    ("Weakly positive (5%)", PR, S.POSITIVE),
    ("ER/PR positive, HER2 negative", ER, S.POSITIVE),
    ("ER/PR positive, HER2 negative", PR, S.POSITIVE),
])
def test_er_pr_text(text, marker, expected):
    read = read_text(text, marker, "IHC", "presence")
    assert read != AMBIGUOUS and read[0] == expected


@pytest.mark.parametrize("code_text, value, marker, status", [
    ("HER2 IHC", "2+ (Equivocal)", HER2, S.EQUIVOCAL),
    ("HER2/NEU BY IHC", "Positive (3+)", HER2, S.POSITIVE),
    ("HER2 FISH", "HER2 NOT AMPLIFIED. HER2/CEP17 ratio 1.3", HER2, S.NEGATIVE),
    ("HER2/CEP17 RATIO", "1.3", HER2, S.NEGATIVE),
    ("Estrogen Receptor", "Positive", ER, S.POSITIVE),
    ("ER %", "95", ER, S.POSITIVE),
    ("Progesterone Receptor", "Negative", PR, S.NEGATIVE),
])
def test_local_code_named_by_text_is_read(code_text, value, marker, status):
    obs = observation("LAB123", system=LOCAL, valueString=value)
    obs["code"] = {"coding": [{"system": LOCAL, "code": "LAB123", "display": code_text}], "text": code_text}
    s = summary(obs)
    assert {HER2: s.her2, ER: s.er, PR: s.pr}[marker].status == status


def test_serum_her2_named_by_text_is_not_tissue_status():
    obs = observation("LAB9", system=LOCAL, valueString="Positive")
    obs["code"] = {"text": "HER2/neu, serum"}
    assert summary(obs).her2.status == S.UNKNOWN


def test_local_code_next_to_loinc_uses_the_loinc_code():
    obs = observation("48676-1", valueString="Negative")
    obs["code"]["coding"].insert(0, {"system": LOCAL, "code": "99", "display": "HER2 RESULT"})
    assert summary(obs).her2.status == S.NEGATIVE


def _report(rid: str, code_text: str, results=(), conclusion: str | None = None):
    r = {"resourceType": "DiagnosticReport", "id": rid, "status": "final", "subject": {"reference": "Patient/p1"},
         "code": {"text": code_text}, "effectiveDateTime": "2026-01-10",
         "result": [{"reference": f"Observation/{o}"} for o in results]}
    if conclusion is not None:
        r["conclusion"] = conclusion
    return r


def _local(oid: str, text: str, **value):
    o = observation("L1", system=LOCAL, id=oid, **value)
    o["code"] = {"coding": [{"system": LOCAL, "code": oid, "display": text}], "text": text}
    return o


def test_diagnostic_report_gives_its_marker_to_locally_coded_results():
    s = summary(_report("fish", "HER2 FISH", ["r1", "r2"]),
                _local("r1", "Ratio", valueQuantity={"value": 1.3}),
                _local("r2", "Interpretation", valueString="Not amplified"))
    assert s.her2.status == S.NEGATIVE and "Observation/r2" in s.her2.sources


def test_diagnostic_report_conclusion_is_read_for_each_marker_it_names():
    s = summary(_report("path", "Surgical pathology report",
                        conclusion="Invasive ductal carcinoma. ER positive (90%); PR negative (<1%); HER2 negative (1+)."))
    assert (s.er.status, s.pr.status, s.her2.status) == (S.POSITIVE, S.NEGATIVE, S.NEGATIVE)


def test_receptor_report_whose_results_are_missing_is_reported():
    s = summary(_report("fish", "HER2 FISH", ["gone"]))
    assert s.her2.status == S.UNKNOWN
    assert any(i.source == "DiagnosticReport/fish" and "HER2 report without a readable result" in i.problem
               for i in s.skipped)
