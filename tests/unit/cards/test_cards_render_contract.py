"""Every rendered card honours the card contract and validates against the probe's response schema."""
from __future__ import annotations

import functools

import jsonschema
import pytest
from fhir_mappings import model as m

import test_cards_scenarios as sc
from cards import CardScope
from cards_contract import problems, response_schema
from cards_testkit import (THP, TRIPLET, ago, drafts, regimen, run, summary, therapy)

DRAFT_SETS = {
    "none": (),
    "thp": drafts(*THP),
    "tdxd": drafts(m.RX_TDXD),
    "tdm1": drafts(m.RX_TDM1),
    "triplet": drafts(*TRIPLET),
    "doxorubicin": drafts(m.RX_DOXORUBICIN),
    "epirubicin+trastuzumab": drafts(m.RX_EPIRUBICIN, "3002", m.RX_TRASTUZUMAB),
    "capecitabine-only": drafts(m.RX_CAPECITABINE),
}
COMBOS = [(hook, dname) for hook in ("patient-view", "order-select", "order-sign")
          for dname in (DRAFT_SETS if hook != "patient-view" else ["none"])]


@functools.lru_cache(maxsize=1)
def _validator():
    schema = response_schema()
    return jsonschema.Draft202012Validator(schema) if schema else None


@pytest.mark.parametrize("sid", sorted(sc.ALL))
def test_cards_follow_the_contract_on_every_hook_and_draft_set(sid):
    s = sc.ALL[sid]()
    for hook, dname in COMBOS:
        out = run(s, hook, DRAFT_SETS[dname])
        assert problems(out, hook, "p") == [], (hook, dname)


@pytest.mark.parametrize("sid", sorted(sc.ALL))
def test_cards_validate_against_the_probe_response_schema(sid):
    validator = _validator()
    if not validator:
        pytest.skip("../shared/probe/schemas/response.schema.json not present")
    s = sc.ALL[sid]()
    for hook, dname in COMBOS:
        out = run(s, hook, DRAFT_SETS[dname])
        errors = [e.message for e in validator.iter_errors({"cards": out})]
        assert errors == [], (hook, dname, errors[:3])


def test_record_gaps_and_unmapped_codes_are_listed_escaped_and_valid():
    """Record gaps and unmapped codes are listed in the detail, and never produce empty fields."""
    s = summary(lvef=[(38, ago(10))], therapy_history=therapy(regimen(THP, ago(300), ago(20))),
                unmapped=(m.RecordIssue("MedicationStatement/x", "unknown RxNorm code 999 | weird <b>"),),
                skipped=(m.RecordIssue("Observation/y", "unreadable value"),))
    out = run(s, "order-sign", drafts(m.RX_TDXD), data_gaps=(m.RecordIssue("Condition?patient=p", "FHIR search timed out"),))
    assert problems(out, "order-sign", "p") == []
    detail = next(c["detail"] for c in out if c["source"]["topic"]["code"] == "lvef-monitoring")
    assert "MedicationStatement/x" in detail and "Observation/y" in detail and "FHIR search timed out" in detail
    assert "\\<b\\>" in detail and "\\|" in detail


def test_a_service_may_declare_only_contract_topics():
    with pytest.raises(ValueError, match="unknown card topic"):
        CardScope(topics=frozenset({"her2-next-regimen", "her2-next-regmen"}), draft_orders=False)
