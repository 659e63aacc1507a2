"""HER2, ER and PR status from tumour-marker Observations and status-coded Conditions.

Rules (clinical.md §4.3/§4.4; thresholds in §5 item 10 are product defaults, not verified):
- Overall interpretation (48676-1, 16112-5, 16113-3) is the pathologist's call and wins within a test
  episode (results within 60 days of each other); then ISH; then IHC.
- HER2 IHC 3+ positive, 2+ equivocal, 0/1+ negative; IHC 2+ is resolved by an ISH result of the same
  episode; ISH HER2/CEP17 ratio >= 2.0 amplified. Strings like "3+", "greater than 2.2" are parsed.
- Serum HER2 (42914-2, 32996-1, 51981-9) is not tissue status: excluded, and the reason says so.
- ER/PR >= 1% positive.
- Across episodes the most recent definitive tissue result wins; a disagreement sets `conflict` and
  the reason names both results. Condition codes (Z17.*, SNOMED 427685000...) are used only when no
  tissue Observation gives a definitive status.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter
from typing import Any, Iterable

from .fhir_json import all_text, as_dict, as_list, as_str, choice_dates, coded_text, codings, is_icd10, is_loinc, is_snomed, parse_date
from .model import Her2Result, ReceptorResult, ReceptorStatus, RecordIssue

POS, NEG, EQV, UNK = ReceptorStatus.POSITIVE, ReceptorStatus.NEGATIVE, ReceptorStatus.EQUIVOCAL, ReceptorStatus.UNKNOWN

# (marker, method, kind) by LOINC code. kind: presence | score | ratio | copies | percent
HER2, ER, PR = "HER2", "ER", "PR"
LOINC_MARKERS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "48676-1": ((HER2, "interpretation", "presence"),),
    "85319-2": ((HER2, "IHC", "score"),),
    "18474-7": ((HER2, "IHC", "score"),),
    "72383-3": ((HER2, "IHC", "score"),),
    "72382-5": ((HER2, "IHC", "score"),),
    "85318-4": ((HER2, "ISH", "presence"),),
    "31150-6": ((HER2, "ISH", "presence"),),
    "96893-3": ((HER2, "ISH", "presence"),),
    "49683-6": ((HER2, "ISH", "ratio"),),
    "74860-8": ((HER2, "ISH", "copies"),),
    "85337-4": ((ER, "IHC", "presence"),),
    "40556-3": ((ER, "IHC", "presence"),),
    "16112-5": ((ER, "interpretation", "presence"),),
    "85329-1": ((ER, "IHC", "percent"),),
    "14228-1": ((ER, "IHC", "percent"),),
    "85310-1": ((ER, "IHC", "presence"),),
    "14130-9": ((ER, "IHC", "presence"),),
    "85339-0": ((PR, "IHC", "presence"),),
    "40557-1": ((PR, "IHC", "presence"),),
    "16113-3": ((PR, "interpretation", "presence"),),
    "85325-9": ((PR, "IHC", "percent"),),
    "14230-7": ((PR, "IHC", "percent"),),
    "85331-7": ((PR, "IHC", "presence"),),
    "10861-3": ((PR, "IHC", "presence"),),
    "31207-4": ((PR, "IHC", "presence"),),
    # ER+PR combined stain: negative means both negative; positive means hormone-receptor positive.
    "10480-2": ((ER, "IHC", "combined"), (PR, "IHC", "combined")),
}
#: Synthea's "Hormone Receptor Negative" state codes its Observation with SNOMED 417181009 under the
#: LOINC system (clinical.md §4.3); its display is the ER+PR combined stain, so it is read as 10480-2.
MISCODED_LOINC = {"417181009": "10480-2"}
SERUM_HER2 = frozenset({"42914-2", "32996-1", "51981-9"})

POSITIVE_CODES = frozenset({"LA6576-8", "10828004", "POS", "52101004"})      # 52101004 present
NEGATIVE_CODES = frozenset({"LA6577-6", "260385009", "NEG", "2667000"})      # 2667000 absent
EQUIVOCAL_CODES = frozenset({"280414007", "LA11884-6", "IND", "42425007"})   # equivocal / indeterminate

# Condition codes that state receptor status: code -> ((marker, status), ...)
CONDITION_CODES: dict[str, tuple[tuple[str, ReceptorStatus], ...]] = {
    "Z17.31": ((HER2, POS),), "Z17.32": ((HER2, NEG),),
    "Z17.410": ((HER2, POS), (ER, POS)), "Z17.411": ((HER2, NEG), (ER, POS)),
    "Z17.420": ((HER2, POS), (ER, NEG), (PR, NEG)), "Z17.421": ((HER2, NEG), (ER, NEG), (PR, NEG)),
    "Z17.0": ((ER, POS),), "Z17.1": ((ER, NEG),), "Z17.21": ((PR, POS),), "Z17.22": ((PR, NEG),),
    "427685000": ((HER2, POS),), "431396003": ((HER2, NEG),),
    "416053008": ((ER, POS),), "417181009": ((ER, POS),),
}
_HR_NOTE = {"Z17.410", "Z17.411", "417181009"}     # "hormone receptor positive": recorded on ER

EPISODE_DAYS = 60
ISH_RATIO_POSITIVE = 2.0
PERCENT_POSITIVE = 1.0

_SCORE = re.compile(r"(?<![\d.])([0-3])\s*\+")
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")
_GREATER = re.compile(r"(greater than|more than|above|over|>=?|≥)\s*(\d+(?:\.\d+)?)", re.I)
_LESS = re.compile(r"(less than|below|under|<=?|≤)\s*(\d+(?:\.\d+)?)", re.I)

# --- free text (valueString, text-only codes, report conclusions) ------------------------------------
# Words before digits: marker names carry digits ("HER2", "CEP17", "ERBB2") that are neither a score nor
# a ratio, so they are replaced by tokens before any number is read; negated phrases are read (and
# removed) before the positive words they contain ("not amplified" contains "amplified").
_MARKER_NAMES = (
    (re.compile(r"her2\s*/\s*cep\s*-?\s*17|erbb-?2\s*/\s*cep\s*-?\s*17", re.I), " her2_cep17 "),
    (re.compile(r"\b(?:c-?erb-?b-?2|erbb-?2|her-?2(?:\s*/\s*neu)?|her\s+2|neu)(?![a-z0-9])", re.I), " her2_marker "),
    (re.compile(r"\bcep\s*-?\s*17\b|\bchromosome\s*17\b|\bchr\.?\s*17\b|\bd17z1\b", re.I), " cep17_marker "),
    (re.compile(r"\bki\s*-?\s*67\b", re.I), " ki67_marker "),
)
_TEXT_MARKER = {
    HER2: re.compile(r"her2_marker|her2_cep17"),
    ER: re.compile(r"\b(?:er|estrogen|oestrogen|esr1?)\b"),
    PR: re.compile(r"\b(?:pr|pgr|progesterone)\b"),
}
_ANY_MARKER = re.compile(r"her2_marker|her2_cep17|ki67_marker|\b(?:er|estrogen|oestrogen|pr|pgr|progesterone)\b")
_CONTROLS = re.compile(r"\b(?:positive|negative|pos|neg)(?:\s+and\s+(?:positive|negative))?\s+(?:internal\s+|external\s+)?controls?\b")
_NEG_ISH = re.compile(r"\bnot\s+amplified\b|\bnon-?\s?amplified\b|\bunamplified\b|\bno\s+(?:evidence\s+of\s+)?(?:her2_marker\s+)?(?:gene\s+)?amplification\b|"
                      r"\bwithout\s+amplification\b|\b(?:gene\s+)?amplification\s*[:\-]?\s*(?:was\s+|is\s+)?(?:not\s+(?:detected|identified|seen|present|observed)|absent|negative|none)\b|"
                      r"\bnegative\s+for\s+(?:her2_marker\s+)?(?:gene\s+)?amplification\b")
_NEG_WORDS = re.compile(r"\bnot\s+(?:positive|pos|her2_marker[\s-]*positive)\b|\bnegative\s+for\s+(?:her2_marker\s+)?(?:protein\s+)?over-?\s?expression\b|"
                        r"\bno\s+(?:her2_marker\s+)?(?:protein\s+)?over-?\s?expression\b|\bnot\s+over-?\s?expressed\b|"
                        r"\bher2_marker\s*[-:]?\s*(?:ultra-?\s?)?low\b|\b(?:ultra-?\s?)?low\s+her2_marker\b|"
                        r"\bnegative\b|\bneg\b|\bnot\s+detected\b|\babsent\b|\bno\s+staining\b|\b0\s*%\s+(?:of\s+)?(?:tumou?r\s+)?cells\b")
_EQV_WORDS = re.compile(r"\bequivocal\b|\bindeterminate\b|\bborderline\b|\binconclusive\b")
_POS_ISH = re.compile(r"\bamplified\b|\bamplification\s*[:\-]?\s*(?:was\s+|is\s+)?(?:detected|identified|present|seen|observed|positive)\b|"
                      r"\bpositive\s+for\s+(?:her2_marker\s+)?(?:gene\s+)?amplification\b|\bgene\s+amplification\b")
_POS_WORDS = re.compile(r"\bpositive\b|\bpos\b|\bover-?\s?expressed\b|\bover-?\s?expression\b")
_ISH_CONTEXT = re.compile(r"\bfish\b|\bish\b|\bsish\b|\bcish\b|\bddish\b|in\s+situ|her2_cep17|cep17_marker|\bratio\b|amplif|copy|copies")
_RATIO = re.compile(r"(?:her2_cep17|\bratio)\s*(?:of|is|was|=|:|-)?\s*(?:(>=?|≥|<=?|≤|greater than|more than|less than|"
                    r"above|below)\s*)?(\d+(?:\.\d+)?)")
_COPIES = re.compile(r"(?:copy\s+number|copies|signals)\D{0,30}?(>=?|≥)?\s*(\d+(?:\.\d+)?)")
_TEXT_SCORE = re.compile(r"(?<![\d.])([0-3])\s*\+|\b(?:score|ihc)\s*(?:of|is|was|=|:)?\s*([0-3])(?![\d.%])")
_PERCENT = re.compile(r"(<|less than|>|greater than)?\s*(\d+(?:\.\d+)?)\s*(?:-\s*(\d+(?:\.\d+)?)\s*)?%")

#: A text read that could not be settled: contradictory words, or nothing recognisable.
AMBIGUOUS = "ambiguous"


def _normalise(text: str) -> str:
    t = text.lower()
    for pattern, token in _MARKER_NAMES:
        t = pattern.sub(token, t)
    return _CONTROLS.sub(" ", t)


def _marker_segments(t: str, marker: str) -> str:
    """The clauses of a normalised text that speak about `marker` (all of it when no marker is named).

    "ER positive (95%); PR negative; HER2 1+ negative": only "HER2 1+ negative" is read for HER2.
    """
    parts = [p for p in re.split(r"[;\n|]|(?<!\d)[.,](?!\d)", t) if p.strip()]
    named = [p for p in parts if _ANY_MARKER.search(p)]
    if not named:
        return t
    mine = [p for p in parts if _TEXT_MARKER[marker].search(p)]
    if not mine:
        return ""
    # clauses after one naming this marker, up to the next naming another, belong to it too
    out: list[str] = []
    current = False
    for p in parts:
        if _ANY_MARKER.search(p):
            current = bool(_TEXT_MARKER[marker].search(p))
        if current:
            out.append(p)
    return " ; ".join(out)


def _ratio_status(t: str) -> tuple[ReceptorStatus, str] | None:
    m = _RATIO.search(t)
    if not m:
        return None
    comparator, value = (m.group(1) or "").strip(), float(m.group(2))
    if comparator in (">", ">=", "≥", "greater than", "more than", "above"):
        if value >= ISH_RATIO_POSITIVE:
            return POS, f"HER2/CEP17 ratio > {value:g}"
        return EQV, f"HER2/CEP17 ratio > {value:g} (does not establish >= {ISH_RATIO_POSITIVE:g})"
    if comparator in ("<", "<=", "≤", "less than", "below"):
        if value <= ISH_RATIO_POSITIVE:
            return NEG, f"HER2/CEP17 ratio < {value:g}"
        return EQV, f"HER2/CEP17 ratio < {value:g} (does not establish < {ISH_RATIO_POSITIVE:g})"
    return (POS if value >= ISH_RATIO_POSITIVE else NEG), f"HER2/CEP17 ratio {value:g}"


def read_text(text: str, marker: str, method: str = "interpretation", kind: str = "presence"
              ) -> tuple[ReceptorStatus, str] | str | None:
    """Receptor status from free text: (status, detail), `AMBIGUOUS` when the text contradicts itself, or
    None when it says nothing about the marker.

    Order: marker names out, controls out, then negated phrases (and removed), then equivocal and positive
    words; then the numbers that are left (HER2 ratio and IHC score, ER/PR percent). Words and numbers
    that disagree make the text ambiguous - never a guess: a misread HER2 is the worst error here.
    """
    t = _marker_segments(_normalise(text), marker)
    if not t.strip():
        return None
    found: list[tuple[ReceptorStatus, str, bool]] = []          # (status, detail, from ISH evidence)
    rest = t
    for m in _NEG_ISH.finditer(t):
        found.append((NEG, "not amplified", True))
    rest = _NEG_ISH.sub(" ", rest)
    for m in _NEG_WORDS.finditer(rest):
        word = m.group(0).strip()
        found.append((NEG, "HER2-low (not HER2-positive)" if "low" in word else word, False))
    rest = _NEG_WORDS.sub(" ", rest)
    if _EQV_WORDS.search(rest):
        found.append((EQV, "equivocal", False))
    for m in _POS_ISH.finditer(rest):
        found.append((POS, "amplified", True))
    rest = _POS_ISH.sub(" ", rest)
    if _POS_WORDS.search(rest):
        found.append((POS, _POS_WORDS.search(rest).group(0), False))
    ish_context = bool(_ISH_CONTEXT.search(t))
    if marker == HER2:
        ratio = _ratio_status(t)
        if ratio is None and method == "ISH" and kind in ("ratio", "presence"):
            g, lt = _GREATER.search(t), _LESS.search(t)
            bare = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*", t)
            if g or lt or bare:
                ratio = _ratio_status("ratio " + (f"{g.group(1)} {g.group(2)}" if g else
                                                  f"{lt.group(1)} {lt.group(2)}" if lt else bare.group(1)))
        if ratio:
            found.append((ratio[0], ratio[1], True))
            copies = _COPIES.search(t)
            if ratio[0] == NEG and copies and float(copies.group(2)) >= 6:
                # ratio < 2.0 with >= 6.0 HER2 signals/cell = ASCO/CAP 2018 dual-probe ISH group 3: positive only with
                # concurrent IHC 2+/3+, so it needs the IHC work-up (P, audited 2026-12-02: labce.com HER2 FISH
                # interpretation per 2018 ASCO/CAP; guidelinecentral ASCO/CAP HER2 testing figure 3)
                return AMBIGUOUS
        score = _TEXT_SCORE.search(t)
        if score is None and method == "IHC":
            score = re.fullmatch(r"[\s:]*(?:her2_marker)?[\s:]*(?:ihc)?[\s:]*(?:score)?[\s:]*([0-3])\s*", t)
        if score:
            value = int(next(g for g in score.groups() if g is not None))
            found.append((_score_status(value), f"IHC {value}+", False))
    elif kind == "percent" or "%" in t:
        pct = _PERCENT.search(t)
        if pct:
            comparator, value = (pct.group(1) or "").strip(), float(pct.group(2))
            if comparator in ("<", "less than") and value <= PERCENT_POSITIVE:
                found.append((NEG, f"{marker} < {value:g}%", False))
            else:
                found.append((POS if value >= PERCENT_POSITIVE else NEG, f"{marker} {value:g}%", False))
    if not found:
        return None
    statuses = {st for st, _, _ in found}
    if statuses == {POS} or statuses == {NEG} or statuses == {EQV}:
        status = statuses.pop()
    elif POS in statuses and NEG in statuses:
        return AMBIGUOUS
    else:                                       # equivocal with one definitive reading
        definitive = next(st for st in (POS, NEG) if st in statuses)
        if any(st == definitive and ish for st, _, ish in found) or (ish_context and marker == HER2):
            status = definitive                 # IHC 2+ resolved by ISH, as a pathologist writes it
        else:
            return AMBIGUOUS
    details = [d for st, d, _ in found if st == status]
    scores = [d for d in details if d.startswith(("IHC ", "HER2/CEP17", f"{marker} "))]
    words = [d for d in details if d in ("not amplified", "amplified")]
    detail = scores[0] if scores else f"{marker} {words[0]}" if words else f"{marker} {status.value}"
    if status == NEG and any("HER2-low" in d for d in details):
        detail = "HER2-low (not HER2-positive)" if not scores else f"{scores[0]}, HER2-low (not HER2-positive)"
    return status, detail


@dataclass(frozen=True)
class Evidence:
    marker: str
    status: ReceptorStatus
    date: dt.date | None
    method: str
    detail: str
    source: str
    specimen: str = ""


SPECIMEN_TEXT_MAX = 100


def specimen_of(obs: dict[str, Any]) -> str:
    """The specimen as the record names it: Observation.bodySite, else the specimen reference's display,
    else the first note (pathology reports often say it only there), shortened. Why: the discordance card
    names both specimens (contract v2) and a decalcified bone specimen reads differently from a liver core."""
    if "bodySite" not in obs and "specimen" not in obs and "note" not in obs:
        return ""                               # most results: no specimen named
    texts = [all_text(obs.get("bodySite")), as_str(as_dict(obs.get("specimen")).get("display"))]
    texts += [as_str(as_dict(n).get("text")) for n in as_list(obs.get("note"))[:1]]
    text = next((t.strip() for t in texts if t and t.strip()), "")
    return text if len(text) <= SPECIMEN_TEXT_MAX else text[:SPECIMEN_TEXT_MAX - 1].rstrip() + "…"


def _score_status(score: float) -> ReceptorStatus:
    return POS if score >= 3 else EQV if score >= 2 else NEG


def _read_value(obs: dict[str, Any], marker: str, method: str, kind: str) -> tuple[ReceptorStatus, str] | None:
    """Status and a short detail from value[x] (CodeableConcept, Quantity, string, integer) or interpretation."""
    cc = obs.get("valueCodeableConcept")
    if isinstance(cc, dict):
        text = cc.get("text")
        return _read_concept(text if isinstance(text, str) else "", codings(cc), marker, method, kind)
    q = obs.get("valueQuantity")
    if isinstance(q, dict) or isinstance(obs.get("valueInteger"), int):
        value = q.get("value") if isinstance(q, dict) else obs.get("valueInteger")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        unit = (as_str(q.get("unit")) + as_str(q.get("code"))) if isinstance(q, dict) else ""
        comparator = as_str(q.get("comparator")) if isinstance(q, dict) else ""
        if kind == "percent" or "%" in unit:
            if comparator.startswith("<") and value <= PERCENT_POSITIVE:
                return NEG, f"{marker} < {value:g}%"
            return (POS if value >= PERCENT_POSITIVE else NEG), f"{marker} {value:g}%"
        if kind == "ratio" or (method == "ISH" and kind == "presence"):
            if comparator.startswith(">") and value >= ISH_RATIO_POSITIVE:
                return POS, f"HER2/CEP17 ratio > {value:g}"
            return (POS if value >= ISH_RATIO_POSITIVE else NEG), f"HER2/CEP17 ratio {value:g}"
        if kind == "copies":
            status = POS if value >= 6 else NEG if value < 4 else EQV
            return status, f"mean HER2 copies {value:g}/nucleus"
        if marker == HER2 and method == "IHC" and 0 <= value <= 3:
            return _score_status(value), f"IHC {value:g}+"
        return None
    s = obs.get("valueString")
    if isinstance(s, str) and s.strip():
        if kind == "percent" and "%" not in s and re.fullmatch(r"\s*[<>]?\s*\d+(?:\.\d+)?\s*", s):
            s = s.strip() + "%"                 # a bare number under a percent code
        return read_text(s, marker, method, kind)
    # no value: Observation.interpretation (POS/NEG) as a last resort
    label = f"{marker} {method}" if method != "interpretation" else marker
    for _, code, _ in codings(obs.get("interpretation")):
        if code in POSITIVE_CODES:
            return POS, f"{label} interpretation POS"
        if code in NEGATIVE_CODES:
            return NEG, f"{label} interpretation NEG"
    return None


@lru_cache(maxsize=4096)          # pure function of a coded value's strings: the same few answers call after call
def _read_concept(text: str, coded: tuple[tuple[str, str, str], ...], marker: str, method: str, kind: str
                  ) -> tuple[ReceptorStatus, str] | str | None:
    """`_read_value` of a valueCodeableConcept, from its text and codings. why: 190 bytecodes per result."""
    status = None
    for _, code, _ in coded:
        if code in POSITIVE_CODES:
            status = POS
        elif code in NEGATIVE_CODES:
            status = NEG
        elif code in EQUIVOCAL_CODES:
            status = EQV
        if status:
            break
    words = coded_text(text, coded)
    if status is None:                      # code unknown: text, e.g. "3+", "2+ (Equivocal)", "Positive"
        return read_text(words, marker, method, kind) if words else None
    score = _SCORE.search(words) if marker == HER2 and method == "IHC" else None
    label = f"{marker} {method}" if method != "interpretation" else marker
    detail = f"IHC {score.group(1)}+" if score else f"{label} {status.value}"
    return status, detail


def _value_text(part: dict[str, Any]) -> str:
    """The value of an Observation (or component) as a clinician would read it, for issue messages."""
    if isinstance(part.get("valueString"), str):
        return part["valueString"].strip()
    if isinstance(part.get("valueCodeableConcept"), dict):
        return all_text(part["valueCodeableConcept"])
    return ""


def _markers_of(code_concept: Any) -> tuple[tuple[tuple[str, str, str], ...], bool, str]:
    """(markers, serum, loinc-code) for an Observation.code."""
    return _coded_markers(codings(code_concept))


@lru_cache(maxsize=4096)          # pure function of the codings (strings)
def _coded_markers(coded: tuple[tuple[str, str, str], ...]) -> tuple[tuple[tuple[str, str, str], ...], bool, str]:
    for system, code, _ in coded:
        if not is_loinc(system) and system:
            continue
        if code in SERUM_HER2:
            return (), True, code
        if code in LOINC_MARKERS:
            return LOINC_MARKERS[code], False, code
        if code in MISCODED_LOINC and is_loinc(system):
            return LOINC_MARKERS[MISCODED_LOINC[code]], False, code
    return (), False, ""


_TEXT_HER2 = re.compile(r"\bher-?\s?2\b|\berbb-?2\b|c-?erb-?b-?2|\bher2/neu\b|\bher2neu\b", re.I)
_TEXT_ER = re.compile(r"\bestrogen\s+receptor|\boestrogen\s+receptor|\ber\s+(?:status|ihc|receptor|result|by|%|percent)|^\s*er\s*$", re.I)
_TEXT_PR = re.compile(r"\bprogesterone\s+receptor|\bpr\s+(?:status|ihc|receptor|result|by|%|percent)|^\s*pr\s*$", re.I)
_TEXT_SERUM = re.compile(r"\bserum\b|\bplasma\b|\bblood\b|\bcirculating\b|\bshed\b|\becd\b", re.I)
_TEXT_ISH = re.compile(r"\bfish\b|\bish\b|\bsish\b|\bcish\b|\bddish\b|in\s+situ|amplif|\bratio\b|cep\s*-?17|copy|copies", re.I)
_TEXT_IHC = re.compile(r"\bihc\b|immunohisto|immune\s*stain|immunostain|\bscore\b|\bstain", re.I)
_TEXT_PERCENT = re.compile(r"%|percent|\bcells\b", re.I)


def text_markers(concept: Any) -> tuple[tuple[str, str, str], ...]:
    """(marker, method, kind) named by the text of a code that has no known LOINC code.

    Real feeds send receptor results under local codes ("HER2 IHC", "ER %", "HER2/CEP17 RATIO") next to,
    or instead of, LOINC. Serum HER2 tests are never tissue status and give nothing here.
    """
    text = all_text(concept)
    if not text or _TEXT_SERUM.search(text):
        return ()
    out: list[tuple[str, str, str]] = []
    if _TEXT_HER2.search(text):
        if _TEXT_ISH.search(text):
            kind = "ratio" if re.search(r"ratio|cep\s*-?17", text, re.I) else \
                "copies" if re.search(r"cop(y|ies)|signals", text, re.I) else "presence"
            out.append((HER2, "ISH", kind))
        elif _TEXT_IHC.search(text):
            out.append((HER2, "IHC", "score"))
        else:
            out.append((HER2, "interpretation", "presence"))
    for marker, pattern in ((ER, _TEXT_ER), (PR, _TEXT_PR)):
        if pattern.search(text):
            out.append((marker, "IHC", "percent" if _TEXT_PERCENT.search(text) else "presence"))
    return tuple(out)


def observation_evidence(obs: dict[str, Any], source: str, context: tuple[tuple[str, str, str], ...] = ()
                         ) -> tuple[list[Evidence], bool, list[RecordIssue]]:
    """Receptor evidence from one Observation (and its components): (evidence, was-serum-HER2, issues).

    Codes first: a known LOINC code decides the marker. Without one, the code's text names it (local
    codes), and without that, `context`: the markers of the DiagnosticReport listing this Observation as
    a result (e.g. a "HER2 FISH" report whose results are coded "Ratio", "Interpretation").
    """
    found: list[Evidence] = []
    issues: list[RecordIssue] = []
    serum = False
    start, _ = choice_dates(obs, "effective")
    date = start or parse_date(obs.get("issued"))
    specimen = specimen_of(obs)
    component = obs.get("component")
    parts = [obs] if component is None else [obs] + [c for c in as_list(component) if isinstance(c, dict)]
    for part in parts:
        markers, is_serum, code = _markers_of(part.get("code"))
        if not markers and not is_serum:
            markers = text_markers(part.get("code"))
            if not markers and part is obs and context and not part.get("component"):
                markers = _context_markers(part.get("code"), context)
        serum = serum or is_serum
        if code in MISCODED_LOINC:
            issues.append(RecordIssue(source, f"SNOMED code {code} sent under the LOINC system; read as "
                                              f"LOINC {MISCODED_LOINC[code]} (ER+PR receptor stain)"))
        for marker, method, kind in markers:
            read = _read_value(part, marker, method, kind)
            if read == AMBIGUOUS:
                issues.append(RecordIssue(source, f"{marker} result text contradicts itself, not used: "
                                                  f"{_value_text(part)[:160]!r}"))
                continue
            if read is None:
                if part is not obs or not part.get("component"):
                    shown = _value_text(part)
                    issues.append(RecordIssue(source, f"{marker} result without a readable value"
                                                      + (f": {shown[:160]!r}" if shown else "")))
                continue
            status, detail = read
            if kind == "combined" and status == POS:
                if marker == PR:
                    continue                      # HR-positive: cannot say which receptor; recorded on ER
                detail = "ER/PR combined stain positive (hormone-receptor positive)"
            found.append(Evidence(marker, status, date, method, detail, source, specimen))
    return found, serum, issues


def condition_evidence(cond: dict[str, Any], source: str) -> list[Evidence]:
    stated = _coded_statuses(codings(cond.get("code")))
    if not stated:
        return []                               # most Conditions: no receptor status; dated only when one is
    start, _ = choice_dates(cond, "onset")
    date = start or parse_date(cond.get("recordedDate"))
    return [Evidence(marker, status, date, "condition", detail, source) for marker, status, detail in stated]


@lru_cache(maxsize=1024)          # pure function of the codings (strings): every Condition of every call asks
def _coded_statuses(coded: tuple[tuple[str, str, str], ...]) -> tuple[tuple[str, ReceptorStatus, str], ...]:
    """(marker, status, detail) for each receptor status a Condition's codes state."""
    out = []
    for system, code, display in coded:
        if not (is_icd10(system) or is_snomed(system)):
            continue
        for marker, status in CONDITION_CODES.get(code.upper() if is_icd10(system) else code, ()):
            note = " (hormone-receptor positive, recorded on ER)" if code in _HR_NOTE and marker == ER else ""
            out.append((marker, status, f"{code} {display}".strip() + note))
    return tuple(out)


