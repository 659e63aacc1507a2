"""Latency summaries: nearest-rank percentiles, so every figure is a latency that was really observed."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Sequence


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (p in 0..100); nan when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


@dataclass(frozen=True)
class Summary:
    """One measured run: latencies in ms, plus how many answers were not 2xx or never came."""

    n: int
    p50: float
    p95: float
    p99: float
    max: float
    mean: float
    non_2xx: int = 0          # answered with a status outside 200..299
    errors: int = 0           # no answer at all (timeout, connection error)
    wall_s: float = 0.0       # wall time of the run
    rps: float = 0.0          # completed answers per second of wall time
    samples: tuple[float, ...] = field(default=(), repr=False, compare=False)   # raw latencies (merging runs)

    @property
    def failures(self) -> int:
        return self.non_2xx + self.errors

    def as_dict(self) -> dict[str, Any]:
        return {f.name: (round(v, 3) if isinstance(v, float) else v)
                for f in fields(self) if f.name != "samples" for v in (getattr(self, f.name),)}


def summarize(latencies_ms: Iterable[float], *, non_2xx: int = 0, errors: int = 0, wall_s: float = 0.0,
              completed: int | None = None) -> Summary:
    """Summary of a run; `completed` (default: number of latencies) feeds the req/s figure."""
    values = sorted(latencies_ms)
    done = len(values) if completed is None else completed
    return Summary(
        n=len(values), p50=percentile(values, 50), p95=percentile(values, 95), p99=percentile(values, 99),
        max=values[-1] if values else math.nan, mean=(sum(values) / len(values)) if values else math.nan,
        non_2xx=non_2xx, errors=errors, wall_s=wall_s, rps=(done / wall_s) if wall_s > 0 else 0.0,
        samples=tuple(values))


def merge(parts: Sequence[Summary]) -> Summary:
    """One summary of several segments of the same measurement (interleaved runs): percentiles over all
    raw latencies when every segment has them (counted runs), else the worst segment's (hey's timed runs
    report percentiles only); req/s = all completed answers / all wall time."""
    if len(parts) == 1:
        return parts[0]
    non_2xx, errors = sum(p.non_2xx for p in parts), sum(p.errors for p in parts)
    wall = sum(p.wall_s for p in parts)
    completed = sum(p.rps * p.wall_s for p in parts)
    if all(p.samples or not p.n for p in parts):
        out = summarize([x for p in parts for x in p.samples], non_2xx=non_2xx, errors=errors, wall_s=wall,
                        completed=round(completed))
        return out
    worst = lambda name: max((getattr(p, name) for p in parts if not math.isnan(getattr(p, name))),  # noqa: E731
                             default=math.nan)
    n = sum(p.n for p in parts)
    mean = sum(p.mean * p.n for p in parts if not math.isnan(p.mean)) / n if n else math.nan
    return Summary(n=n, p50=worst("p50"), p95=worst("p95"), p99=worst("p99"), max=worst("max"), mean=mean,
                   non_2xx=non_2xx, errors=errors, wall_s=wall, rps=completed / wall if wall > 0 else 0.0)
