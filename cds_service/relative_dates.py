"""Relative dates in test data, so demo patients and scenarios never go stale.

Same tokens as `../shared/scenarios`: `${T-<n>d}` -> the date n days before today (`YYYY-MM-DD`),
`${T-<n>d:dt}` -> that date at `T00:00:00Z`, `${T+<n>d}` for the future, `${T-<n>m:ym}` -> the partial
date `YYYY-MM` n calendar months before today's month. Any other `${T...}` token is an error, so a
typo cannot slip into a record as literal text.

It lives in the service package, not with the demo tooling, because `her2-cds evaluate` (a production
command) reads Bundle files written with these tokens.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

_DAY = re.compile(r"\$\{T([+-])(\d+)d(:dt)?\}")
_MONTH = re.compile(r"\$\{T([+-])(\d+)m:ym\}")
_LEFTOVER = re.compile(r"\$\{T[^}]*\}")


def substitute(text: str, today: dt.date) -> str:
    def day(m: re.Match[str]) -> str:
        n = int(m.group(2)) * (-1 if m.group(1) == "-" else 1)
        d = today + dt.timedelta(days=n)
        return f"{d.isoformat()}T00:00:00Z" if m.group(3) else d.isoformat()

    def month(m: re.Match[str]) -> str:
        n = int(m.group(2)) * (-1 if m.group(1) == "-" else 1)
        index = today.year * 12 + (today.month - 1) + n
        return f"{index // 12:04d}-{index % 12 + 1:02d}"

    out = _MONTH.sub(month, _DAY.sub(day, text))
    leftover = _LEFTOVER.search(out)
    if leftover:
        raise ValueError(f"unknown date token {leftover.group(0)!r}")
    return out


def load_json(path: Path | str, today: dt.date | None = None) -> Any:
    """Read a JSON file whose text carries relative-date tokens."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    return json.loads(substitute(Path(path).read_text(encoding="utf-8"), today))
