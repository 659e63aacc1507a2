"""Left-ventricular ejection fraction measurements (percent) from Observations and their components.

Any LVEF LOINC code is accepted (clinical.md §4.3; several meanings are U, so the method is not
interpreted). Values: Quantity in % (a fraction <= 1 without a % unit is scaled), a Range (midpoint),
or a string such as "55%" / "55-60%" (midpoint).
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from .fhir_json import as_dict, as_str
from .model import LvefMeasurement, RecordIssue

LVEF_LOINC = frozenset({"10230-1", "18043-0", "8806-2", "77891-0", "77889-4", "8808-8", "8809-6", "18045-5",
                        "8811-2", "79991-6"})
_NUM = re.compile(r"(\d+(?:\.\d+)?)")


#: Names of LVEF in echo reports whose components carry local codes only ("LV Ejection Fraction", "LVEF
#: (Biplane)", "EF Simpson's"): read when no LVEF LOINC code is present. Right-ventricular EF is not LVEF.
LVEF_TEXT = re.compile(r"\blvef\b|\blv\s*ef\b|\blv\s+ejection\s+fraction|left\s+ventric\w*\s+ejection\s+fraction|"
                       r"^\s*(?:ef|ejection\s+fraction)\b(?!.*\b(?:rv|right)\b)", re.I)


def lvef_code(concept: Any) -> str:
    """The LVEF LOINC code of a concept ('' if none); LOINC codes are distinctive, the system is not checked.

    Without one, a code whose text names LVEF gives its own code (or "text") - codes first, then words.
    """
    coding = concept.get("coding") if isinstance(concept, dict) else None
    if isinstance(coding, list):
        for c in coding:
            code = c.get("code") if isinstance(c, dict) else None
            if isinstance(code, str) and code.strip() in LVEF_LOINC:
                return code.strip()
    if names_lvef(concept):
        first = next((c.get("code") for c in coding or [] if isinstance(c, dict) and isinstance(c.get("code"), str)), "")
        return first.strip() or "text"
    return ""


def names_lvef(concept: Any) -> bool:
    """Does the text of a code (text or any display) name left-ventricular ejection fraction?"""
    if not isinstance(concept, dict):
        return False
    texts = [concept.get("text")] + [c.get("display") for c in concept.get("coding") or [] if isinstance(c, dict)] \
        if isinstance(concept.get("coding", []), list) else [concept.get("text")]
    return any(isinstance(t, str) and LVEF_TEXT.search(t) for t in texts)


def _value(part: dict[str, Any]) -> float | None:
    q = part.get("valueQuantity")
    if isinstance(q, dict):
        v = q.get("value")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        if 0 < v <= 1 and "%" not in (as_str(q.get("unit")) + as_str(q.get("code"))):
            return float(v) * 100
        return float(v)
    r = part.get("valueRange")
    if isinstance(r, dict):
        lo, hi = as_dict(r.get("low")).get("value"), as_dict(r.get("high")).get("value")
        nums = [float(x) for x in (lo, hi) if isinstance(x, (int, float)) and not isinstance(x, bool)]
        return sum(nums) / len(nums) if nums else None
    s = part.get("valueString")
    if isinstance(s, str):
        nums = [float(x) for x in _NUM.findall(s)[:2]]
        return sum(nums) / len(nums) if nums else None
    v = part.get("valueInteger")
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return None


def read_lvef(obs: dict[str, Any], source: str, date: dt.date | None, code: str | None,
              found: list[LvefMeasurement], issues: list[RecordIssue]) -> None:
    """The LVEF measurements of an Observation dated `date` into `found`, what cannot be used into `issues`.
    `code` is `lvef_code` of `obs.code` when the caller looked it up (an Observation without components).
    Why the caller's lists: the summary reads thousands of echo results in a long chart."""
    component = obs.get("component")
    if code is not None and component is None:
        q = obs.get("valueQuantity")
        if code and date is not None and isinstance(q, dict):
            v = q.get("value")
            if type(v) in (int, float) and 5 <= v <= 95:      # the usual echo result: a plain percentage
                # (a whole number needs no rounding: float.__round__ formats the number, a thousand instructions)
                found.append(LvefMeasurement(float(v) if type(v) is int else round(v, 1), date, code, source))
                return
    # any other shape into lists of its own, added only when it is read through (an oversized number raises:
    # the summary then reports the Observation as unreadable and keeps nothing of it, as before)
    own_found: list[LvefMeasurement] = []
    own_issues: list[RecordIssue] = []
    if code is not None and component is None:
        _read(obs, code, date, source, own_found, own_issues)
    else:
        parts = [obs] + [c for c in component if isinstance(c, dict)] if isinstance(component, list) else [obs]
        for part in parts:
            _read(part, lvef_code(part.get("code")), date, source, own_found, own_issues)
    found += own_found
    issues += own_issues


def _read(part: dict[str, Any], code: str, date: Any, source: str, found: list[LvefMeasurement],
          issues: list[RecordIssue]) -> None:
    """The measurement of one Observation or component coded `code` ('' when it is not LVEF), or its issue."""
    if not code:
        return
    value = _value(part)
    if value is None:
        if part.get("dataAbsentReason") is None:
            issues.append(RecordIssue(source, f"LVEF ({code}) without a readable value"))
        return
    if not 5 <= value <= 95:
        issues.append(RecordIssue(source, f"LVEF ({code}) value {value:g} outside 5-95%: not used"))
        return
    if date is None:
        issues.append(RecordIssue(source, f"LVEF ({code}) without a date: not used"))
        return
    found.append(LvefMeasurement(round(value, 1), date, code, source))
