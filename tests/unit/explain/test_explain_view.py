"""The explanation page's rows (pure): built from the same evaluation as the cards, from real bundles."""
from __future__ import annotations

import datetime as dt

import pytest

from cds_service.relative_dates import load_json
from cds_service.explain.view import build_page
from cds_service.gather import GatheredRecord
from cds_service.pipeline import evaluate
from cds_service.services import service_for_hook
from support import SANDBOX, SCENARIOS, TODAY, bundle_resources

LAUNCH = "https://cds.example.org/app/launch"


def _page(path, patient):
    resources = bundle_resources(load_json(path, TODAY))
    evaluation = evaluate(service_for_hook("patient-view"), {"patientId": patient, "userId": "Practitioner/x"},
                         GatheredRecord(patient, tuple(resources)), today=TODAY, app_launch_url=LAUNCH)
    return evaluation, build_page(evaluation, resources)


def test_decisions_are_the_cards_own_summaries_and_suggestions():
    evaluation, page = _page(SANDBOX / "patients" / "demo-1-2l-after-tch.json", "demo-1-pat")
    assert [d.summary for d in page.decisions] == [c["summary"] for c in evaluation.cards]
    regimen = next(d for d in page.decisions if d.topic == "her2-next-regimen")
    card = next(c for c in evaluation.cards if c["source"]["topic"]["code"] == "her2-next-regimen")
    assert list(regimen.options) == \
        [(s["label"], bool(s.get("isRecommended"))) for s in card["suggestions"]]
    assert all([link for link in c["links"] if link["type"] == "smart"]
               == [{"label": "Therapy timeline and reasoning", "url": LAUNCH, "type": "smart"}] for c in evaluation.cards)


def test_treatment_free_interval_is_marked_after_adjuvant_therapy():
    _, page = _page(SANDBOX / "patients" / "demo-2-early-relapse-after-adjuvant.json", "demo-2-pat")
    assert page.tfi is not None and page.tfi.start == TODAY - dt.timedelta(days=150)
    assert 3.5 < page.tfi.months < 5.5


def test_brain_metastases_are_flagged():
    _, page = _page(SANDBOX / "patients" / "demo-4-brain-metastases.json", "demo-4-pat")
    assert any(s.brain for s in page.sites)


def test_her2_discordance_over_time_is_visible():
    scenario = SCENARIOS / "S13-her2-discordant-metastatic-biopsy"
    if not (scenario / "bundle.json").exists():
        pytest.skip("../shared/scenarios not present")
    resources = bundle_resources(load_json(scenario / "bundle.json", TODAY))
    patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    _, page = _page(scenario / "bundle.json", patient)
    her2 = [r for r in page.receptors if r.marker == "HER2"]
    assert {r.status for r in her2} >= {"positive", "negative"}
    assert all(r.discordant for r in her2)


def test_cards_carry_no_smart_link_when_no_launch_url_is_known():
    resources = bundle_resources(load_json(SANDBOX / "patients" / "demo-1-2l-after-tch.json", TODAY))
    cards = evaluate(service_for_hook("patient-view"), {"patientId": "demo-1-pat"}, GatheredRecord("demo-1-pat", tuple(resources)),
                    today=TODAY).cards
    assert cards and not any(link.get("type") == "smart" for c in cards for link in c.get("links", []))
