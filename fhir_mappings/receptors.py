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
from typing import Any, Iterable

from .fhirpath import all_text, as_dict, as_list, as_str, choice_dates, codings, is_icd10, is_loinc, is_snomed, parse_date
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
    texts = [all_text(obs.get("bodySite")), as_str(as_dict(obs.get("specimen")).get("display"))]
    texts += [as_str(as_dict(n).get("text")) for n in as_list(obs.get("note"))[:1]]
    text = next((t.strip() for t in texts if t and t.strip()), "")
    return text if len(text) <= SPECIMEN_TEXT_MAX else text[:SPECIMEN_TEXT_MAX - 1].rstrip() + "…"


def _word_status(text: str) -> ReceptorStatus | None:
    t = text.lower()
    if re.search(r"\b(not amplified|non-?amplified|negative|neg)\b", t):
        return NEG
    if re.search(r"\b(equivocal|indeterminate|borderline)\b", t):
        return EQV
    if re.search(r"\b(amplified|positive|pos)\b", t):
        return POS
    return None


def _score_status(score: float) -> ReceptorStatus:
    return POS if score >= 3 else EQV if score >= 2 else NEG


def _ratio_from_text(text: str) -> tuple[ReceptorStatus, str] | None:
    g = _GREATER.search(text)
    if g:
        bound = float(g.group(2))
        if bound >= ISH_RATIO_POSITIVE:
            return POS, f"HER2/CEP17 ratio > {bound:g}"
        return EQV, f"HER2/CEP17 ratio > {bound:g} (does not establish >= {ISH_RATIO_POSITIVE:g})"
    lt = _LESS.search(text)
    if lt:
        bound = float(lt.group(2))
        if bound <= ISH_RATIO_POSITIVE:
            return NEG, f"HER2/CEP17 ratio < {bound:g}"
        return EQV, f"HER2/CEP17 ratio < {bound:g} (does not establish < {ISH_RATIO_POSITIVE:g})"
    n = _NUMBER.search(text)
    if n:
        ratio = float(n.group(1))
        return (POS if ratio >= ISH_RATIO_POSITIVE else NEG), f"HER2/CEP17 ratio {ratio:g}"
    return None


def _read_value(obs: dict[str, Any], marker: str, method: str, kind: str) -> tuple[ReceptorStatus, str] | None:
    """Status and a short detail from value[x] (CodeableConcept, Quantity, string, integer) or interpretation."""
    label = f"{marker} {method}" if method != "interpretation" else marker
    cc = obs.get("valueCodeableConcept")
    if isinstance(cc, dict):
        status = None
        for _, code, _ in codings(cc):
            if code in POSITIVE_CODES:
                status = POS
            elif code in NEGATIVE_CODES:
                status = NEG
            elif code in EQUIVOCAL_CODES:
                status = EQV
            if status:
                break
        text = all_text(cc)
        score = _SCORE.search(text) if marker == HER2 and method == "IHC" else None
        if status is None:                      # code unknown: text, e.g. "3+" or "Positive"
            if score:
                status = _score_status(int(score.group(1)))
            else:
                status = _word_status(text)
        if status is None:
            return None
        detail = f"IHC {score.group(1)}+" if score else f"{label} {status.value}"
        return status, detail
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
        if marker == HER2 and method == "ISH":
            r = _ratio_from_text(s) if (kind == "ratio" or _NUMBER.search(s)) else None
            if r:
                return r
        if marker == HER2 and method == "IHC":
            score = _SCORE.search(s)
            if score:
                return _score_status(int(score.group(1))), f"IHC {score.group(1)}+"
        if kind == "percent" and _NUMBER.search(s):
            value = float(_NUMBER.search(s).group(1))
            return (POS if value >= PERCENT_POSITIVE else NEG), f"{marker} {value:g}%"
        status = _word_status(s)
        if status:
            return status, f"{label} {s.strip()!r}"
        return None
    # no value: Observation.interpretation (POS/NEG) as a last resort
    for _, code, _ in codings(obs.get("interpretation")):
        if code in POSITIVE_CODES:
            return POS, f"{label} interpretation POS"
        if code in NEGATIVE_CODES:
            return NEG, f"{label} interpretation NEG"
    return None


def _markers_of(code_concept: Any) -> tuple[tuple[tuple[str, str, str], ...], bool, str]:
    """(markers, serum, loinc-code) for an Observation.code."""
    for system, code, _ in codings(code_concept):
        if not is_loinc(system) and system:
            continue
        if code in SERUM_HER2:
            return (), True, code
        if code in LOINC_MARKERS:
            return LOINC_MARKERS[code], False, code
        if code in MISCODED_LOINC and is_loinc(system):
            return LOINC_MARKERS[MISCODED_LOINC[code]], False, code
    return (), False, ""


