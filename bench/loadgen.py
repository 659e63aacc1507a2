"""Load generators: `hey` (Debian package, Go: little CPU per request) or a bounded Python client.

Both send the same prepared JSON body to one URL, N times or for a fixed duration, at a fixed
concurrency, and return a `stats.Summary`. Every run is bounded (count or duration, and a per-request
timeout), so a hung service cannot hang the bench.
"""
from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

from bench.stats import Summary, summarize

REQUEST_TIMEOUT_S = 30.0
HOOK_INSTANCE_MARK = "00000000-0000-4000-8000-00000000b0b0"   # replaced per request by the Python client


class LoadTool:
    """Common interface: `run(url, body, n=..., concurrency=..., duration_s=...) -> Summary`."""

    name = "?"

    def describe(self) -> str:
        return self.name

    def run(self, url: str, body: bytes, *, concurrency: int, n: int | None = None,
            duration_s: float | None = None) -> Summary:
        raise NotImplementedError


class PythonClient(LoadTool):
    """Thread pool, one `requests.Session` (keep-alive) per thread; a fresh hookInstance per call."""

    name = "python"

    def describe(self) -> str:
        return f"python thread pool + requests {requests.__version__} (one Session per thread)"

    def run(self, url: str, body: bytes, *, concurrency: int, n: int | None = None,
            duration_s: float | None = None) -> Summary:
        if n is None and duration_s is None:
            raise ValueError("give n or duration_s")
        head, sep, tail = body.partition(HOOK_INSTANCE_MARK.encode())
        lock = threading.Lock()
        issued = [0]
        latencies: list[float] = []
        bad = [0, 0]   # non-2xx, errors
        deadline = time.monotonic() + duration_s if duration_s else None

        def take() -> bool:
            with lock:
                if n is not None and issued[0] >= n:
                    return False
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                issued[0] += 1
                return True

        def worker() -> None:
            local: list[float] = []
            non2xx = errors = 0
            with requests.Session() as session:
                headers = {"Content-Type": "application/json", "Accept": "application/json"}
                while take():
                    data = head + uuid.uuid4().hex.encode() + tail if sep else body
                    start = time.perf_counter()
                    try:
                        response = session.post(url, data=data, headers=headers, timeout=REQUEST_TIMEOUT_S)
                        _ = response.content
                        elapsed = (time.perf_counter() - start) * 1000.0
                        if 200 <= response.status_code < 300:
                            local.append(elapsed)
                        else:
                            non2xx += 1
                            local.append(elapsed)
                    except requests.RequestException:
                        errors += 1
            with lock:
                latencies.extend(local)
                bad[0] += non2xx
                bad[1] += errors

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=(duration_s or 0) + REQUEST_TIMEOUT_S * ((n or 0) + 2))
        wall = time.perf_counter() - started
        return summarize(latencies, non_2xx=bad[0], errors=bad[1], wall_s=wall)


_STATUS_LINE = re.compile(r"^\s*\[(\d{3})\]\s+(\d+)\s+responses", re.M)
_ERROR_LINE = re.compile(r"^\s*\[(\d+)\]\s+(?!responses)", re.M)
_RPS_LINE = re.compile(r"Requests/sec:\s+([0-9.]+)")
_TOTAL_LINE = re.compile(r"Total:\s+([0-9.]+)\s+secs")


