"""HER2 / ER / PR status: every value shape, IHC 2+ resolved by ISH, serum excluded, conflicts explicit."""
from __future__ import annotations

import pytest

from fhir_mappings.model import ReceptorStatus as S
from mappings_helpers import (ICD10, LOINC, NEGATIVE, POSITIVE, SNOMED, breast, coded, condition, day, observation,
                              summary)

HER2_CASES = [
    # (name, observation kwargs, expected status, expected method, detail contains)
    ("interpretation positive", dict(code="48676-1", **POSITIVE), S.POSITIVE, "interpretation", ""),
    ("interpretation negative", dict(code="48676-1", **NEGATIVE), S.NEGATIVE, "interpretation", ""),
    ("IHC SNOMED positive", dict(code="85319-2", **coded("10828004", SNOMED, "Positive (IHC 3+)")), S.POSITIVE, "IHC", "IHC 3+"),
    ("IHC SNOMED negative 1+", dict(code="85319-2", **coded("260385009", SNOMED, "Negative (IHC 1+)")), S.NEGATIVE, "IHC", "IHC 1+"),
    ("IHC quantity 3", dict(code="85319-2", valueQuantity={"value": 3, "unit": "score"}), S.POSITIVE, "IHC", "IHC 3+"),
    ("IHC quantity 2", dict(code="85319-2", valueQuantity={"value": 2}), S.EQUIVOCAL, "IHC", "IHC 2+"),
    ("IHC quantity 1", dict(code="18474-7", valueQuantity={"value": 1}), S.NEGATIVE, "IHC", "IHC 1+"),
    ("IHC quantity 0", dict(code="72383-3", valueQuantity={"value": 0}), S.NEGATIVE, "IHC", "IHC 0+"),
    ("IHC string 3+", dict(code="85319-2", valueString="3+"), S.POSITIVE, "IHC", "IHC 3+"),
    ("IHC string 2+", dict(code="85319-2", valueString="Score 2+ (equivocal)"), S.EQUIVOCAL, "IHC", "IHC 2+"),
    ("IHC text-only concept", dict(code="85319-2", valueCodeableConcept={"text": "3+"}), S.POSITIVE, "IHC", "IHC 3+"),
    ("IHC integer", dict(code="85319-2", valueInteger=3), S.POSITIVE, "IHC", "IHC 3+"),
    ("ISH coded positive", dict(code="85318-4", **coded("10828004", SNOMED)), S.POSITIVE, "ISH", ""),
    ("ISH Synthea 'greater than 2.2'", dict(code="85318-4", valueString="greater than 2.2"), S.POSITIVE, "ISH", "> 2.2"),
    ("ISH 'greater than 1.8' is not >= 2.0", dict(code="85318-4", valueString="greater than 1.8"), S.EQUIVOCAL, "ISH", "> 1.8"),
    ("ISH 'less than 1.8'", dict(code="85318-4", valueString="less than 1.8"), S.NEGATIVE, "ISH", "< 1.8"),
    ("ISH 'not amplified'", dict(code="31150-6", valueString="Not amplified"), S.NEGATIVE, "ISH", ""),
    ("ratio 2.4", dict(code="49683-6", valueQuantity={"value": 2.4}), S.POSITIVE, "ISH", "ratio 2.4"),
    ("ratio 2.0 is amplified", dict(code="49683-6", valueQuantity={"value": 2.0}), S.POSITIVE, "ISH", "ratio 2"),
    ("ratio 1.5", dict(code="49683-6", valueQuantity={"value": 1.5}), S.NEGATIVE, "ISH", "ratio 1.5"),
    ("ratio string", dict(code="49683-6", valueString="4.6"), S.POSITIVE, "ISH", "4.6"),
]


@pytest.mark.parametrize("name, obs, status, method, detail", HER2_CASES, ids=[c[0] for c in HER2_CASES])
def test_her2_from_each_result_shape(name, obs, status, method, detail):
    her2 = summary(breast(), observation(**obs)).her2
    assert (her2.status, her2.method) == (status, method)
    assert detail in her2.detail
    assert her2.reason and her2.sources


def test_ihc_2_plus_is_resolved_by_ish_of_the_same_episode():
    her2 = summary(observation("85319-2", days=40, valueQuantity={"value": 2}),
                   observation("85318-4", days=30, valueString="greater than 2.2")).her2
    assert her2.status == S.POSITIVE and her2.method == "ISH"
    assert "resolved by ISH" in her2.reason and not her2.conflict


def test_ihc_2_plus_without_ish_is_equivocal_and_says_why():
    her2 = summary(observation("85319-2", valueQuantity={"value": 2})).her2
    assert her2.status == S.EQUIVOCAL and "without an ISH" in her2.reason


def test_ish_negative_resolves_ihc_2_plus_to_negative():
    her2 = summary(observation("85319-2", days=40, valueString="2+"),
                   observation("49683-6", days=35, valueQuantity={"value": 1.3})).her2
    assert her2.status == S.NEGATIVE and her2.method == "ISH"