def observation_evidence(obs: dict[str, Any], source: str) -> tuple[list[Evidence], bool, list[RecordIssue]]:
    """Receptor evidence from one Observation (and its components): (evidence, was-serum-HER2, issues)."""
    found: list[Evidence] = []
    issues: list[RecordIssue] = []
    serum = False
    start, _ = choice_dates(obs, "effective")
    date = start or parse_date(obs.get("issued"))
    specimen = specimen_of(obs)
    parts = [obs] + [c for c in as_list(obs.get("component")) if isinstance(c, dict)]
    for part in parts:
        markers, is_serum, code = _markers_of(part.get("code"))
        serum = serum or is_serum
        if code in MISCODED_LOINC:
            issues.append(RecordIssue(source, f"SNOMED code {code} sent under the LOINC system; read as "
                                              f"LOINC {MISCODED_LOINC[code]} (ER+PR receptor stain)"))
        for marker, method, kind in markers:
            read = _read_value(part, marker, method, kind)
            if read is None:
                if part is obs and not part.get("component"):
                    issues.append(RecordIssue(source, f"{marker} result without a readable value"))
                continue
            status, detail = read
            if kind == "combined" and status == POS:
                if marker == PR:
                    continue                      # HR-positive: cannot say which receptor; recorded on ER
                detail = "ER/PR combined stain positive (hormone-receptor positive)"
            found.append(Evidence(marker, status, date, method, detail, source, specimen))
    return found, serum, issues


def condition_evidence(cond: dict[str, Any], source: str) -> list[Evidence]:
    found: list[Evidence] = []
    start, _ = choice_dates(cond, "onset")
    date = start or parse_date(cond.get("recordedDate"))
    for system, code, display in codings(cond.get("code")):
        if not (is_icd10(system) or is_snomed(system)):
            continue
        for marker, status in CONDITION_CODES.get(code.upper() if is_icd10(system) else code, ()):
            note = " (hormone-receptor positive, recorded on ER)" if code in _HR_NOTE and marker == ER else ""
            found.append(Evidence(marker, status, date, "condition", f"{code} {display}".strip() + note, source))
    return found


def _episodes(items: list[Evidence]) -> list[list[Evidence]]:
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


def settle(marker: str, tissue: Iterable[Evidence], conditions: Iterable[Evidence], serum_sources: Iterable[str]) -> ReceptorResult:
    """One ReceptorResult for a marker; the reason always says why."""
    tissue = [e for e in tissue if e.marker == marker]
    conditions = [e for e in conditions if e.marker == marker]
    serum = sorted(set(serum_sources)) if marker == HER2 else []
    serum_note = f"; serum HER2 test(s) excluded ({', '.join(serum)}): not tissue status" if serum else ""
    if tissue:
        settled = [(ep, *_settle_episode(marker, ep)) for ep in _episodes(tissue)]
        decisive = [s for s in settled if s[1] in (POS, NEG) or (s[1] == UNK and s[4])]
        undated = [e for s in decisive if s[2].date is None for e in s[0]]
        clash = _same_date_clash(undated) if marker == HER2 and len(decisive) == len(undated) else []
        if (decisive and decisive[-1][1] == UNK) or clash:
            ep, _status, chosen, why, _ = decisive[-1]
            why = _clash_reason(clash) if clash else why
            return ReceptorResult(UNK, chosen.date, chosen.method, "",
                                  f"{why} on {_fmt(chosen.date)}: HER2 status cannot be determined" + serum_note, True,
                                  tuple(dict.fromkeys(e.source for e in (clash or ep))))
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
            sources = tuple(dict.fromkeys(e.source for e in ep))
            return ReceptorResult(status, chosen.date, chosen.method, chosen.detail, reason + serum_note, conflict, sources)
        ep, status, chosen, why, _ = settled[-1]
        if status == EQV:
            return ReceptorResult(EQV, chosen.date, chosen.method, chosen.detail,
                                  f"{why} on {_fmt(chosen.date)} ({chosen.source})" + serum_note, False,
                                  tuple(dict.fromkeys(e.source for e in ep)))
    if conditions:
        definitive = [e for e in conditions if e.status in (POS, NEG)]
        if definitive:
            chosen = max(definitive, key=lambda e: (e.date or dt.date.min, e.source))
            clash = _same_date_clash(definitive) if marker == HER2 else []
            if clash:
                return ReceptorResult(UNK, chosen.date, "condition", "",
                                      f"no tissue result; coded conditions disagree on {_fmt(chosen.date)} "
                                      f"({', '.join(e.source for e in clash)}): HER2 status cannot be determined"
                                      + serum_note, True, tuple(dict.fromkeys(e.source for e in clash)))
            disagree = sorted({e.source for e in definitive if e.status != chosen.status})
            reason = f"no tissue result; coded condition {chosen.detail} ({chosen.source})"
            if disagree:
                reason += f"; disagrees with {', '.join(disagree)}: the most recent is used"
            return ReceptorResult(chosen.status, chosen.date, "condition", chosen.detail, reason + serum_note,
                                  bool(disagree), tuple(dict.fromkeys(e.source for e in definitive)))
    return ReceptorResult(UNK, None, "none", "", f"no {marker} tissue result in the record" + serum_note, False,
                          tuple(serum))


def her2_results(tissue: Iterable[Evidence]) -> tuple[Her2Result, ...]:
    """The definitive HER2 result of each tissue test episode, chronological (read by the discordance
    rule: an earlier specimen positive, the latest negative)."""
    out = []
    for ep in _episodes([e for e in tissue if e.marker == HER2]):
        status, chosen, _why, _inner = _settle_episode(HER2, ep)
        if status in (POS, NEG):
            out.append(Her2Result(status, chosen.date, chosen.detail, chosen.source, chosen.specimen))
    return tuple(out)