_SOURCE = attrgetter("source")


def _episodes(items: list[Evidence]) -> list[list[Evidence]]:
    if len(items) == 1:
        return [list(items)]                    # the usual: one result of the marker in the record
    dated = sorted((e for e in items if e.date), key=lambda e: (e.date, e.source))
    episodes: list[list[Evidence]] = [[e] for e in items if not e.date]      # undated: oldest, alone
    for e in dated:
        if episodes and episodes[-1][0].date and (e.date - episodes[-1][0].date).days <= EPISODE_DAYS:
            episodes[-1].append(e)
        else:
            episodes.append([e])
    return episodes


def _same_date_clash(results: list[Evidence]) -> list[Evidence]:
    """The definitive results of the latest date among `results` when they disagree (positive and negative
    on one date), else []. Results without a date count as one date only when none is dated."""
    definitive = [e for e in results if e.status in (POS, NEG)]
    dated = [e for e in definitive if e.date]
    if dated:
        last = max(e.date for e in dated)
        definitive = [e for e in dated if e.date == last]
    return definitive if len({e.status for e in definitive}) > 1 else []


def _clash_reason(clash: list[Evidence]) -> str:
    return ("HER2 results on the same date disagree (" + "; ".join(f"{e.detail or e.status.value} ({e.source})"
                                                                  for e in clash) + ")")


