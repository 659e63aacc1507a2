"""`map_draft_orders`: lenient parsing of the hook context's draftOrders, selections honoured."""
from __future__ import annotations

import pytest

from fhir_mappings import map_draft_orders
from fhir_mappings import model as m
from mappings_helpers import RXNORM


def draft(id_, code, display="", **extra):
    r = {"resourceType": "MedicationRequest", "id": id_, "status": "draft", "intent": "order",
         "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}]},
         "subject": {"reference": "Patient/p1"}}
    r.update(extra)
    return r


def bundle(*resources, **extra):
    return {"resourceType": "Bundle", **extra, "entry": [{"resource": r} for r in resources]}


def test_bundle_of_drafts_maps_each_to_canonical_drugs_all_selected_without_selections():
    drafts, issues = map_draft_orders(bundle(draft("a", "1298944"), draft("b", "2382605", "Phesgo")), None)
    assert [(d.resource_id, {x.rxnorm for x in d.drugs}, d.selected) for d in drafts] == [
        ("MedicationRequest/a", {m.RX_PERTUZUMAB}, True),
        ("MedicationRequest/b", {m.RX_PERTUZUMAB, m.RX_TRASTUZUMAB}, True)]
    assert issues == []


def test_selections_mark_only_the_listed_drafts():
    drafts, _ = map_draft_orders(bundle(draft("a", "224905"), draft("b", "72962")),
                                 ["MedicationRequest/b", "http://ehr/fhir/MedicationRequest/zzz"])
    assert [d.selected for d in drafts] == [False, True]


def test_absolute_selection_urls_are_tolerated():
    drafts, _ = map_draft_orders(bundle(draft("a", "224905")), ["http://ehr.example/fhir/MedicationRequest/a"])
    assert drafts[0].selected


@pytest.mark.parametrize("variant", [
    {"type": None}, {"intent": None}, {"category": {"coding": [{"code": "outpatient"}]}}])
def test_sandbox_quirks_are_accepted(variant):
    r = draft("a", "2267574")
    b = bundle(r)
    for k, v in variant.items():
        if k == "type":
            b.pop("type", None)
        elif v is None:
            r.pop(k)
        else:
            r[k] = v
    drafts, issues = map_draft_orders(b, None)
    assert drafts[0].drugs[0].rxnorm == m.RX_TDXD and issues == []


def test_a_single_resource_or_a_list_is_accepted():
    assert map_draft_orders(draft("a", "224905"), None)[0][0].resource_id == "MedicationRequest/a"
    assert len(map_draft_orders([draft("a", "224905"), draft("b", "3639")], None)[0]) == 2


def test_dstu2_medication_order_is_reported_not_mapped():
    drafts, issues = map_draft_orders(bundle({"resourceType": "MedicationOrder", "id": "old"}), None)
    assert drafts == [] and issues[0].source == "MedicationOrder/old" and "DSTU2" in issues[0].problem


def test_contained_medication_of_a_draft():
    r = draft("a", "x")
    del r["medicationCodeableConcept"]
    r["contained"] = [{"resourceType": "Medication", "id": "m", "code": {"coding": [{"system": RXNORM, "code": "2267579"}]}}]
    r["medicationReference"] = {"reference": "#m"}
    drafts, _ = map_draft_orders(bundle(r), None)
    assert drafts[0].drugs[0].rxnorm == m.RX_TDXD


def test_unmappable_draft_is_flagged_and_reported():
    drafts, issues = map_draft_orders(bundle(draft("a", "26225", "ondansetron")), None)
    assert drafts[0].unmapped and drafts[0].drugs == () and drafts[0].display == "ondansetron"
    assert issues[0].source == "MedicationRequest/a"


@pytest.mark.parametrize("junk", [None, 1, "x", [None, 3], {"resourceType": "Bundle", "entry": "nope"},
                                  {"resourceType": "Bundle", "entry": [{"resource": 5}]}])
def test_junk_draft_orders_never_raise(junk):
    drafts, issues = map_draft_orders(junk, ["MedicationRequest/a"])
    assert all(isinstance(d, m.DraftOrder) for d in drafts)
