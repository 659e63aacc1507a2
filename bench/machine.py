"""CPU accounting: how much of the machine went to processes the bench did not start.

On a shared 2-core box the absolute figures depend on everyone else's work; the report states the
share of CPU time others took during the run (from /proc/stat minus our own process trees), so a
reader can tell a slow service from a busy machine.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from bench.servers import descendants

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class CpuSnapshot:
    busy_s: float        # machine-wide non-idle CPU seconds since boot (all cores)
    steal_s: float       # taken by the hypervisor
    own_s: float         # this process and its reaped children (hey runs, etc.)


def snapshot() -> CpuSnapshot:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) / _TICK for v in fields]
    user, nice, system, idle, iowait, irq, softirq = values[:7]
    steal = values[7] if len(values) > 7 else 0.0
    t = os.times()
    return CpuSnapshot(busy_s=user + nice + system + irq + softirq + steal, steal_s=steal,
                       own_s=t.user + t.system + t.children_user + t.children_system)


def process_cpu_s(pid: int) -> float:
    """utime + stime of one live process (its own threads, not its children)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    rest = text.rsplit(")", 1)[1].split()       # fields after the command name
    return (int(rest[11]) + int(rest[12])) / _TICK   # utime, stime (fields 14, 15)


def tree_cpu_s(pid: int | None) -> float:
    """CPU seconds of a live process and all its live descendants."""
    if pid is None:
        return 0.0
    return sum(process_cpu_s(p) for p in [pid] + descendants(pid))


def account(start: CpuSnapshot, end: CpuSnapshot, live_trees_s: float, elapsed_s: float) -> dict[str, float]:
    """Machine busy time split into the bench's own (this process, hey, sekmet, the service) and others'."""
    busy = end.busy_s - start.busy_s
    ours = (end.own_s - start.own_s) + live_trees_s
    others = max(0.0, busy - ours)
    return {"elapsed_s": round(elapsed_s, 1), "machine_busy_core_s": round(busy, 1),
            "bench_core_s": round(ours, 1), "other_processes_core_s": round(others, 1),
            "other_processes_avg_cores": round(others / elapsed_s, 2) if elapsed_s else 0.0,
            "steal_core_s": round(end.steal_s - start.steal_s, 1), "cores": float(os.cpu_count() or 0)}


def others_cores(window_s: float = 3.0) -> float:
    """Cores' worth of CPU used by every process except this one over a short window."""
    start = snapshot()
    time.sleep(window_s)
    end = snapshot()
    return max(0.0, (end.busy_s - start.busy_s) - (end.own_s - start.own_s)) / window_s


def wait_until_quiet(max_wait_s: float, threshold_cores: float = 0.3, log=print) -> float:
    """Wait (at most `max_wait_s`) until other processes use under `threshold_cores`; returns the last
    reading. The bench measures anyway when the machine stays busy, and says so in the report."""
    deadline = time.monotonic() + max_wait_s
    reading = others_cores()
    while reading >= threshold_cores and time.monotonic() < deadline:
        log(f"machine busy: other processes use {reading:.2f} cores; waiting (up to {max_wait_s:g} s in all)")
        reading = others_cores(5.0)
    return reading
