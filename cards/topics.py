"""The contract's card topics (docs/card-contract.md): code, display, and card order.

The contract's lowest indicator per topic is not repeated here: the rules' indicators come from the knowledge
file, and the card tests check them against the contract (`tests/unit/cards/cards_contract.py`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TOPIC_SYSTEM = "https://her2-cds.org/CodeSystem/card-topic"
RXNORM_SYSTEM = "http://www.nlm.nih.gov/research/umls/rxnorm"

INDICATOR_RANK = {"info": 0, "warning": 1, "critical": 2}

# code -> display. Order = the stable order of cards of equal indicator.
TOPICS: dict[str, str] = {
    "pregnancy": "Pregnancy",
    "anthracycline-her2-cardiotoxicity": "Anthracycline with or soon after trastuzumab",
    "heart-failure": "Heart failure",
    "ild-pneumonitis": "Interstitial lung disease / pneumonitis",
    "first-line-restart": "First-line restart within the treatment-free interval",
    "tdxd-not-offered": "T-DXd not yet offered",
    "her2-blockade-gap": "Regimen without HER2 blockade",
    "lvef-monitoring": "LVEF monitoring",
    "her2-status-discordant": "HER2 status discordant between specimens",
    "her2-status-unknown": "HER2 status unknown",
    "her2-next-regimen": "Next regimen for HER2-positive metastatic breast cancer",
}
TOPIC_ORDER = {code: i for i, code in enumerate(TOPICS)}

# Topics that, on a service that checks draft orders (order-select / order-sign), warn about the order being
# drafted: each such card at warning or critical carries overrideReasons (contract "Every card"), also when what
# it warns about is therapy already being given (e.g. pregnancy or ILD with T-DXd ongoing) rather than one named
# draft, because the clinician answers it in the ordering workflow.
DRAFT_ORDER_TOPICS = frozenset({
    "anthracycline-her2-cardiotoxicity", "ild-pneumonitis", "her2-blockade-gap", "tdxd-not-offered",
    "first-line-restart", "heart-failure", "pregnancy",
})


# Topics about a harm a drug label warns about (boxed warning, warnings and precautions), as opposed to the
# guideline checks of sequence and choice (first-line restart, T-DXd not offered, blockade gap, HER2 status).
# A draft known only as "chemotherapy" is checked as each of its many possible drugs for these alone
# (`cards.decide_unidentified`).
SAFETY_TOPICS = frozenset({
    "pregnancy", "anthracycline-her2-cardiotoxicity", "heart-failure", "ild-pneumonitis", "lvef-monitoring",
})


def max_indicator(*indicators: str) -> str:
    return max(indicators, key=INDICATOR_RANK.__getitem__)


# A card and its parts are Mappings; dict first, because isinstance answers a dict against `dict` at once,
# while against the Mapping ABC it costs a Python-level __instancecheck__ (about 2,000 instructions a test).
CARD_MAPPING = (dict, Mapping)


def card_topic(card: Mapping[str, Any]) -> Mapping[str, Any]:
    """A rendered card's `source.topic` (a Coding), {} when its source or topic is not an object: for the
    metrics and the card log, which count and store every card they are handed."""
    source = card.get("source")
    topic = source.get("topic") if isinstance(source, CARD_MAPPING) else None
    return topic if isinstance(topic, CARD_MAPPING) else {}
