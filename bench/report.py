"""The one verdict table (target, measured, PASS/FAIL), the detail tables, and the JSON document."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    passed: bool | None       # None: informational (no target), or not judged when `busy`
    busy: bool = False        # not judged: the machine's other work, not the service, would decide it

    @property
    def label(self) -> str:
        if self.busy:
            return "BUSY"
        return "INFO" if self.passed is None else ("PASS" if self.passed else "FAIL")

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "measured": self.measured, "result": self.label}


def fmt_ms(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain fixed-width text table (right-aligned numbers, left-aligned text)."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            text = str(cell)
            numeric = text.replace(".", "", 1).replace("x", "").replace("-", "").strip().isdigit()
            out.append(text.rjust(widths[i]) if numeric and i > 0 else text.ljust(widths[i]))
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep] + [line(r) for r in rows])


def verdict_table(verdicts: list[Verdict]) -> str:
    return table(["target", "measured", "result"], [[v.target, v.measured, v.label] for v in verdicts])


def _clean(obj: Any) -> Any:
    """JSON-safe copy: dataclasses via as_dict, NaN -> null (strict JSON has no NaN)."""
    if hasattr(obj, "as_dict"):
        return _clean(obj.as_dict())
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def write_json(path: Path, document: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(_clean(document), indent=2, allow_nan=False) + "\n", encoding="utf-8")