def _settle_episode(marker: str, ep: list[Evidence]) -> tuple[ReceptorStatus, Evidence, str, bool]:
    """(status, deciding evidence, reason, internal conflict) for one test episode.

    HER2 (card contract v2, her2-status-unknown): definitive results that disagree on the episode's latest
    date make the status unknown, never a guess. An overall interpretation is the pathologist's call and
    settles disagreeing IHC/ISH results; only interpretations that disagree among themselves clash. Results
    on different dates are settled by date (the later wins; discordance between specimens is a card rule)."""
    interp = [e for e in ep if e.method == "interpretation" and e.status != UNK]
    if marker == HER2:
        clash = _same_date_clash(interp or [e for e in ep if e.method in ("IHC", "ISH")])
        if clash:
            return UNK, max(clash, key=lambda e: e.source), _clash_reason(clash), True
    if interp:
        chosen = max(interp, key=lambda e: (e.date or dt.date.min))
        others = {e.status for e in ep if e.status in (POS, NEG)} - {chosen.status}
        return chosen.status, chosen, "overall interpretation", bool(others and chosen.status in (POS, NEG))
    if marker != HER2:
        chosen = max(ep, key=lambda e: (e.date or dt.date.min, e.status in (POS, NEG)))
        statuses = {e.status for e in ep if e.status in (POS, NEG)}
        return chosen.status, chosen, f"{chosen.method} result", len(statuses) > 1
    ish = [e for e in ep if e.method == "ISH"]
    ihc = [e for e in ep if e.method == "IHC"]
    ish_def = [e for e in ish if e.status in (POS, NEG)]
    ihc_def = [e for e in ihc if e.status in (POS, NEG)]
    ihc_eqv = [e for e in ihc if e.status == EQV]
    if ish_def:
        chosen = max(ish_def, key=lambda e: (e.date or dt.date.min))
        conflict = any(e.status != chosen.status for e in ihc_def + ish_def)
        if ihc_eqv and not ihc_def:
            return chosen.status, chosen, "IHC 2+ (equivocal) resolved by ISH", conflict
        if conflict and any(e.status == POS for e in ihc_def + ish_def):
            pos = next(e for e in sorted(ihc_def + ish_def, key=lambda e: e.method) if e.status == POS)
            return POS, pos, "IHC and ISH disagree; IHC 3+ or ISH amplification counts as positive", True
        return chosen.status, chosen, "ISH result", conflict
    if ihc_def:
        chosen = max(ihc_def, key=lambda e: (e.date or dt.date.min))
        conflict = any(e.status != chosen.status for e in ihc_def)
        return chosen.status, chosen, "IHC result", conflict
    eqv = [e for e in ep if e.status == EQV]
    if eqv:
        chosen = max(eqv, key=lambda e: (e.date or dt.date.min))
        why = "IHC 2+ (equivocal) without an ISH result" if chosen.method == "IHC" else "equivocal ISH result"
        return EQV, chosen, why, False
    chosen = ep[-1]
    return UNK, chosen, "no readable result", False


