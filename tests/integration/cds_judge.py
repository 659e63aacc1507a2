"""Judge a CDS Hooks response against a case's `expect` block, the way the acceptance probe does.

Keys (see ../shared/scenarios/README.md): topics_required, topics_forbidden, recommended,
alternatives_include, not_recommended, no_regimen. Returns the list of failed expectations (empty
= pass), each a readable sentence, so a failing test says what the cards showed.
"""
from __future__ import annotations

from typing import Any, Iterable

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
REGIMEN_TOPIC = "her2-next-regimen"
LEVELS = {"info": 0, "warning": 1, "critical": 2}
TAXANES = frozenset({"72962", "56946"})
# The contract's ingredient table: drugs outside it (e.g. an endocrine partner) are not counted.
CONTRACT_CODES = frozenset({"224905", "1298944", "1371041", "2267574", "2361285", "194000", "480167",
                            "1940643", "72962", "56946", "3639", "3995"})


def topic(card: dict[str, Any]) -> str:
    return ((card.get("source") or {}).get("topic") or {}).get("code", "")


def ingredient_set(suggestion: dict[str, Any]) -> frozenset[str]:
    codes = set()
    for action in suggestion.get("actions", []):
        concept = (action.get("resource") or {}).get("medicationCodeableConcept") or {}
        for coding in concept.get("coding", []):
            if coding.get("system") == RXNORM and coding.get("code") in CONTRACT_CODES:
                codes.add(coding["code"])
    return frozenset(codes)


def matches(actual: frozenset[str], expected: Iterable[str]) -> bool:
    """`expected` may use TAXANE for docetaxel or paclitaxel."""
    expected = list(expected)
    plain = {c for c in expected if c != "TAXANE"}
    if not plain <= actual:
        return False
    rest = actual - plain
    taxane_slots = expected.count("TAXANE")
    return len(rest) == taxane_slots and rest <= TAXANES


def _regimen_suggestions(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for c in cards if topic(c) == REGIMEN_TOPIC for s in c.get("suggestions", [])]


def describe(cards: list[dict[str, Any]]) -> str:
    parts = []
    for c in cards:
        rec = [sorted(ingredient_set(s)) for s in c.get("suggestions", []) if s.get("isRecommended")]
        parts.append(f"{topic(c)}:{c.get('indicator')}" + (f" rec={rec}" if rec else ""))
    return "; ".join(parts) or "no cards"


def judge(cards: list[dict[str, Any]], expect: dict[str, Any]) -> list[str]:
    failures: list[str] = []
    for name, lowest in (expect.get("topics_required") or {}).items():
        if not any(topic(c) == name and LEVELS.get(c.get("indicator"), -1) >= LEVELS[lowest] for c in cards):
            failures.append(f"no {name} card at >= {lowest}")
    for name in expect.get("topics_forbidden") or []:
        if any(topic(c) == name for c in cards):
            failures.append(f"forbidden {name} card present")
    suggestions = _regimen_suggestions(cards)
    recommended = [ingredient_set(s) for s in suggestions if s.get("isRecommended")]
    if "recommended" in expect:
        if not recommended:
            failures.append("no recommended regimen")
        elif not all(any(matches(r, e) for e in expect["recommended"]) for r in recommended):
            failures.append(f"recommended {[sorted(r) for r in recommended]}, expected one of {expect['recommended']}")
    for wanted in expect.get("alternatives_include") or []:
        if not any(matches(ingredient_set(s), wanted) for s in suggestions):
            failures.append(f"no suggestion {wanted}")
    for unwanted in expect.get("not_recommended") or []:
        if any(matches(r, unwanted) for r in recommended):
            failures.append(f"recommended {unwanted}, which must not be")
    if expect.get("no_regimen"):
        if any(topic(c) == REGIMEN_TOPIC for c in cards):
            failures.append("a her2-next-regimen card is present")
        for c in cards:
            for s in c.get("suggestions", []):
                if any(a.get("type") == "create" and (a.get("resource") or {}).get("resourceType") == "MedicationRequest"
                       for a in s.get("actions", [])):
                    failures.append(f"{topic(c)} card suggests creating a MedicationRequest")
    if failures:
        failures.append(f"cards: {describe(cards)}")
    return failures
