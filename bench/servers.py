"""The service under test: `her2-cds serve` (gunicorn, N workers) started by PID, watched via /proc.

Why /proc: peak RSS (VmHWM) of each gunicorn worker is what an operator sizes a host by, and reading it
needs no extra dependency. Workers are the descendants of the PID we started.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from sandbox.sekmet import ProcessInWorkDir, stop_process

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        for task in task_dir.iterdir():
            text = (task / "children").read_text()
            kids.extend(int(k) for k in text.split())
    except OSError:
        pass
    return kids


def descendants(pid: int) -> list[int]:
    """All live descendants of `pid` (breadth first)."""
    seen: list[int] = []
    queue = _children(pid)
    while queue:
        child = queue.pop(0)
        if child not in seen:
            seen.append(child)
            queue.extend(_children(child))
    return seen


def status_kb(pid: int, field: str) -> int | None:
    """A `kB` field of /proc/<pid>/status (VmHWM = peak RSS, VmRSS = current RSS)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def her2cds_executable() -> list[str]:
    """`her2-cds` next to the running interpreter (the dev venv), else on PATH."""
    candidate = Path(sys.executable).parent / "her2-cds"
    if candidate.exists():
        return [str(candidate)]
    found = shutil.which("her2-cds")
    if found:
        return [found]
    raise SystemExit("her2-cds is not installed in this interpreter's venv (pip install -e . first)")


def floor_app_argv() -> list[str]:
    """The floor app (bench/floor_app.py) under this interpreter; the caller adds host, port and workers."""
    return [sys.executable, "-m", "bench.floor_app"]


class ServiceProcess(ProcessInWorkDir):
    """`her2-cds serve --host 127.0.0.1 --port P --workers W` with bench settings, stopped by PID."""

    def __init__(self, port: int, workers: int = 2, extra_env: dict[str, str] | None = None,
                 argv: list[str] | None = None) -> None:
        self.port = port
        self.workers = workers
        self.extra_env = dict(extra_env or {})
        self.argv = argv            # None: `her2-cds serve ...`; else another gunicorn app (the floor app)
        self.process: subprocess.Popen | None = None
        self.work_dir: Path | None = None
        self.peak_kb: dict[int, int] = {}      # pid -> highest VmHWM seen
        self.roles: dict[int, str] = {}        # pid -> "master" | "worker" | "other"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}/cds-services"

    @property
    def log_path(self) -> Path | None:
        return self.work_dir / "service.log" if self.work_dir else None

    def start(self) -> "ServiceProcess":
        self.work_dir = Path(tempfile.mkdtemp(prefix="her2cds-bench-"))
        env = {**os.environ,
               "HER2CDS_AUTH_MODE": "off",
               "HER2CDS_FEEDBACK_DB_URL": f"sqlite:///{self.work_dir / 'feedback.sqlite3'}",
               "HER2CDS_MAX_BODY_BYTES": str(64 * 1024 * 1024),   # 5,000-resource prefetch bodies are ~3 MB
               **self.extra_env}
        log = open(self.log_path, "wb")
        argv = self.argv if self.argv is not None else her2cds_executable() + ["serve"]
        self.process = subprocess.Popen(
            argv + ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)],
            cwd=self.work_dir, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if _http_ok(self.discovery_url) and len(self.worker_pids()) >= self.workers:
                self.sample_memory()
                return self
            time.sleep(0.2)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"her2-cds serve did not answer {self.discovery_url}; log tail:\n{tail}")

    def worker_pids(self) -> list[int]:
        """Gunicorn workers: descendants of our PID that have no children (the master has them)."""
        if self.process is None or self.process.poll() is not None:
            return []
        tree = descendants(self.process.pid)
        return [pid for pid in tree if not _children(pid)] or []

    def master_pid(self) -> int | None:
        """The gunicorn arbiter: our PID, or its descendant whose children are the workers."""
        if self.process is None:
            return None
        workers = set(self.worker_pids())
        for pid in [self.process.pid] + descendants(self.process.pid):
            if workers and set(_children(pid)) & workers:
                return pid
        return self.process.pid

    def sample_memory(self) -> None:
        """Record the VmHWM of every process in the tree (workers can be recycled, so keep the max)."""
        if self.process is None:
            return
        workers = set(self.worker_pids())
        master = self.master_pid()
        for pid in [self.process.pid] + descendants(self.process.pid):
            hwm = status_kb(pid, "VmHWM")
            if hwm is None:
                continue
            self.peak_kb[pid] = max(hwm, self.peak_kb.get(pid, 0))
            self.roles[pid] = "worker" if pid in workers else ("master" if pid == master else "other")

    def memory_report(self) -> dict[str, object]:
        workers = {pid: kb for pid, kb in self.peak_kb.items() if self.roles.get(pid) == "worker"}
        return {
            "worker_peak_rss_mb": {str(pid): round(kb / 1024.0, 1) for pid, kb in workers.items()},
            "max_worker_peak_rss_mb": round(max(workers.values()) / 1024.0, 1) if workers else None,
            "worker_pids_seen": len(workers),
            "master_peak_rss_mb": {str(pid): round(kb / 1024.0, 1) for pid, kb in self.peak_kb.items()
                                   if self.roles.get(pid) == "master"},
        }

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size if self.log_path else 0
        except OSError:
            return 0

    def hook_timings(self, start: int, end: int) -> dict[str, list[float]]:
        """The service's own `timing_ms` (gather / evaluate / total) of the hook calls logged between two
        log offsets: what the app spent, as opposed to what the client waited (HTTP, queueing)."""
        out: dict[str, list[float]] = {}
        if not self.log_path:
            return out
        try:
            with open(self.log_path, "rb") as f:
                f.seek(start)
                chunk = f.read(max(0, end - start))
        except OSError:
            return out
        for raw in chunk.splitlines():
            if b'"hook.call"' not in raw or not raw.startswith(b"{"):
                continue
            try:
                timing = json.loads(raw).get("timing_ms") or {}
            except ValueError:
                continue
            for key, value in timing.items():
                if isinstance(value, (int, float)):
                    out.setdefault(key, []).append(float(value))
        return out

    def lifecycle_events(self) -> list[str]:
        """Gunicorn worker lifecycle lines (boots, timeouts, crashes): a recycled worker shows up here."""
        marks = ("Booting worker", "WORKER TIMEOUT", "exited with code", "Worker exiting", "was sent SIG")
        try:
            text = self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return []
        return [line[:200] for line in text.splitlines() if any(m in line for m in marks)]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:]) if self.log_path else ""
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to our PID (gunicorn stops its workers), then SIGKILL any leftover descendant by PID."""
        if self.process is not None:
            tree = [(pid, cmdline(pid)) for pid in descendants(self.process.pid)] if self.process.poll() is None else []
            stop_process(self.process, grace=STOP_GRACE_S)
            for pid, line in tree:
                if cmdline(pid) == line and line:      # still the very process we started (no PID reuse)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            self.process = None
        self._remove_work_dir()
