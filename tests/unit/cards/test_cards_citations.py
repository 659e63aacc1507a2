"""Citations are primary sources (contract, "Every card"; issue 16): the knowledge file holds no URL
outside the contract's citation hosts, the loader refuses one, and every card of every shared scenario
cites only those hosts, in `source.url` and in `links`, never as a link inside `detail` (issue 10)."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from card_scenarios import case_ids, cards_of_case
from cards import knowledge_base
from cards.knowledge_base import KnowledgeError, parse_knowledge

KNOWLEDGE_FILE = Path(knowledge_base.__file__).parent / "knowledge" / "her2_mbc.yaml"
# Transcribed from docs/card-contract.md ("Every card"), not imported, so that a change to the
# service's own list cannot quietly widen what this test accepts.
CONTRACT_CITATION_HOSTS = {
    "dailymed.nlm.nih.gov", "www.accessdata.fda.gov",
    "ascopubs.org", "www.nccn.org", "www.esmo.org",
    "doi.org", "pubmed.ncbi.nlm.nih.gov", "www.nejm.org", "www.thelancet.com", "jamanetwork.com",
    "cds-hooks.hl7.org", "hl7.org",
}
URL = re.compile(r"https?://[^\s)\]>\"'|]+")
# Identifiers, not links a clinician opens: code systems and the knowledge file's own naming URIs.
NAMING_URI_KEYS = {"override_reason_system"}


def _strings(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in NAMING_URI_KEYS:
                yield from _strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def _outside_hosts(url: str) -> bool:
    parts = urlsplit(url.rstrip(".,;:"))
    return parts.scheme != "https" or parts.hostname not in CONTRACT_CITATION_HOSTS


def test_knowledge_file_has_no_url_outside_the_contract_citation_hosts():
    doc = yaml.safe_load(KNOWLEDGE_FILE.read_text(encoding="utf-8"))
    bad = [(path, url) for path, value in _strings(doc) for url in URL.findall(value) if _outside_hosts(url)]
    assert bad == []


def test_knowledge_file_comments_name_no_secondary_source_either():
    """Comments are what a reviewer reads too: no URL in them points outside the citation hosts."""
    comments = [line for line in KNOWLEDGE_FILE.read_text(encoding="utf-8").splitlines() if line.lstrip().startswith("#")]
    assert [u for line in comments for u in URL.findall(line) if _outside_hosts(u)] == []


def test_every_citation_a_card_can_show_has_a_url_and_seeds_are_provenance_only():
    doc = yaml.safe_load(KNOWLEDGE_FILE.read_text(encoding="utf-8"))
    seeds = [c for c in doc["citations"] if c["status"] == "seed"]
    assert seeds and all("url" not in c for c in seeds)


def test_loader_refuses_a_citation_url_outside_the_contract_hosts():
    text = KNOWLEDGE_FILE.read_text(encoding="utf-8").replace(
        "https://doi.org/10.1200/JCO.22.00519", "https://www.guidelinecentral.com/guideline/1744063/", 1)
    with pytest.raises(KnowledgeError, match="asco-2022.*not a primary source"):
        parse_knowledge(text, "edited")


CASES = case_ids()


@pytest.mark.parametrize("name,index", CASES or [pytest.param(None, 0, marks=pytest.mark.skip("no ../shared"))])
def test_every_scenario_card_cites_primary_sources_in_source_and_links_only(name, index):
    for card in cards_of_case(name, index):
        urls = [card["source"]["url"]] + [link["url"] for link in card.get("links", [])]
        assert [u for u in urls if _outside_hosts(u)] == [], card["summary"]
        assert URL.findall(card["detail"]) == [], f"link inside detail: {card['summary']}"
        assert all(link["type"] == "absolute" and link["label"] for link in card.get("links", []))
        assert card["links"][0]["url"] == card["source"]["url"]
