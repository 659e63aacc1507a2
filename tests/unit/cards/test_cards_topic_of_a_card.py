"""`card_topic`: what the metrics and the card log read as a rendered card's topic, whatever shape it has."""
from __future__ import annotations

from types import MappingProxyType

import pytest

from cards.topics import TOPIC_SYSTEM, card_topic

TOPIC = {"system": TOPIC_SYSTEM, "code": "her2-next-regimen"}


@pytest.mark.parametrize("card, topic", [
    ({"source": {"label": "her2-cds", "topic": TOPIC}}, TOPIC),
    ({"source": MappingProxyType({"topic": MappingProxyType(TOPIC)})}, TOPIC),   # any Mapping, not only dict
    ({"summary": "no source"}, {}),
    ({"source": "her2-cds"}, {}),
    ({"source": {"label": "her2-cds"}}, {}),
    ({"source": {"topic": "her2-next-regimen"}}, {}),
    ({"source": {"topic": None}}, {}),
], ids=["card", "other mappings", "no source", "source a string", "no topic", "topic a string", "topic null"])
def test_a_card_s_topic_is_its_source_topic_or_empty(card, topic):
    assert dict(card_topic(card)) == topic
