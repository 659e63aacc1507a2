"""A throw-away local FHIR R4 server (sekmet-fhir) for the demo, the integration tests and CI.

Why sekmet: it is the FHIR R4 server that installs from PyPI alone (see the test-server notes); it
pins its own fastapi/pydantic/fhir.resources, so it lives in its own venv, never in ours. Every
server gets a fresh data directory, binds 127.0.0.1 on a free port, has the order simulator off
(it would otherwise "fulfil" MedicationRequests = writes we did not make), and is stopped by PID.

    with SekmetServer() as fhir:
        print(fhir.base_url)          # http://127.0.0.1:<port>/fhir

`python -m sandbox.sekmet --ensure` installs the venv ahead of time (`./dev`, CI).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import venv as venv_module
from pathlib import Path
from types import TracebackType
from typing import Self

SEKMET_VERSION = "0.1.1"
VENV_ENV = "HER2CDS_SEKMET_VENV"
_INSTALL_TIMEOUT_SECONDS = 600
_READY_TIMEOUT_SECONDS = 60.0
_STOP_GRACE_SECONDS = 5.0

log = logging.getLogger(__name__)


class SekmetError(RuntimeError):
    """The FHIR test server could not be installed or started (message says what to do)."""


def default_venv_dir() -> Path:
    """`$HER2CDS_SEKMET_VENV`, else `~/.cache/her2-cds/sekmet-<version>`."""
    override = os.environ.get(VENV_ENV)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "her2-cds" / f"sekmet-{SEKMET_VERSION}"


def sekmet_executable(venv_dir: Path) -> Path:
    return venv_dir / "bin" / "sekmet"


def ensure_sekmet(venv_dir: Path | None = None) -> Path:
    """Return a venv holding sekmet-fhir==0.1.1, creating it when missing (needs PyPI once)."""
    venv_dir = Path(venv_dir) if venv_dir is not None else default_venv_dir()
    if sekmet_executable(venv_dir).exists():
        return venv_dir
    log.warning("installing sekmet-fhir==%s into %s (one-off, about 15 s)", SEKMET_VERSION, venv_dir)
    venv_dir.parent.mkdir(parents=True, exist_ok=True)
    venv_module.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    pip = [str(venv_dir / "bin" / "python"), "-m", "pip", "install", "-q", f"sekmet-fhir=={SEKMET_VERSION}"]
    try:
        subprocess.run(pip, check=True, timeout=_INSTALL_TIMEOUT_SECONDS, stdout=sys.stderr)  # stdout is the venv path only
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(venv_dir, ignore_errors=True)   # never leave a half-built venv that looks ready
        raise SekmetError(f"could not install sekmet-fhir=={SEKMET_VERSION} into {venv_dir}: {exc}. "
                          f"Check PyPI access, or point {VENV_ENV} at a venv that has it.") from exc
    if not sekmet_executable(venv_dir).exists():
        raise SekmetError(f"{venv_dir} has no bin/sekmet after installing sekmet-fhir")
    return venv_dir


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago on `host` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> bool:
    """Poll `url` until it answers 200, the process dies, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def stop_process(process: subprocess.Popen, grace: float = _STOP_GRACE_SECONDS) -> None:
    """Terminate by PID, then kill if it has not exited within `grace` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)


class ProcessInWorkDir:
    """A server started as a child in a temporary work dir and stopped by PID: `with` starts it and always
    stops it, and stopping removes the work dir. Subclasses implement `start` and `stop` (which calls
    `_remove_work_dir`); the bench's `her2-cds serve` wrapper is one too."""

    work_dir: Path | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def _remove_work_dir(self) -> None:
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class SekmetServer(ProcessInWorkDir):
    """Context manager: a fresh sekmet-fhir on 127.0.0.1, stopped by PID on exit."""

    def __init__(self, port: int | None = None, venv: Path | None = None, *, keep_log: Path | None = None,
                 ready_timeout: float = _READY_TIMEOUT_SECONDS, extra_config: str = "") -> None:
        self.port = port or free_port()
        self.extra_config = extra_config      # more sekmet.yaml, e.g. `server_auth:` to make /fhir require tokens
        self.venv = Path(venv) if venv is not None else None
        self.keep_log = keep_log
        self.ready_timeout = ready_timeout
        self.work_dir: Path | None = None
        self.process: subprocess.Popen | None = None
        self._log_file = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _write_config(self, work: Path) -> Path:
        config = work / "sekmet.yaml"
        config.write_text(
            f"base_url: {self.base_url}\n"
            "host: 127.0.0.1\n"
            f"port: {self.port}\n"
            f"data_dir: {work / 'data'}\n"
            f"own_private_key_path: {work / 'keys' / 'sekmet_private.pem'}\n"
            "simulator: {enabled: false}\n"
            "validation: {inbound: warn}\n"
            "log_inbound: false\n" + self.extra_config,
            encoding="utf-8")
        return config

    def start(self) -> "SekmetServer":
        venv_dir = ensure_sekmet(self.venv)
        self.work_dir = Path(tempfile.mkdtemp(prefix="her2cds-sekmet-"))
        config = self._write_config(self.work_dir)
        log_path = self.keep_log or (self.work_dir / "sekmet.log")
        self._log_file = open(log_path, "wb")
        env = {**os.environ, "SEKMET_CONFIG": str(config)}
        # cwd = the work dir: sekmet writes relative files (keys, console state) where it runs.
        self.process = subprocess.Popen(
            [str(sekmet_executable(venv_dir)), "serve", "--config", str(config),
             "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.work_dir, env=env, stdout=self._log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)  # own session: a terminal Ctrl-C reaches us, we stop it
        if not wait_for_http(f"{self.base_url}/metadata", self.ready_timeout, self.process):
            tail = self._log_tail()
            self.stop()
            raise SekmetError(f"sekmet-fhir did not become ready at {self.base_url}/metadata; log tail:\n{tail}")
        log.info("sekmet-fhir %s ready at %s (pid %s)", SEKMET_VERSION, self.base_url, self.process.pid)
        return self

    def _log_tail(self, lines: int = 30) -> str:
        path = self.keep_log or (self.work_dir / "sekmet.log" if self.work_dir else None)
        try:
            return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:]) if path else ""
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self._remove_work_dir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.sekmet",
                                     description="Install (and optionally run) the local sekmet-fhir test server.")
    parser.add_argument("--ensure", action="store_true", help="create the sekmet venv if missing and print its path")
    parser.add_argument("--venv", type=Path, default=None, help=f"venv directory (default ${VENV_ENV} or ~/.cache/her2-cds)")
    parser.add_argument("--serve", action="store_true", help="run a fresh server until Ctrl-C")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        if args.ensure or not args.serve:
            print(ensure_sekmet(args.venv))
        if args.serve:
            with SekmetServer(port=args.port, venv=args.venv) as server:
                print(f"sekmet-fhir ready at {server.base_url} (pid {server.pid}); Ctrl-C stops it", flush=True)
                try:
                    while server.process and server.process.poll() is None:
                        time.sleep(0.5)
                except KeyboardInterrupt:
                    pass
    except SekmetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
