"""Never a silent empty answer on order hooks (issue 10): a draft whose drug cannot be identified is either
checked as each known drug of its probable class (ATC group or name stem) and carded when any of them would
be, saying so and asking to confirm the drug, or, when no card could change, counted as unread.

Records: the Epic-shaped HER2-positive second-line record (trastuzumab 60 days ago, T-DXd never given) and
the Oracle Health-shaped HER2-negative record (tests/fixtures/ehr_shapes)."""
from __future__ import annotations

import sys

import pytest

from cards.decide_unidentified import with_unidentified_drafts
from cards.decision import Decision, Proposal
from cds_service import pipeline
from cds_service.gather import GatheredRecord
from cds_service.services import service_for_hook
from fhir_mappings.model import ClassHint, DraftOrder
from fhir_mappings.terminology import INGREDIENTS
from support import REPO, TODAY

sys.path.insert(0, str(REPO / "tests" / "unit" / "mappings"))
from test_mappings_ehr_shapes import load  # noqa: E402

EPIC, ORACLE = "epic-her2-positive-second-line", "oracle-health-her2-negative"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
LOCAL = "urn:oid:1.2.840.114350.1.13.0.1.7.2.698288"
ANTHRACYCLINE_TOPIC = "anthracycline-her2-cardiotoxicity"


def draft(rid: str, concept: dict | None = None, reference_display: str | None = None) -> dict:
    out = {"resourceType": "MedicationRequest", "id": rid, "status": "draft", "intent": "order"}
    if reference_display is not None:   # Epic: a Medication reference the draftOrders Bundle does not carry
        out["medicationReference"] = {"reference": "Medication/not-sent", "display": reference_display}
    else:
        out["medicationCodeableConcept"] = concept
    return out


def atc(code: str, text: str) -> dict:
    return {"coding": [{"system": ATC, "code": code}], "text": text}


# Unidentifiable drafts: each shape the mapping can only place in a class, and one it cannot place at all.
SHAPES = {
    "anthracycline-by-name-stem": draft("d-x", reference_display="investigational anthracycline XY-7"),
    "anthracycline-by-atc-group": draft("d-x", atc("L01DB99", "local product 7")),
    "taxane-by-name-stem": draft("d-x", {"coding": [{"system": LOCAL, "code": "60031"}],
                                         "text": "cabazitaxel 60 mg/1.5 mL injection"}),
    "taxane-by-atc-group": draft("d-x", atc("L01CD99", "local product 9")),
    "her2-agent-by-name-stem": draft("d-x", {"text": "investigational anti-HER2 antibody ZW-1"}),
    "her2-antibody-by-atc-group": draft("d-x", atc("L01FD99", "local product 3")),
    "her2-kinase-inhibitor-by-atc-group": draft("d-x", atc("L01EH99", "local product 4")),
    "unrecognisable-local-code": draft("d-x", {"coding": [{"system": LOCAL, "code": "99123"}],
                                               "text": "XYZ-123 injection"}),
    # Broad classes are checked as each of their many members for label safety harms only (alert noise).
    "antineoplastic-by-name": draft("d-x", {"text": "chemotherapy per protocol"}),
    "antineoplastic-by-atc-group": draft("d-x", atc("L01XX99", "local product 5")),
    "endocrine-therapy-by-atc-group": draft("d-x", atc("L02BG99", "local product 6")),
}
TRASTUZUMAB = draft("d-tras", {"coding": [{"system": RXNORM, "code": "224905"}]})
DOCETAXEL = draft("d-doce", {"coding": [{"system": RXNORM, "code": "72962"}]})


def evaluate(folder: str, drafts: list[dict], resources: list[dict] | None = None,
             hook: str = "order-sign") -> pipeline.Evaluation:
    record, spec = load(folder)
    context = {"userId": "Practitioner/u", "patientId": spec["patient"],
               "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": d} for d in drafts]}}
    return pipeline.evaluate(service_for_hook(hook), context, GatheredRecord(spec["patient"], tuple(record if resources is None
                                                                                  else resources)), today=TODAY)


def topics(cards: list[dict]) -> dict[str, str]:
    return {c["source"]["topic"]["code"]: c["indicator"] for c in cards}