def _fmt(d: dt.date | None) -> str:
    return d.isoformat() if d else "undated"


_Settled = list[tuple[list[Evidence], ReceptorStatus, Evidence, str, bool]]


def _settled_episodes(marker: str, tissue: list[Evidence]) -> _Settled:
    """(episode, *its settlement) for each test episode of one marker's tissue evidence, oldest first."""
    return [(ep, *_settle_episode(marker, ep)) for ep in _episodes(tissue)]


def receptor_results(tissue: Iterable[Evidence], conditions: Iterable[Evidence], serum_sources: Iterable[str]
                     ) -> tuple[ReceptorResult, ReceptorResult, ReceptorResult, tuple[Her2Result, ...]]:
    """HER2, ER and PR status and the HER2 history of one record: the evidence is split by marker once, and
    the HER2 episodes are settled once for both the status and the history."""
    by_marker: dict[str, tuple[list[Evidence], list[Evidence]]] = {HER2: ([], []), ER: ([], []), PR: ([], [])}
    for e in tissue:
        if e.marker in by_marker:
            by_marker[e.marker][0].append(e)
    for e in conditions:
        if e.marker in by_marker:
            by_marker[e.marker][1].append(e)
    her2_settled = _settled_episodes(HER2, by_marker[HER2][0])
    return (_settle(HER2, her2_settled, by_marker[HER2][1], serum_sources),
            _settle(ER, _settled_episodes(ER, by_marker[ER][0]), by_marker[ER][1], ()),
            _settle(PR, _settled_episodes(PR, by_marker[PR][0]), by_marker[PR][1], ()),
            _history(her2_settled))


