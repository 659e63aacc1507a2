"""A throw-away PostgreSQL server for the tests: Debian's `initdb` / `pg_ctl`, a temporary data
directory, loopback TCP only, stopped (and deleted) afterwards.

Why not a container or a mock: the storage code relies on PostgreSQL behaviour (ON CONFLICT,
concurrent inserts from several processes, the replay store's unique key) that only the real server
shows. PostgreSQL refuses to run as root, and CI runs as root, so there the server runs as `nobody`
(data directory owned by it); as any other user it runs as that user.

`HER2CDS_TEST_POSTGRES_URL` points the tests at an existing server instead (its tables are dropped).
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UNPRIVILEGED_USER = "nobody"
SUPERUSER = "postgres"          # the database role initdb creates (trust auth on loopback only)


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries (or no psycopg) on this machine; the message says what to install."""


def in_ci() -> bool:
    """CI sets CI=true; there a missing real part is a failure, never a skip."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def find_bindir() -> Path:
    """The newest Debian PostgreSQL (`/usr/lib/postgresql/<major>/bin`), else `initdb` on PATH."""
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if candidates:
        newest = max(candidates, key=lambda p: int(re.search(r"/postgresql/(\d+)/", p).group(1)))
        return Path(newest).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian "
                              "package `postgresql` (.ci/run does), or set HER2CDS_TEST_POSTGRES_URL")


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_as_unprivileged() -> dict[str, Any]:
    """`subprocess` arguments that drop root to `nobody` (empty when not root)."""
    if os.geteuid() != 0:
        return {}
    import grp
    import pwd
    user = pwd.getpwnam(UNPRIVILEGED_USER)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [],
            "cwd": "/"}   # the server must not inherit a cwd it cannot enter


def give_to_unprivileged(path: Path) -> None:
    """chown `path` (recursively) to the user the servers run as, when we are root."""
    if os.geteuid() != 0:
        return
    import pwd
    user = pwd.getpwnam(UNPRIVILEGED_USER)
    for root, dirs, files in os.walk(path):
        os.chown(root, user.pw_uid, user.pw_gid)
        for name in files:
            os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid)


@dataclass
class PostgresServer:
    """initdb + pg_ctl start on a free loopback port; `url(db)` for SQLAlchemy; `stop()` removes it all."""

    port: int = field(default_factory=_free_port)
    bindir: Path | None = None
    work: Path | None = None

    @property
    def data_dir(self) -> Path:
        assert self.work is not None
        return self.work / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
        return subprocess.run([str(self.bindir / args[0]), *args[1:]], env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, **run_as_unprivileged())

    def start(self) -> PostgresServer:
        self.bindir = self.bindir or find_bindir()
        # Not under pytest's tmp dir: that is private to root (0700) and `nobody` could not enter it.
        self.work = Path(tempfile.mkdtemp(prefix="her2cds-pg-"))
        self.work.chmod(0o755)
        give_to_unprivileged(self.work)
        done = self._run("initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                         "--locale=C", "--no-sync", "--no-instructions")
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr[-2000:]}")
        options = " ".join([
            "-c listen_addresses=127.0.0.1", f"-c port={self.port}", f"-c unix_socket_directories={self.work}",
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",   # test speed only
            "-c max_connections=200", "-c shared_buffers=32MB",
        ])
        done = self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.work / "server.log"), "-o", options,
                         "-w", "-t", "60", "start")
        if done.returncode != 0:
            log = (self.work / "server.log").read_text(errors="replace")[-2000:] if (self.work / "server.log").exists() else ""
            self.stop()
            raise RuntimeError(f"pg_ctl start failed ({done.returncode}): {done.stderr[-1000:]}\n{log}")
        return self

    def stop(self) -> None:
        if self.work is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop")
        shutil.rmtree(self.work, ignore_errors=True)
        self.work = None


@dataclass
class PostgresForTests:
    """What the tests get: a server (ours or the one in HER2CDS_TEST_POSTGRES_URL) that hands out databases."""

    server: PostgresServer | None = None
    external_url: str | None = None

    def new_database(self, prefix: str = "her2test") -> str:
        """A URL to an empty database of its own (on an external server: its one database, tables dropped)."""
        if self.external_url:
            from cds_service.storage import Database, metadata
            db = Database(self.external_url)
            metadata.drop_all(db.engine)
            db.dispose()
            return self.external_url
        import psycopg
        assert self.server is not None
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.server.port} user={SUPERUSER} dbname=postgres",
                             autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.server.url(name)


def start_for_tests() -> PostgresForTests:
    """The external server when HER2CDS_TEST_POSTGRES_URL is set, else a fresh local one.

    Raises PostgresUnavailable when neither can be had (the caller skips locally, fails in CI)."""
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise PostgresUnavailable("psycopg is not installed (pip install -e '.[test]')") from exc
    external = os.environ.get("HER2CDS_TEST_POSTGRES_URL")
    if external:
        return PostgresForTests(external_url=external)
    started = time.monotonic()
    server = PostgresServer().start()
    print(f"# PostgreSQL {server.bindir.parent.name} on 127.0.0.1:{server.port} "
          f"(started in {time.monotonic() - started:.1f} s)")
    return PostgresForTests(server=server)
