"""Small defensive accessors for raw FHIR R4 JSON dicts.

Why not `fhir.resources` models: parsing thousands of resources with pydantic costs far more than the
mapping budget (< 100 ms for 5,000 Observations), and real feeds are not always valid. Every helper
here accepts any value and returns a safe default instead of raising.
"""
from __future__ import annotations

import calendar
import datetime as dt
import re
from functools import lru_cache
from typing import Any, Iterator

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"

# A FHIR date, dateTime or instant, anchored at both ends: "20240510" or "2024-5-1" must not be read as
# 2024-01-01 (the year prefix), which would silently move treatment dates. Time and zone are checked
# for form only; the calendar date is taken as written (no time-zone shift).
_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})"
                   r"(?:T(?:[01]\d|2[0-3]):[0-5]\d(?::(?:[0-5]\d|60)(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})?)?)?)?")


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if value is None:
        return []
    return [value]            # lenient: a single object where an array belongs (CDS sandbox `category`)


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def codings(concept: Any) -> tuple[tuple[str, str, str], ...]:
    """(system, code, display) of every usable coding of a CodeableConcept (or list of them).

    A tuple, shared between calls: the usual concept (one CodeableConcept, one coding with a string code) is
    answered from a process-wide cache of what its system, code and display read as (`_one_coding`); the
    mapping asks for the codings of the same few codes some 25 times per hook call (a Condition's code alone
    by five readers). why: 60 instead of 85 bytecodes per call. Any other shape, and a system or display that
    cannot be a key (a list or object where a string belongs), is read the general way (`_codings`).

    The shape is checked by the lookups themselves, not beforehand (why: 13 bytecodes less per call): a JSON
    value that is not an object with a one-element `coding` array of objects with a `code` fails one of them
    (a list, string, number or None concept, or a string coding, cannot be indexed by "coding" or "code";
    `coding` must unpack to exactly one item), and a coding that is not an object is refused after."""
    try:
        (c,) = concept["coding"]          # exactly one coding (else ValueError; no object: TypeError / KeyError)
        code = c["code"]                  # a dict with a code (else TypeError / KeyError)
        if c.__class__ is dict and code.__class__ is str:   # 1, 1.0 and True would be one key, read differently
            return _one_coding(c.get("system"), code, c.get("display"))
    except (ValueError, TypeError, KeyError):     # other shapes; an unhashable system or display
        pass
    return tuple(_codings(concept))


@lru_cache(maxsize=4096)          # a pure function of a coding's strings: the same codes call after call
def _one_coding(system: Any, code: str, display: Any) -> tuple[tuple[str, str, str], ...]:
    return tuple(_codings({"coding": [{"system": system, "code": code, "display": display}]}))


def _codings(concept: Any) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for cc in (concept if isinstance(concept, list) else (concept,)):
        if not isinstance(cc, dict):
            continue
        coding = cc.get("coding")
        for c in (coding if isinstance(coding, list) else (coding,)):
            if isinstance(c, dict):
                code = c.get("code")
                if isinstance(code, str):
                    code = code.strip()
                elif isinstance(code, int) and not isinstance(code, bool):
                    code = str(code).strip()
                else:
                    continue
                if code:
                    system, display = c.get("system"), c.get("display")
                    out.append((system.strip() if isinstance(system, str) else "", code,
                                display if isinstance(display, str) else ""))
    return out


def all_text(concept: Any) -> str:
    """`text` and every display, joined: what a clinician would read.

    One CodeableConcept (the usual) is answered by `coded_text` from its text and `codings`, kept per code
    for the process. why: some 35 bytecodes less per call, asked for every Condition's code by several readers."""
    if concept.__class__ is dict:
        text = concept.get("text")
        return coded_text(text if isinstance(text, str) else "", codings(concept))
    parts: list[str] = []
    for cc in (concept if isinstance(concept, list) else (concept,)):
        if isinstance(cc, dict):
            text = cc.get("text")
            if isinstance(text, str) and text:
                parts.append(text)
            parts += [d for _, _, d in codings(cc) if d]
    return " ; ".join(parts)


@lru_cache(maxsize=4096)          # a pure function of a code's strings: the same few codes call after call
def coded_text(text: str, coded: tuple[tuple[str, str, str], ...]) -> str:
    """`all_text` of one CodeableConcept from its text (a string, "" for none) and its `codings`: for readers
    that keep their answer per code."""
    displays = [d for _, _, d in coded if d]
    return " ; ".join([text, *displays] if text else displays)