def _settle(marker: str, settled: _Settled, conditions: list[Evidence], serum_sources: Iterable[str]) -> ReceptorResult:
    """One ReceptorResult for a marker; the reason always says why."""
    serum = sorted(set(serum_sources)) if marker == HER2 else []
    serum_note = f"; serum HER2 test(s) excluded ({', '.join(serum)}): not tissue status" if serum else ""
    if settled:
        decisive = [s for s in settled if s[1] in (POS, NEG) or (s[1] == UNK and s[4])]
        undated = [e for s in decisive if s[2].date is None for e in s[0]]
        clash = _same_date_clash(undated) if marker == HER2 and len(decisive) == len(undated) else []
        if (decisive and decisive[-1][1] == UNK) or clash:
            ep, _status, chosen, why, _ = decisive[-1]
            why = _clash_reason(clash) if clash else why
            return ReceptorResult(UNK, chosen.date, chosen.method, "",
                                  f"{why} on {_fmt(chosen.date)}: HER2 status cannot be determined" + serum_note, True,
                                  tuple(dict.fromkeys(map(_SOURCE, (clash or ep)))))
        definitive = [s for s in settled if s[1] in (POS, NEG)]
        if definitive:
            ep, status, chosen, why, inner = definitive[-1]
            earlier = {(s[1], s[2].source, s[2].date) for s in definitive[:-1] if s[1] != status}
            conflict = inner or bool(earlier)
            reason = f"{why} on {_fmt(chosen.date)} ({chosen.source})"
            if earlier:
                olds = "; ".join(f"{st.value} on {_fmt(d)} ({src})" for st, src, d in sorted(earlier, key=lambda x: x[2] or dt.date.min))
                reason += f"; conflicts with earlier {olds}: the most recent tissue result is used"
            elif inner:
                reason += "; results of the same episode disagree (see sources)"
            later_eqv = [s for s in settled if s[1] == EQV and (s[2].date or dt.date.min) > (chosen.date or dt.date.min)]
            if later_eqv:
                reason += f"; a later equivocal result ({later_eqv[-1][2].source}) does not override it"
            sources = tuple(dict.fromkeys(map(_SOURCE, ep)))
            return ReceptorResult(status, chosen.date, chosen.method, chosen.detail, reason + serum_note, conflict, sources)
        ep, status, chosen, why, _ = settled[-1]
        if status == EQV:
            return ReceptorResult(EQV, chosen.date, chosen.method, chosen.detail,
                                  f"{why} on {_fmt(chosen.date)} ({chosen.source})" + serum_note, False,
                                  tuple(dict.fromkeys(map(_SOURCE, ep))))
    if conditions:
        definitive = [e for e in conditions if e.status in (POS, NEG)]
        if definitive:
            chosen = max(definitive, key=lambda e: (e.date or dt.date.min, e.source))
            clash = _same_date_clash(definitive) if marker == HER2 else []
            if clash:
                return ReceptorResult(UNK, chosen.date, "condition", "",
                                      f"no tissue result; coded conditions disagree on {_fmt(chosen.date)} "
                                      f"({', '.join(e.source for e in clash)}): HER2 status cannot be determined"
                                      + serum_note, True, tuple(dict.fromkeys(map(_SOURCE, clash))))
            disagree = sorted({e.source for e in definitive if e.status != chosen.status})
            reason = f"no tissue result; coded condition {chosen.detail} ({chosen.source})"
            if disagree:
                reason += f"; disagrees with {', '.join(disagree)}: the most recent is used"
            return ReceptorResult(chosen.status, chosen.date, "condition", chosen.detail, reason + serum_note,
                                  bool(disagree), tuple(dict.fromkeys(map(_SOURCE, definitive))))
    return ReceptorResult(UNK, None, "none", "", f"no {marker} tissue result in the record" + serum_note, False,
                          tuple(serum))