# (record, shape) -> the cards the unidentified draft gets: the card its drug would get as a known member
# of its class. An empty dict: no known member would get a card, so identifying it would change nothing.
OUTCOMES = [
    (EPIC, "anthracycline-by-name-stem", {ANTHRACYCLINE_TOPIC: "warning"}),     # 60 days after trastuzumab
    (EPIC, "anthracycline-by-atc-group", {ANTHRACYCLINE_TOPIC: "warning"}),
    (EPIC, "taxane-by-name-stem", {"her2-blockade-gap": "warning"}),            # HER2+ MBC, no HER2 agent
    (EPIC, "taxane-by-atc-group", {"her2-blockade-gap": "warning"}),
    (EPIC, "her2-agent-by-name-stem", {"tdxd-not-offered": "warning"}),         # second line, T-DXd never given
    (EPIC, "her2-antibody-by-atc-group", {"tdxd-not-offered": "warning"}),
    (EPIC, "her2-kinase-inhibitor-by-atc-group", {"tdxd-not-offered": "warning"}),
    (EPIC, "unrecognisable-local-code", {}),
    (EPIC, "antineoplastic-by-name", {ANTHRACYCLINE_TOPIC: "warning"}),        # not blockade-gap, tdxd-not-offered
    (EPIC, "antineoplastic-by-atc-group", {ANTHRACYCLINE_TOPIC: "warning"}),
    (EPIC, "endocrine-therapy-by-atc-group", {}),
    (ORACLE, "anthracycline-by-name-stem", {}),                                 # no trastuzumab exposure
    (ORACLE, "anthracycline-by-atc-group", {}),
    (ORACLE, "taxane-by-name-stem", {}),                                        # HER2-negative: no HER2 rule
    (ORACLE, "taxane-by-atc-group", {}),
    (ORACLE, "her2-agent-by-name-stem", {"her2-status-unknown": "info", "lvef-monitoring": "info"}),
    (ORACLE, "her2-antibody-by-atc-group", {"her2-status-unknown": "info", "lvef-monitoring": "info"}),
    (ORACLE, "her2-kinase-inhibitor-by-atc-group", {"her2-status-unknown": "info", "lvef-monitoring": "info"}),
    (ORACLE, "unrecognisable-local-code", {}),
    (ORACLE, "antineoplastic-by-name", {"lvef-monitoring": "info"}),          # not her2-status-unknown
    (ORACLE, "endocrine-therapy-by-atc-group", {}),
]
CARDED = [pytest.param(f, s, t, id=f"{f[:6]}-{s}") for f, s, t in OUTCOMES if t]
NOT_CARDED = [pytest.param(f, s, id=f"{f[:6]}-{s}") for f, s, t in OUTCOMES if not t]


@pytest.mark.parametrize("folder, shape, expected", CARDED)
def test_unidentified_draft_gets_the_cards_its_class_would_get(folder, shape, expected):
    assert topics(evaluate(folder, [SHAPES[shape]]).cards) == expected


@pytest.mark.parametrize("folder, shape, expected", CARDED)
def test_each_such_card_says_the_drug_was_not_identified_and_asks_to_confirm_it(folder, shape, expected):
    for card in evaluate(folder, [SHAPES[shape]]).cards:
        assert "not identified" in card["summary"] and "confirm the drug" in card["summary"]
        assert "MedicationRequest/d-x" in card["detail"] and "Confirm the drug." in card["detail"]
        assert "suggestions" not in card          # the service does not know what it would remove
        assert ("overrideReasons" in card) == (card["indicator"] != "info")


@pytest.mark.parametrize("folder, shape, expected", CARDED)
def test_the_unread_draft_is_listed_once_among_the_records_gaps(folder, shape, expected):
    for card in evaluate(folder, [SHAPES[shape]]).cards:
        gaps = card["detail"].split("**Missing from or unreadable in the record**", 1)[1]
        assert gaps.count("MedicationRequest/d-x") == 1


@pytest.mark.parametrize("folder, shape", NOT_CARDED)
def test_unidentified_draft_no_known_drug_would_card_is_counted_as_unread(folder, shape):
    evaluation = evaluate(folder, [SHAPES[shape]])
    assert evaluation.cards == []
    assert evaluation.issue_counts["drafts_unread"] == 1        # the hook.call line and the metric count it
    assert [i.source for i in evaluation.issues if not i.info] == ["MedicationRequest/d-x"]


@pytest.mark.parametrize("shape, wording", [
    ("taxane-by-atc-group", "applies whichever of them it is (docetaxel, paclitaxel)"),
    ("her2-antibody-by-atc-group", "applies unless it is fam-trastuzumab deruxtecan"),
])
def test_the_card_says_which_known_drugs_of_the_class_it_applies_to(shape, wording):
    (card,) = evaluate(EPIC, [SHAPES[shape]]).cards
    assert wording in card["detail"]


