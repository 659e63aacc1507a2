"""The packaged knowledge base validates; broken files are rejected with a message naming the entry."""
from __future__ import annotations

import dataclasses
from importlib import resources

import pytest
import yaml

import cards
from cards import KnowledgeError, parse_knowledge

PACKAGED = resources.files("cards.knowledge").joinpath("her2_mbc.yaml").read_text(encoding="utf-8")


def broken(mutate) -> str:
    doc = yaml.load(PACKAGED, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    mutate(doc)
    return yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))


def test_packaged_knowledge_validates_and_has_every_seed_rule():
    k = cards.load_knowledge()
    assert {f"S{i}" for i in range(1, 14)} | {f"W{i}" for i in range(1, 5)} <= set(k.rules)
    assert k.version


def test_load_knowledge_is_cached_per_path():
    assert cards.load_knowledge() is cards.load_knowledge()


def test_explicit_path_loads(tmp_path):
    path = tmp_path / "k.yaml"
    path.write_text(PACKAGED, encoding="utf-8")
    assert cards.load_knowledge(path).version == cards.load_knowledge().version


def test_every_orderable_regimen_uses_contract_rxnorm_codes_and_has_doses():
    k = cards.load_knowledge()
    for r in k.regimens.values():
        if r.orderable:
            assert r.components and all(c.dose and c.drug.rxnorm.isdigit() for c in r.components), r.id


def test_every_regimen_drafts_fhir_r4_medication_requests():
    assert cards.draft_order_problems(cards.load_knowledge()) == []


def test_a_draft_fhir_refuses_is_reported_with_its_regimen_and_field():
    k = cards.load_knowledge()
    tdxd = k.regimens["tdxd"]
    bad_drug = dataclasses.replace(tdxd.components[0].drug, rxnorm="2267574 ")   # FHIR codes have no trailing space
    bad = dataclasses.replace(tdxd, components=(dataclasses.replace(tdxd.components[0], drug=bad_drug),))
    problems = cards.draft_order_problems(dataclasses.replace(k, regimens={"tdxd": bad}))
    assert len(problems) == 1
    assert problems[0].startswith("regimen tdxd, fam-trastuzumab deruxtecan-nxki: medicationCodeableConcept.coding.0.code")


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["regimens"][3].pop("citations"), r"regimens\[3\] \(tdxd\).*'citations' is a required property"),
    (lambda d: d["regimens"][3]["components"][0].update(drug="nosuchdrug"), r"regimens\[3\] \(tdxd\)\.components: unknown drug 'nosuchdrug'"),
    (lambda d: d["safety_checks"][0].update(indicator="severe"), r"safety_checks\[0\] \(anthracycline-concurrent\)\.indicator"),
    (lambda d: d["rules"][0].update(citations=["nope"]), r"rules\[0\] \(S1\)\.citations: unknown citation 'nope'"),
    (lambda d: d["line_plans"][0]["candidates"].append("ghost"), r"line_plans\[0\] \(first-line\)\.candidates: unknown regimen 'ghost'"),
    (lambda d: d["tfi_policies"][1].update(default=True), r"exactly one policy must be default"),
    (lambda d: d["drugs"][0].update(rxnorm="abc"), r"drugs\[0\] \(trastuzumab\)\.rxnorm"),
])
def test_broken_knowledge_is_rejected_naming_the_entry(mutate, message):
    with pytest.raises(KnowledgeError, match=message):
        parse_knowledge(broken(mutate), "test.yaml")


def test_invalid_yaml_is_rejected():
    with pytest.raises(KnowledgeError, match="not valid YAML"):
        parse_knowledge("version: [unclosed", "bad.yaml")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(KnowledgeError, match="cannot read knowledge file"):
        cards.load_knowledge(tmp_path / "absent.yaml")


def test_knowledge_markdown_shows_the_whole_algorithm():
    k = cards.load_knowledge()
    md = cards.knowledge_markdown(k)
    assert k.version in md
    for rule_id in k.rules:
        assert f"| {rule_id} |" in md
    for r in k.regimens.values():
        assert r.name in md
    for c in k.safety_checks.values():
        assert f"`{c.id}`" in md
    assert "washout_days = 213" in md and "seed-12-months" in md and "<" not in md.replace("\\<", "")


def test_policy_rejects_unknown_tfi_policy():
    with pytest.raises(ValueError):
        cards.Policy(tfi_policy="whenever")