def test_interpretation_wins_within_an_episode():
    her2 = summary(observation("85319-2", days=50, valueQuantity={"value": 2}),
                   observation("48676-1", days=45, **POSITIVE)).her2
    assert her2.status == S.POSITIVE and her2.method == "interpretation"


@pytest.mark.parametrize("code", ["42914-2", "32996-1", "51981-9"])
def test_serum_her2_is_excluded_and_the_reason_says_so(code):
    her2 = summary(observation(code, valueQuantity={"value": 30, "unit": "ng/mL"})).her2
    assert her2.status == S.UNKNOWN and "serum HER2" in her2.reason


def test_serum_her2_does_not_override_tissue_status():
    her2 = summary(observation("48676-1", days=300, **NEGATIVE), observation("42914-2", days=10, **POSITIVE)).her2
    assert her2.status == S.NEGATIVE and "serum HER2" in her2.reason


def test_conflicting_tissue_results_most_recent_wins_with_conflict_and_reason():
    her2 = summary(observation("48676-1", id="old", days=700, **NEGATIVE),
                   observation("48676-1", id="new", days=30, **POSITIVE)).her2
    assert her2.status == S.POSITIVE and her2.conflict
    assert "Observation/old" in her2.reason and "most recent" in her2.reason
    assert her2.date == day(30)


def test_later_equivocal_result_does_not_override_an_earlier_definitive_one():
    her2 = summary(observation("48676-1", days=700, **POSITIVE), observation("85319-2", days=20, valueString="2+")).her2
    assert her2.status == S.POSITIVE and "equivocal" in her2.reason


def test_ihc_and_ish_disagreeing_in_one_episode_is_a_conflict_counted_positive():
    her2 = summary(observation("85319-2", days=40, valueQuantity={"value": 1}),
                   observation("85318-4", days=35, **coded("10828004", SNOMED))).her2
    assert her2.status == S.POSITIVE and her2.conflict


def test_display_conflicting_with_the_answer_code_trusts_the_code():
    her2 = summary(observation("48676-1", valueCodeableConcept={"coding": [{"system": LOINC, "code": "LA6577-6",
                                                                             "display": "Positive"}]})).her2
    assert her2.status == S.NEGATIVE


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_withdrawn_observations_are_ignored(status):
    assert summary(observation("48676-1", status=status, **POSITIVE)).her2.status == S.UNKNOWN


def test_observation_without_value_is_reported_not_guessed():
    s = summary(observation("48676-1", dataAbsentReason={"text": "pending"}))
    assert s.her2.status == S.UNKNOWN and "no HER2 tissue result" in s.her2.reason
    assert any("without a readable value" in i.problem for i in s.skipped)


def test_panel_components_are_read():
    panel = observation("74885-5", component=[{"code": {"coding": [{"system": LOINC, "code": "49683-6"}]},
                                               "valueQuantity": {"value": 3.1}}])
    assert summary(panel).her2.status == S.POSITIVE


def test_issued_date_is_used_when_effective_is_missing():
    obs = observation("48676-1", **POSITIVE)
    del obs["effectiveDateTime"]
    obs["issued"] = "2026-01-02T10:00:00+01:00"
    assert summary(obs).her2.date.isoformat() == "2026-01-02"


CONDITION_CASES = [
    ("Z17.31", ICD10, S.POSITIVE), ("Z17.410", ICD10, S.POSITIVE), ("Z17.420", ICD10, S.POSITIVE),
    ("Z17.32", ICD10, S.NEGATIVE), ("Z17.421", ICD10, S.NEGATIVE), ("427685000", SNOMED, S.POSITIVE),
    ("431396003", SNOMED, S.NEGATIVE),
]


@pytest.mark.parametrize("code, system, status", CONDITION_CASES)
def test_her2_from_coded_conditions_when_no_tissue_result(code, system, status):
    her2 = summary(condition(system, code)).her2
    assert her2.status == status and her2.method == "condition" and code in her2.detail


def test_tissue_result_is_preferred_to_a_condition_code():
    her2 = summary(condition(ICD10, "Z17.31"), observation("48676-1", **NEGATIVE)).her2
    assert her2.status == S.NEGATIVE and her2.method == "interpretation"


def test_refuted_status_condition_is_ignored():
    assert summary(condition(ICD10, "Z17.31", verification="refuted")).her2.status == S.UNKNOWN


def test_missing_her2_is_unknown_with_a_reason():
    her2 = summary(breast()).her2
    assert her2.status == S.UNKNOWN and her2.method == "none" and "no HER2" in her2.reason


