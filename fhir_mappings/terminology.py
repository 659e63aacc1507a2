"""RxNorm / ATC / name roll-up to canonical ingredients (`Drug`), from a static, versioned data file.

Why a static table: real feeds carry ingredient, brand, SCD/SBD/SCDG/SBDG, "Oral Product" and
suffixed-biosimilar CUIs, and the service must not call a terminology server at run time
(clinical.md §4.2 pitfalls). The table lives in `data/rxnorm_rollup.json` (with `version` and source
notes) so a reviewer can check every code without reading Python.

Order of trust: RxNorm code, then ATC code, then - only when no code maps - an explicit synonym list
matched on whole words. The name path never substring-matches "trastuzumab": antibody-drug conjugates
are tried first, and once one is found plain-trastuzumab names are not tried (RxNorm SBDG names of
Kadcyla/Enhertu begin with "Trastuzumab Injection").
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from .fhir_json import clean_display
from .model import ClassHint, Drug, RX_TRASTUZUMAB

DATA_FILE = Path(__file__).with_name("data") / "rxnorm_rollup.json"

RXNORM_SYSTEM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC_SYSTEMS = frozenset({
    "http://www.whocc.no/atc", "http://fhir.de/CodeSystem/bfarm/atc", "urn:oid:2.16.840.1.113883.6.73",
    "http://www.whocc.no/atc/", "https://www.whocc.no/atc",
})


def _load() -> dict[str, Any]:
    with DATA_FILE.open(encoding="utf-8") as fh:
        return json.load(fh)


_RAW = _load()

#: canonical ingredient code -> Drug (immutable after import)
INGREDIENTS: Mapping[str, Drug] = MappingProxyType({
    code: Drug(rxnorm=code, name=entry["name"], classes=frozenset(entry["classes"]),
               unconjugated_trastuzumab=bool(entry.get("unconjugated_trastuzumab", code == RX_TRASTUZUMAB)))
    for code, entry in _RAW["ingredients"].items()
})


def _drugs(codes: Iterable[str]) -> tuple[Drug, ...]:
    return tuple(sorted((INGREDIENTS[c] for c in dict.fromkeys(codes)), key=lambda d: d.rxnorm))


#: any known RxNorm CUI (ingredient or product) -> canonical ingredient Drugs
_BY_RXNORM: Mapping[str, tuple[Drug, ...]] = MappingProxyType(
    {**{code: (drug,) for code, drug in INGREDIENTS.items()},
     **{code: _drugs(entry["ingredients"]) for code, entry in _RAW["products"].items()}})

_BY_ATC: Mapping[str, tuple[Drug, ...]] = MappingProxyType(
    {code.upper(): _drugs(ins) for code, ins in _RAW["atc"].items()})


@dataclass(frozen=True)
class _SynonymGroup:
    name: str
    phrases: tuple[tuple[tuple[str, ...], tuple[Drug, ...]], ...]   # longest first


_WORD_SPLIT = re.compile(r"[^a-z0-9\-]+")
_FDA_SUFFIX = re.compile(r"[a-z]{4}")


def _words(text: str) -> tuple[str, ...]:
    """Lower-case words; hyphenated words are split and a four-letter FDA suffix part is dropped.

    Why: biosimilar and SC products carry suffixes ("trastuzumab-anns", "trastuzumab and
    hyaluronidase-oysk", "fam-trastuzumab deruxtecan-nxki") and new ones keep appearing; the suffix
    never changes the ingredient. Tall-man lettering ("DOXOrubicin"), salt forms ("lapatinib
    ditosylate") and dose strings ("500 MG") leave the ingredient word intact.
    """
    out: list[str] = []
    for word in _WORD_SPLIT.split(text.lower()):
        parts = [p for p in word.split("-") if p]
        out.extend(p for i, p in enumerate(parts) if i == 0 or not _FDA_SUFFIX.fullmatch(p))
    return tuple(out)


_SYNONYMS: tuple[_SynonymGroup, ...] = tuple(
    _SynonymGroup(g["group"], tuple(sorted(((_words(p), _drugs(ins)) for p, ins in g["phrases"].items()),
                                           key=lambda item: -len(item[0]))))
    for g in _RAW["synonyms"])


def drugs_by_rxnorm(code: str | None) -> tuple[Drug, ...]:
    """Canonical ingredients of any known RxNorm CUI (IN, BN, SCD, SBD, SCDG, SBDG, biosimilar IN...).

    Combination products (Phesgo) give several Drugs; an unknown code gives ().
    """
    if not isinstance(code, str):
        return ()
    return _BY_RXNORM.get(code.strip(), ())


def drugs_by_atc(code: str | None) -> tuple[Drug, ...]:
    if not isinstance(code, str):
        return ()
    return _BY_ATC.get(code.strip().upper(), ())


_SYNONYM_WORDS = frozenset(w for g in _SYNONYMS for phrase, _ in g.phrases for w in phrase)


def drugs_by_name(text: str | None) -> tuple[Drug, ...]:
    """Drugs named in free text via the explicit synonym list (whole words; ADCs before trastuzumab)."""
    if not isinstance(text, str) or not text:
        return ()
    return _drugs_by_name(text)


@lru_cache(maxsize=4096)          # pure function of an immutable str: displays repeat across a record
def _drugs_by_name(text: str) -> tuple[Drug, ...]:
    words = list(_words(text))
    if _SYNONYM_WORDS.isdisjoint(words):
        return ()
    found: dict[str, Drug] = {}
    adc_found = False
    for group in _SYNONYMS:
        if group.name == "plain" and adc_found:
            # "Trastuzumab Injection [KADCYLA]": the ADC is the drug, the word trastuzumab is not a second one
            phrases = tuple(p for p in group.phrases if all(d.rxnorm != RX_TRASTUZUMAB for d in p[1]))
        else:
            phrases = group.phrases
        for phrase, drugs in phrases:
            n = len(phrase)
            i = 0
            while i + n <= len(words):
                if tuple(words[i:i + n]) == phrase:
                    for d in drugs:
                        found[d.rxnorm] = d
                    if group.name == "adc":
                        adc_found = True
                    words[i:i + n] = ["\x00"] * n          # consumed
                    i += n
                else:
                    i += 1
    return tuple(sorted(found.values(), key=lambda d: d.rxnorm))


#: HL7 OIDs (audited 2026-12-02, P: many public HL7 CDA/FHIR tools map 2.16.840.1.113883.6.88 to RxNorm and
#: 2.16.840.1.113883.6.73 to WHO ATC)
RXNORM_OID = "2.16.840.1.113883.6.88"


def is_rxnorm(system: Any) -> bool:
    return isinstance(system, str) and ("rxnorm" in system.lower() or system.strip().endswith(RXNORM_OID))


def is_atc(system: Any) -> bool:
    return isinstance(system, str) and (system.rstrip("/") in {s.rstrip("/") for s in ATC_SYSTEMS}
                                        or system.lower().rstrip("/").endswith("/atc"))


# The code systems a medication code is read in, in order of trust: (is it this system, its roll-up, its name).
_CODE_SYSTEMS = ((is_rxnorm, drugs_by_rxnorm, "RxNorm"), (is_atc, drugs_by_atc, "ATC"))


@dataclass(frozen=True)
class MedicationMapping:
    """Result of mapping one medication concept: drugs, how they were found, and anything to report."""

    drugs: tuple[Drug, ...]
    via: str                          # "rxnorm" | "atc" | "name" | "none"
    display: str
    unknown_codes: tuple[str, ...] = ()
    display_conflict: str = ""        # display names another drug than the code (the code was trusted)


def map_codeable_concept(concept: Any, extra_text: str = "") -> MedicationMapping:
    """Map a medication CodeableConcept (dict) leniently; never raises.

    Memoised on what it reads (text, each coding's system/code/display, extra text): a chart gives the
    same few drugs hundreds of administrations. Shapes that cannot be a key are mapped uncached."""
    key = _concept_key(concept, extra_text)
    if key is not None:
        try:
            return _map_concept_key(key)
        except TypeError:                 # an unhashable part (a list where a string belongs)
            pass
    return _map_codeable_concept(concept, extra_text)


def _concept_key(concept: Any, extra_text: Any) -> tuple | None:
    """What `_map_codeable_concept` reads, as a tuple (unhashable when the concept holds lists where strings belong)."""
    if not isinstance(concept, dict):
        return None
    coding = concept.get("coding")
    text = concept.get("text")
    if coding.__class__ is list and len(coding) == 1 and coding[0].__class__ is dict:    # the usual concept: no loop
        c = coding[0]
        codings: tuple = ((c.get("system"), c.get("code"), c.get("display")),)
    else:
        codings = tuple([(c.get("system"), c.get("code"), c.get("display")) for c in coding if isinstance(c, dict)]) \
            if isinstance(coding, list) else ()
    return text if isinstance(text, str) else None, codings, extra_text


@lru_cache(maxsize=2048)          # pure function of drug codes and names (frozen result), no patient data
def _map_concept_key(key: tuple) -> MedicationMapping:
    text, codings, extra_text = key
    concept = {"coding": [{"system": s, "code": c, "display": d} for s, c, d in codings]}
    if text is not None:
        concept["text"] = text
    return _map_codeable_concept(concept, extra_text)


def _map_codeable_concept(concept: Any, extra_text: str = "") -> MedicationMapping:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    codings = [c for c in codings if isinstance(c, dict)] if isinstance(codings, list) else []
    text = concept.get("text") if isinstance(concept, dict) and isinstance(concept.get("text"), str) else ""
    displays = [c["display"] for c in codings if isinstance(c.get("display"), str)]
    display = clean_display(text or (displays[0] if displays else "") or extra_text)

    found: dict[str, dict[str, Drug]] = {label: {} for _, _, label in _CODE_SYSTEMS}
    unknown: list[str] = []
    for c in codings:
        code = c.get("code")
        if not isinstance(code, str) or not code.strip():
            continue
        system = c.get("system")
        known = next(((lookup, label) for is_system, lookup, label in _CODE_SYSTEMS if is_system(system)), None)
        if known is None:
            unknown.append(f"{system if isinstance(system, str) else '?'}|{code.strip()}")
            continue
        lookup, label = known
        drugs = lookup(code)
        if drugs:
            found[label].update((d.rxnorm, d) for d in drugs)
        else:
            unknown.append(f"{label} {code.strip()}")
    rx, atc = found["RxNorm"], found["ATC"]

    names = " ; ".join([text, *displays, extra_text])
    by_name = drugs_by_name(names)
    if rx or atc:
        chosen = rx or atc
        conflict = ""
        if by_name and not (set(d.rxnorm for d in by_name) & set(chosen)):
            conflict = (f"display {display!r} names {', '.join(d.name for d in by_name)} but the code maps to "
                        f"{', '.join(d.name for d in chosen.values())}; the code was used")
        return MedicationMapping(tuple(sorted(chosen.values(), key=lambda d: d.rxnorm)),
                                 "rxnorm" if rx else "atc", display, tuple(unknown), conflict)
    if by_name:
        return MedicationMapping(by_name, "name", display, tuple(unknown))
    return MedicationMapping((), "none", display, tuple(unknown))


def _hint(what: str, *groups: str, broad: bool = False) -> ClassHint:
    members = {d.rxnorm: d for code, drugs in _BY_ATC.items() if code.startswith(groups) for d in drugs}
    return ClassHint(what, groups, tuple(members.values()), broad)


#: ATC groups (prefix -> class) used to say what an unidentified medication probably is. Group codes
#: as in clinical.md §4.2 (L01DB anthracyclines, L01FD HER2 antibodies/ADCs, L01EH HER2 kinase inhibitors,
#: L01CD taxanes); L01 antineoplastic, L02 endocrine therapy of cancer. The two broad groups are checked for
#: the harms the labels warn about only (`cards.topics.SAFETY_TOPICS`): "chemotherapy per protocol" checked
#: as each of 23 drugs for every topic drew three conditional warnings on one draft (two of them guideline
#: checks), noise that would teach clinicians to dismiss the real ones.
_ANTHRACYCLINE, _TAXANE = _hint("an anthracycline", "L01DB"), _hint("a taxane", "L01CD")
_ANTINEOPLASTIC = _hint("an antineoplastic agent", "L01", broad=True)
_ATC_CLASS_HINTS = (_ANTHRACYCLINE, _hint("a HER2-targeted antibody or conjugate", "L01FD"),
                    _hint("a HER2 kinase inhibitor", "L01EH"), _TAXANE, _ANTINEOPLASTIC,
                    _hint("an endocrine cancer therapy", "L02", broad=True))
#: Name stems: USAN "-rubicin" and "-taxel"; "HER2" / "ERBB2" named in a drug's name is its target.
_STEM_HINTS = ((re.compile(r"rubicin\b|anthracycl", re.I), _ANTHRACYCLINE), (re.compile(r"taxel\b", re.I), _TAXANE),
               (re.compile(r"\b(?:her-?2|erbb-?2)\b", re.I), _hint("a HER2-targeted agent", "L01FD", "L01EH")),
               (re.compile(r"chemotherap|antineoplast|cytotoxic", re.I), _ANTINEOPLASTIC))


def oncology_class_hint(mapping: MedicationMapping) -> ClassHint | None:
    """What an unidentified medication probably is ("an anthracycline") and the drugs it could be, from an
    ATC group code or a name stem; None when nothing says it is an oncology drug."""
    for unknown in mapping.unknown_codes:
        if unknown.startswith("ATC "):
            code = unknown[4:].upper()
            for hint in _ATC_CLASS_HINTS:
                if code.startswith(hint.atc_groups):
                    return hint
    for pattern, hint in _STEM_HINTS:
        if pattern.search(mapping.display or ""):
            return hint
    return None