class HeyClient(LoadTool):
    """`hey` (rakyll/hey, Debian package `hey`). Counted runs use `-o csv` for every latency; timed runs
    parse hey's summary. hey sends the very same body every time (one hookInstance for the run)."""

    name = "hey"

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def describe(self) -> str:
        return f"hey ({self.executable}; Debian package hey 0.1.4)"

    def run(self, url: str, body: bytes, *, concurrency: int, n: int | None = None,
            duration_s: float | None = None) -> Summary:
        with tempfile.NamedTemporaryFile(prefix="bench-body-", suffix=".json", delete=False) as f:
            f.write(body.replace(HOOK_INSTANCE_MARK.encode(), uuid.uuid4().hex.encode()))
            body_path = Path(f.name)
        try:
            cmd = [self.executable, "-c", str(concurrency), "-m", "POST", "-T", "application/json",
                   "-t", str(int(REQUEST_TIMEOUT_S)), "-D", str(body_path)]
            if duration_s is not None:
                return self._timed(cmd + ["-z", f"{duration_s:g}s", url], duration_s)
            assert n is not None
            total = -(-max(n, concurrency) // concurrency) * concurrency   # hey runs n // c per worker
            return self._counted(cmd + ["-n", str(total), "-o", "csv", url], total)
        finally:
            body_path.unlink(missing_ok=True)

    def _counted(self, cmd: list[str], n: int) -> Summary:
        started = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=REQUEST_TIMEOUT_S * n + 60, check=True)
        wall = time.perf_counter() - started
        latencies: list[float] = []
        non2xx = 0
        for row in csv.DictReader(io.StringIO(out.stdout)):
            try:
                latency = float(row["response-time"]) * 1000.0
                status = int(row["status-code"])
            except (KeyError, ValueError):
                continue
            latencies.append(latency)
            if not 200 <= status < 300:
                non2xx += 1
        errors = n - len(latencies)     # hey's CSV lists answered requests only
        return summarize(latencies, non_2xx=non2xx, errors=errors, wall_s=wall)

    def _timed(self, cmd: list[str], duration_s: float) -> Summary:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + REQUEST_TIMEOUT_S + 60,
                             check=True).stdout
        statuses = {int(code): int(count) for code, count in _STATUS_LINE.findall(out)}
        ok = sum(c for s, c in statuses.items() if 200 <= s < 300)
        non2xx = sum(c for s, c in statuses.items() if not 200 <= s < 300)
        errors = 0
        if "Error distribution:" in out:
            errors = sum(int(m) for m in _ERROR_LINE.findall(out.split("Error distribution:", 1)[1]))
        total = float(_TOTAL_LINE.search(out).group(1)) if _TOTAL_LINE.search(out) else duration_s
        latencies = _hey_percentiles(out)
        summary = summarize([], non_2xx=non2xx, errors=errors, wall_s=total, completed=ok)
        return Summary(n=ok + non2xx, p50=latencies.get(50, float("nan")), p95=latencies.get(95, float("nan")),
                       p99=latencies.get(99, float("nan")), max=latencies.get(100, float("nan")),
                       mean=latencies.get(-1, float("nan")), non_2xx=non2xx, errors=errors, wall_s=total,
                       rps=summary.rps)


def _hey_percentiles(out: str) -> dict[int, float]:
    """hey's summary: 'Latency distribution: ... 95% in 0.0123 secs', 'Slowest:', 'Average:'."""
    found = {int(p): float(s) * 1000.0 for p, s in re.findall(r"(\d+)%+ in ([0-9.]+) secs", out)}
    slowest = re.search(r"Slowest:\s+([0-9.]+) secs", out)
    average = re.search(r"Average:\s+([0-9.]+) secs", out)
    if slowest:
        found[100] = float(slowest.group(1)) * 1000.0
    if average:
        found[-1] = float(average.group(1)) * 1000.0
    return found


def choose_tool(preference: str) -> tuple[LoadTool, str]:
    """The load tool to use and a note for the report. `auto` takes hey when installed, else Python
    (said loudly: the bench never installs anything itself)."""
    hey = shutil.which("hey")
    if preference == "python":
        return PythonClient(), "python client (requested)"
    if preference == "hey":
        if not hey:
            raise SystemExit("--load-tool hey: `hey` is not installed; as root: apt-get update && apt-get install -y hey")
        return HeyClient(hey), "hey (requested)"
    if hey:
        return HeyClient(hey), "hey (found on PATH)"
    return PythonClient(), ("python client: `hey` not found (install it with `apt-get install -y hey` for a "
                            "load generator that does not share the interpreter's CPU cost)")