ER_PR_CASES = [
    ("ER presence positive", dict(code="85337-4", **POSITIVE), "er", S.POSITIVE),
    ("ER tissue stain SNOMED negative", dict(code="40556-3", **coded("260385009", SNOMED)), "er", S.NEGATIVE),
    ("ER interpretation", dict(code="16112-5", **POSITIVE), "er", S.POSITIVE),
    ("ER 0.5% negative", dict(code="85329-1", valueQuantity={"value": 0.5, "unit": "%"}), "er", S.NEGATIVE),
    ("ER 1% positive", dict(code="14228-1", valueQuantity={"value": 1, "unit": "%"}), "er", S.POSITIVE),
    ("ER string 90%", dict(code="85329-1", valueString="90%"), "er", S.POSITIVE),
    ("PR presence negative", dict(code="85339-0", **NEGATIVE), "pr", S.NEGATIVE),
    ("PR tissue positive", dict(code="40557-1", **POSITIVE), "pr", S.POSITIVE),
    ("PR 30%", dict(code="85325-9", valueQuantity={"value": 30, "unit": "%"}), "pr", S.POSITIVE),
]


@pytest.mark.parametrize("name, obs, marker, status", ER_PR_CASES, ids=[c[0] for c in ER_PR_CASES])
def test_er_and_pr_from_each_result_shape(name, obs, marker, status):
    assert getattr(summary(observation(**obs)), marker).status == status


def test_synthea_snomed_code_under_loinc_is_read_as_the_combined_er_pr_stain_and_reported():
    obs = observation("417181009", **coded("260385009", SNOMED, "Negative"))
    s = summary(obs)
    assert s.er.status == S.NEGATIVE and s.pr.status == S.NEGATIVE
    assert s.hr_status == S.NEGATIVE
    assert any("417181009" in i.problem and "LOINC" in i.problem for i in s.skipped)


def test_combined_er_pr_positive_makes_hr_positive_without_inventing_pr():
    s = summary(observation("10480-2", **POSITIVE))
    assert s.er.status == S.POSITIVE and s.pr.status == S.UNKNOWN and s.hr_status == S.POSITIVE


@pytest.mark.parametrize("code, er, pr", [("Z17.0", S.POSITIVE, S.UNKNOWN), ("Z17.1", S.NEGATIVE, S.UNKNOWN),
                                          ("Z17.21", S.UNKNOWN, S.POSITIVE), ("Z17.22", S.UNKNOWN, S.NEGATIVE),
                                          ("Z17.420", S.NEGATIVE, S.NEGATIVE)])
def test_er_pr_from_z17_conditions(code, er, pr):
    s = summary(condition(ICD10, code))
    assert (s.er.status, s.pr.status) == (er, pr)


def test_every_receptor_result_has_a_reason():
    s = summary(breast(), observation("48676-1", **POSITIVE))
    assert all(r.reason for r in (s.her2, s.er, s.pr))


def _evidence(marker, status, day_, method, source):
    from fhir_mappings.receptors import Evidence
    return Evidence(marker, status, day_, method, f"{method} {status.value}", source)


RECEPTOR_RESULTS_CASES = [
    # (name, tissue evidence, condition evidence, serum sources)
    ("nothing", [], [], []),
    ("serum only", [], [], ["Observation/s1"]),
    ("one of each marker", [("HER2", S.POSITIVE, 1, "IHC", "Observation/h"), ("ER", S.NEGATIVE, 1, "interpretation", "Observation/e"),
                            ("PR", S.POSITIVE, 1, "interpretation", "Observation/p")], [], []),
    ("HER2 episodes disagreeing over time", [("HER2", S.POSITIVE, 1, "IHC", "Observation/a"), ("HER2", S.NEGATIVE, 400, "ISH", "Observation/b"),
                                             ("HER2", S.EQUIVOCAL, 800, "IHC", "Observation/c")], [], ["Observation/s"]),
    ("same-date HER2 clash", [("HER2", S.POSITIVE, 5, "ISH", "Observation/a"), ("HER2", S.NEGATIVE, 5, "ISH", "Observation/b")], [], []),
    ("conditions only", [], [("ER", S.POSITIVE, 3, "condition", "Condition/c1"), ("HER2", S.NEGATIVE, 4, "condition", "Condition/c2")], []),
]


@pytest.mark.parametrize("name, tissue, conditions, serum", RECEPTOR_RESULTS_CASES, ids=[c[0] for c in RECEPTOR_RESULTS_CASES])
def test_receptor_results_give_a_reason_per_marker_and_a_chronological_definitive_her2_history(name, tissue, conditions,
                                                                                               serum):
    from fhir_mappings.receptors import receptor_results
    t = [_evidence(m, s, day(d) if d else None, method, src) for m, s, d, method, src in tissue]
    c = [_evidence(m, s, day(d) if d else None, method, src) for m, s, d, method, src in conditions]
    her2, er, pr, history = receptor_results(t, c, serum)
    assert all(r.reason for r in (her2, er, pr))
    assert all(h.status in (S.POSITIVE, S.NEGATIVE) for h in history)
    assert [h.date for h in history] == sorted(h.date for h in history)