def two_digits(text: str) -> bool:
    """Exactly two ASCII digits: `str.isdigit` also says True for "²" or "٣", which `int` then refuses or reads
    as a number no code system writes (an ICD-10 code "O²1" made the whole mapping raise)."""
    return len(text) == 2 and text.isascii() and text.isdigit()


def is_system(system: str, *needles: str) -> bool:
    s = system.lower()
    return any(n in s for n in needles)


# The three below are pure functions of a code-system string, asked for every coding the mapping reads;
# a record uses a handful of systems, so the answers are kept for the process.
@lru_cache(maxsize=1024)
def is_snomed(system: str) -> bool:
    return is_system(system, "snomed")


@lru_cache(maxsize=1024)
def is_loinc(system: str) -> bool:
    return is_system(system, "loinc")


@lru_cache(maxsize=1024)
def is_icd10(system: str) -> bool:
    return is_system(system, "icd-10", "icd10", "2.16.840.1.113883.6.90")


def parse_date(value: Any, *, end: bool = False) -> dt.date | None:
    """The calendar date of a FHIR date/dateTime/instant as written (no time-zone shift).

    Partial dates: "2024-05" is the 1st of the month (the last day when `end`), "2024" likewise.
    Anything else (including "20240510", "2024-5-1", "2024-02-30") is None; `is_malformed_date` tells a
    malformed value from an absent one, so the mapping can report it as a gap.
    """
    if isinstance(value, str):                 # the usual case first: the mapping parses every date it reads
        return _parse_end(value) if end else _parse_start(value)
    if isinstance(value, dt.date):
        return value.date() if isinstance(value, dt.datetime) else value
    return None


# Pure functions of a string, kept per string: a chart repeats its dates a lot. One cache per reading, so a
# call keys on the string itself (a (value, end) key was a tuple built and hashed per call).
@lru_cache(maxsize=8192)
def _parse_start(value: str) -> dt.date | None:
    return _parse_date_str(value, False)


@lru_cache(maxsize=1024)          # period ends only
def _parse_end(value: str) -> dt.date | None:
    return _parse_date_str(value, True)


def _parse_date_str(value: str, end: bool) -> dt.date | None:
    m = _DATE.fullmatch(value.strip())
    if not m:
        return None
    try:
        year = int(m.group(1))
        if m.group(3):
            return dt.date(year, int(m.group(2)), int(m.group(3)))
        if m.group(2):
            month = int(m.group(2))
            return dt.date(year, month, calendar.monthrange(year, month)[1] if end else 1)
        return dt.date(year, 12, 31) if end else dt.date(year, 1, 1)
    except ValueError:
        return None


def is_malformed_date(value: Any) -> bool:
    """True for a value present but not a usable FHIR date (a gap to report), False for absent or valid."""
    if isinstance(value, str):
        return _parse_start(value) is None
    return value is not None and not isinstance(value, dt.date)      # a datetime is a date


# The date elements the mapping reads (top level; a `...Period` is checked at start/end).
DATE_ELEMENTS = ("effectiveDateTime", "effectiveInstant", "effectivePeriod", "issued", "onsetDateTime",
                 "onsetPeriod", "abatementDateTime", "abatementPeriod", "recordedDate", "authoredOn",
                 "dateAsserted", "occurrenceDateTime", "occurrencePeriod", "performedDateTime",
                 "performedPeriod", "birthDate")


_DATE_ELEMENT_SET = frozenset(DATE_ELEMENTS)


def malformed_dates(resource: dict[str, Any]) -> list[str]:
    """`element: 'value'` for each date element of `resource` that is present but malformed.

    Checked first on the (one or two) date elements the resource has, in any order: nearly every
    resource has only well-formed dates, and the report in `DATE_ELEMENTS` order is built only when one
    is not (a 5,000-resource chart would otherwise look up 16 elements per resource)."""
    for element in _DATE_ELEMENT_SET.intersection(resource):
        value = resource[element]
        if isinstance(value, str):     # the usual case (a string where a Period belongs: the full check decides)
            if _parse_start(value) is None:
                return _malformed_dates(resource)
        elif element.endswith("Period"):
            if isinstance(value, dict) and (is_malformed_date(value.get("start")) or is_malformed_date(value.get("end"))):
                return _malformed_dates(resource)
        elif is_malformed_date(value):
            return _malformed_dates(resource)
    return []


