"""Planned start and end of a drafted MedicationRequest (card contract v2, *Draft timing*).

Why: an anthracycline and trastuzumab drafted in one order set are a sequential course (AC then THP)
when every anthracycline draft ends before every trastuzumab-based draft starts. Only stated timing
counts: a draft with no planned start or end is returned as (None, None) and the rule treats it as
"starting now and running on".

- planned start: the earliest of `dosageInstruction[].timing.repeat.boundsPeriod.start`,
  `dosageInstruction[].timing.event[]` and `dispenseRequest.validityPeriod.start`;
- planned end: `boundsPeriod.end`, else start + `boundsDuration`, else `validityPeriod.end`.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from .fhir_json import as_dict, as_list, as_str, parse_date, period

_UNIT_DAYS = {"d": 1.0, "day": 1.0, "days": 1.0, "wk": 7.0, "week": 7.0, "weeks": 7.0, "mo": 30.4375,
              "month": 30.4375, "months": 30.4375, "a": 365.25, "year": 365.25, "years": 365.25}


def _duration_days(value: Any) -> float | None:
    d = as_dict(value)
    v = d.get("value")
    unit = (as_str(d.get("code")) or as_str(d.get("unit"))).strip().lower()
    if isinstance(v, bool) or not isinstance(v, (int, float)) or unit not in _UNIT_DAYS or v < 0:
        return None
    return float(v) * _UNIT_DAYS[unit]


def planned_period(mr: dict[str, Any]) -> tuple[dt.date | None, dt.date | None]:
    """(planned start, planned end) of a draft MedicationRequest; None where the draft does not say."""
    starts: list[dt.date] = []
    bound_ends: list[dt.date] = []
    durations: list[float] = []
    for di in as_list(mr.get("dosageInstruction")):
        timing = as_dict(as_dict(di).get("timing"))
        if not timing:
            continue                          # a dose in words only ("75 mg/m2 every 21 days"): no dates
        repeat = as_dict(timing.get("repeat"))
        s, e = period(repeat.get("boundsPeriod"))
        if s:
            starts.append(s)
        if e:
            bound_ends.append(e)
        days = _duration_days(repeat.get("boundsDuration"))
        if days is not None:
            durations.append(days)
        starts.extend(d for d in (parse_date(t) for t in as_list(timing.get("event"))) if d)
    v_start, v_end = period(as_dict(as_dict(mr.get("dispenseRequest")).get("validityPeriod"))) \
        if "dispenseRequest" in mr else (None, None)
    if v_start:
        starts.append(v_start)
    start = min(starts) if starts else None
    if bound_ends:
        end: dt.date | None = max(bound_ends)
    elif start is not None and durations:
        end = start + dt.timedelta(days=round(max(durations)))
    else:
        end = v_end
    return start, end
