"""Never a silent empty answer on order hooks (issue 10): a draft that cannot be identified but is probably
an anthracycline (ATC group L01DB, a -rubicin / "anthracycline" name) is checked as far as it can be."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cds_service import pipeline
from cds_service.gather import GatheredRecord
from support import REPO, TODAY

sys.path.insert(0, str(REPO / "tests" / "unit" / "mappings"))
from test_mappings_ehr_shapes import load  # noqa: E402  (the Epic-shaped record: trastuzumab 60 days ago)

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UNKNOWN_ANTHRACYCLINE = {"resourceType": "MedicationRequest", "id": "d-unknown", "status": "draft", "intent": "order",
                         "medicationReference": {"reference": "Medication/not-sent",
                                                 "display": "investigational anthracycline XY-7"}}
ATC_ONLY = {"resourceType": "MedicationRequest", "id": "d-atc", "status": "draft", "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "L01DB99"}],
                                          "text": "local product 7"}}
TRASTUZUMAB = {"resourceType": "MedicationRequest", "id": "d-tras", "status": "draft", "intent": "order",
               "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "224905"}]}}


def cards_for(drafts: list[dict], resources: list[dict] | None = None) -> list[dict]:
    record, spec = load("epic-her2-positive-second-line")
    context = {"userId": "Practitioner/u", "patientId": spec["patient"],
               "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": d} for d in drafts]}}
    return pipeline.evaluate("order-sign", context,
                             GatheredRecord(spec["patient"], tuple(record if resources is None else resources)),
                             today=TODAY).cards


def anthracycline_cards(cards: list[dict]) -> list[dict]:
    return [c for c in cards if c["source"]["topic"]["code"] == "anthracycline-her2-cardiotoxicity"]


@pytest.mark.parametrize("draft", [UNKNOWN_ANTHRACYCLINE, ATC_ONLY], ids=["by-name-stem", "by-atc-group"])
def test_unidentified_probable_anthracycline_within_the_trastuzumab_washout_gets_a_confirm_card(draft):
    (card,) = anthracycline_cards(cards_for([draft]))
    assert card["indicator"] == "warning" and "confirm the drug" in card["summary"]
    assert card["overrideReasons"] and "probably an anthracycline" in card["detail"]


def test_unidentified_probable_anthracycline_drafted_with_trastuzumab_gets_a_confirm_card():
    (card,) = anthracycline_cards(cards_for([UNKNOWN_ANTHRACYCLINE, TRASTUZUMAB]))
    assert card["indicator"] == "warning" and "drafted as well" in card["detail"]


def test_unidentified_probable_anthracycline_without_trastuzumab_exposure_gets_no_anthracycline_card():
    record, _ = load("epic-her2-positive-second-line")
    no_trastuzumab = [r for r in record if r["resourceType"] not in
                      ("MedicationRequest", "MedicationAdministration", "MedicationStatement", "Medication")]
    assert anthracycline_cards(cards_for([UNKNOWN_ANTHRACYCLINE], no_trastuzumab)) == []