def _history(settled: _Settled) -> tuple[Her2Result, ...]:
    """The definitive HER2 result of each tissue test episode, chronological (read by the discordance
    rule: an earlier specimen positive, the latest negative)."""
    return tuple(Her2Result(status, chosen.date, chosen.detail, chosen.source, chosen.specimen)
                 for _ep, status, chosen, _why, _inner in settled if status in (POS, NEG))


def _context_markers(concept: Any, context: tuple[tuple[str, str, str], ...]) -> tuple[tuple[str, str, str], ...]:
    """A report's markers applied to one of its results, refined by the result's own words (ratio, copies)."""
    text = all_text(concept).lower()
    out = []
    for marker, method, kind in context:
        if marker == HER2 and re.search(r"ratio", text):
            out.append((HER2, "ISH", "ratio"))
        elif marker == HER2 and re.search(r"cop(y|ies)|signals", text):
            out.append((HER2, "ISH", "copies"))
        elif marker == HER2 and re.search(r"interpret|result|status|conclusion|summary", text):
            out.append((HER2, "interpretation", "presence"))
        else:
            out.append((marker, method, kind))
    return tuple(out)


def report_markers(report: dict[str, Any]) -> tuple[tuple[str, str, str], ...]:
    """Markers a DiagnosticReport is about, from its code (LOINC or text); () for other reports."""
    markers, serum, _ = _markers_of(report.get("code"))
    if serum:
        return ()
    return markers or text_markers(report.get("code"))