def _malformed_dates(resource: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for element in DATE_ELEMENTS:
        if element not in resource:
            continue
        value = resource[element]
        if element.endswith("Period"):
            for part in ("start", "end"):
                if is_malformed_date(as_dict(value).get(part)):
                    found.append(f"{element}.{part} {str(as_dict(value).get(part))[:40]!r}")
        elif is_malformed_date(value):
            found.append(f"{element} {str(value)[:40]!r}")
    return found


def period(value: Any) -> tuple[dt.date | None, dt.date | None]:
    """(start, end) of a Period; string dates are read from their caches directly (why: some 1,000 instructions
    less per date than through `parse_date`; the mapping reads every medication's period)."""
    if not isinstance(value, dict):
        return None, None
    start, end = value.get("start"), value.get("end")
    return (_parse_start(start) if start.__class__ is str else parse_date(start),
            _parse_end(end) if end.__class__ is str else parse_date(end, end=True))


def choice_dates(resource: dict[str, Any], prefix: str) -> tuple[dt.date | None, dt.date | None]:
    """(start, end) of a `<prefix>[x]` choice element: DateTime, Period, Instant, Date, Age ignored."""
    date_time, instant, date, in_period, in_string = _CHOICE_ELEMENTS.get(prefix) or _choice_elements(prefix)
    for element in (date_time, instant, date):
        value = resource.get(element)
        if value is not None:
            d = _parse_start(value) if value.__class__ is str else parse_date(value)
            if d:
                return d, d
    if in_period in resource:
        return period(resource[in_period])
    if in_string in resource:                   # onsetString "2019-05" is seen in the wild
        d = parse_date(resource[in_string])
        return d, d
    return None, None


def _choice_elements(prefix: str) -> tuple[str, str, str, str, str]:
    return prefix + "DateTime", prefix + "Instant", prefix + "Date", prefix + "Period", prefix + "String"


#: The element names of the choice elements the mapping reads, built once (a dict lookup costs a fifth of a cache call).
_CHOICE_ELEMENTS = {prefix: _choice_elements(prefix) for prefix in ("effective", "onset", "abatement", "performed",
                                                                    "occurrence")}


def ref_id(reference: Any, resource_type: str | None = None) -> str | None:
    """The id in a Reference (`Type/id`, absolute URL, `_history`), optionally only of a given type."""
    ref = as_str(as_dict(reference).get("reference")) if not isinstance(reference, str) else reference
    if not ref:
        return None
    parts = ref.strip().split("/")
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    if len(parts) < 2:
        return None
    rtype, rid = parts[-2], parts[-1]
    if resource_type and rtype != resource_type:
        return None
    return rid or None


def ref_type_id(reference: Any) -> tuple[str, str] | None:
    ref = as_str(as_dict(reference).get("reference")) if not isinstance(reference, str) else reference
    parts = ref.strip().split("/") if ref else []
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    if len(parts) < 2 or not parts[-1] or not parts[-2]:
        return None
    return parts[-2], parts[-1]


def extensions(resource: Any, url_suffix: str) -> Iterator[dict[str, Any]]:
    for ext in as_list(as_dict(resource).get("extension")):
        if isinstance(ext, dict) and as_str(ext.get("url")).endswith(url_suffix):
            yield ext


def status_code(concept: Any) -> str:
    """The code of a status CodeableConcept (clinicalStatus / verificationStatus), lower-case."""
    if isinstance(concept, str):
        return concept.lower()
    for _, code, _ in codings(concept):
        return code.lower()
    return as_str(as_dict(concept).get("text")).lower()


def source_of(resource: dict[str, Any]) -> str:
    return f"{as_str(resource.get('resourceType')) or '?'}/{as_str(resource.get('id')) or '?'}"


_SEMANTIC_TAG = re.compile(r"\s*\((?:disorder|finding|situation|procedure|morphologic abnormality|substance|product|"
                           r"observable entity|qualifier value|body structure|regime/therapy|clinical drug|"
                           r"medicinal product(?: form)?|event|record artifact|attribute|navigational concept)\)", re.I)


def clean_display(text: str) -> str:
    """A coded term as a clinician should read it: no SNOMED semantic tags ("(disorder)", "(situation)"),
    no empty or repeated " ; " parts, no stray separators at either end."""
    if not isinstance(text, str) or not text:
        return ""
    return _clean_display(text)


@lru_cache(maxsize=4096)          # pure function of a code's display: the same few displays, call after call
def _clean_display(text: str) -> str:
    parts = [" ".join(_SEMANTIC_TAG.sub("", p).split()) for p in text.split(";")]
    return " ; ".join(dict.fromkeys(p for p in parts if p))