def test_the_card_takes_the_lowest_indicator_of_the_drugs_that_would_get_it():
    record, spec = load(EPIC)
    ild = {"resourceType": "Condition", "id": "ild", "subject": {"reference": f"Patient/{spec['patient']}"},
           "clinicalStatus": {"coding": [{"code": "active"}]},
           "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "J84.9"}]}}
    cards = evaluate(EPIC, [SHAPES["her2-antibody-by-atc-group"]], [*record, ild]).cards
    (card,) = [c for c in cards if c["source"]["topic"]["code"] == "ild-pneumonitis"]
    # T-DXd with ILD is critical, T-DM1 a warning: unconfirmed, the card says the lower
    assert card["indicator"] == "warning"
    assert "only if it is ado-trastuzumab emtansine, fam-trastuzumab deruxtecan" in card["detail"]


def test_a_card_the_record_gets_anyway_is_kept_as_it_is():
    cards = evaluate(EPIC, [DOCETAXEL, SHAPES["taxane-by-atc-group"]]).cards
    (card,) = [c for c in cards if c["source"]["topic"]["code"] == "her2-blockade-gap"]
    assert "not identified" not in card["summary"] and "suggestions" in card
    assert "MedicationRequest/d-x" in card["detail"]       # still named among the drafts not mapped


def test_unidentified_anthracycline_drafted_with_trastuzumab_without_timing_asks_to_confirm_both():
    cards = evaluate(EPIC, [SHAPES["anthracycline-by-name-stem"], TRASTUZUMAB]).cards
    (card,) = [c for c in cards if c["source"]["topic"]["code"] == ANTHRACYCLINE_TOPIC]
    assert card["indicator"] == "warning" and "not identified" in card["summary"]
    assert "without a stated start and end" in card["detail"]


def test_unidentified_anthracycline_with_trastuzumab_ongoing_is_critical_as_every_anthracycline_would_be():
    record, spec = load(EPIC)
    ongoing = {**draft("tras-active", {"coding": [{"system": RXNORM, "code": "224905"}]}), "status": "active",
               "subject": {"reference": f"Patient/{spec['patient']}"}, "authoredOn": TODAY.isoformat()}
    cards = evaluate(EPIC, [SHAPES["anthracycline-by-atc-group"]], [*record, ongoing]).cards
    assert topics(cards) == {ANTHRACYCLINE_TOPIC: "critical"}
    assert "applies whichever of them it is" in cards[0]["detail"]


def test_unidentified_anthracycline_without_trastuzumab_exposure_gets_no_anthracycline_card():
    record, _ = load(EPIC)
    no_trastuzumab = [r for r in record if r["resourceType"] not in
                      ("MedicationRequest", "MedicationAdministration", "MedicationStatement", "Medication")]
    cards = evaluate(EPIC, [SHAPES["anthracycline-by-name-stem"]], no_trastuzumab).cards
    assert ANTHRACYCLINE_TOPIC not in topics(cards)


def test_unidentified_draft_on_patient_view_is_not_checked():
    cards = evaluate(EPIC, [SHAPES["taxane-by-atc-group"]], hook="patient-view").cards
    assert cards and not any("not identified" in c["summary"] for c in cards)


# ------------------------------------------------------------------ the merge, with stand-in checks

DOXORUBICIN, EPIRUBICIN = INGREDIENTS["3639"], INGREDIENTS["3995"]
UNKNOWN = DraftOrder("MedicationRequest/u", (), "local product", unmapped=True,
                     probable_class=ClassHint("an anthracycline", ("L01DB",), (DOXORUBICIN, EPIRUBICIN)))


def decision(topic: str, indicator: str) -> Decision:
    return Decision(topic=topic, indicator=indicator, summary=f"{topic} {indicator}", rules=(),
                    findings=("finding",), proposals=(Proposal("Remove", remove=(UNKNOWN,)),))


def stand_in(by_drug: dict[str, list[Decision]], baseline: list[Decision] = ()):
    """Checks that give `by_drug[name]` when the draft is that drug, `baseline` when it is unidentified."""
    def checks(drafts):
        (d,) = drafts
        return list(by_drug.get(d.drugs[0].name, [])) if d.drugs else list(baseline)
    return checks


@pytest.mark.parametrize("by_drug, baseline, expected", [
    ({"doxorubicin": [decision("t", "warning")]}, [], {"t": ("warning", True)}),
    ({"doxorubicin": [decision("t", "critical")], "epirubicin": [decision("t", "warning")]}, [],
     {"t": ("warning", True)}),
    ({"doxorubicin": [decision("t", "warning")]}, [decision("t", "warning")], {"t": ("warning", False)}),
    ({"doxorubicin": [decision("t", "critical")], "epirubicin": [decision("t", "critical")]},
     [decision("t", "warning")], {"t": ("critical", True)}),
    ({}, [decision("t", "info")], {"t": ("info", False)}),
], ids=["added", "lowest-of-those-that-fire", "kept-when-as-serious", "raised-when-every-drug-is-more-serious",
        "nothing-fires"])
def test_merge(by_drug, baseline, expected):
    out = with_unidentified_drafts(stand_in(by_drug, baseline), [UNKNOWN])
    assert {d.topic: (d.indicator, "not identified" in d.summary) for d in out} == expected
    assert all(d.proposals == () for d in out if "not identified" in d.summary)


def test_a_draft_without_a_recognised_class_is_left_to_the_record_issues():
    plain = DraftOrder("MedicationRequest/u", (), "XYZ-123", unmapped=True)
    assert with_unidentified_drafts(stand_in({}, [decision("t", "info")]), [plain]) == [decision("t", "info")]