def report_evidence(report: dict[str, Any], source: str, markers: tuple[tuple[str, str, str], ...]
                    ) -> tuple[list[Evidence], list[RecordIssue]]:
    """Receptor evidence from a DiagnosticReport's conclusion / conclusionCode text.

    Read for the report's own markers, and for any marker the conclusion names ("ER positive (95%);
    PR negative; HER2 negative (1+)" in a pathology report's conclusion).
    """
    text = " ; ".join(t for t in [as_str(report.get("conclusion"))] +
                      [all_text(c) for c in as_list(report.get("conclusionCode"))] if t)
    if not text.strip():
        return [], []
    start, _ = choice_dates(report, "effective")
    date = start or parse_date(report.get("issued"))
    normalised = _normalise(text)
    wanted = {m: (method, kind) for m, method, kind in markers}
    for marker in (HER2, ER, PR):
        if marker not in wanted and _TEXT_MARKER[marker].search(normalised):
            wanted[marker] = ("interpretation", "presence")
    found: list[Evidence] = []
    issues: list[RecordIssue] = []
    for marker, (method, kind) in wanted.items():
        read = read_text(text, marker, method, kind)
        if read == AMBIGUOUS:
            issues.append(RecordIssue(source, f"{marker} conclusion text contradicts itself, not used: {text[:160]!r}"))
        elif read is not None:
            status, detail = read
            found.append(Evidence(marker, status, date, "interpretation" if method == "interpretation" else method,
                                  detail, source))
    return found, issues
