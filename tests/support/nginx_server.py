"""nginx (Debian) in front of the test's service instances, with the shipped example configuration.

The site configuration is `deploy/nginx/her2-cds.conf` itself, with only its CHANGE values swapped
(upstream ports, listen address, certificate paths): the test proves the file operators copy. The
main configuration around it is written here (pid file, logs and temp paths in a temporary folder,
no `user` switch), so nginx runs unprivileged: as `nobody` when the tests run as root.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Sequence

from support.postgres_server import give_to_unprivileged, run_as_unprivileged

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "her2-cds.conf"
EXAMPLE_UPSTREAMS = ("server 127.0.0.1:8081 ", "server 127.0.0.1:8082 ")
EXAMPLE_LISTEN = "listen 443 ssl;"
EXAMPLE_CERT = "/etc/ssl/her2-cds/fullchain.pem"
EXAMPLE_KEY = "/etc/ssl/her2-cds/privkey.pem"


class NginxUnavailable(RuntimeError):
    """No nginx binary on this machine (the caller skips locally, fails in CI)."""


def find_nginx() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not path:
        raise NginxUnavailable("nginx not found: install the Debian package `nginx` (.ci/run does)")
    return path


def render_site(upstream_ports: Sequence[int], listen_port: int, cert: Path, key: Path) -> str:
    """The example site with the test's values; fails loudly if the example no longer has the lines we swap."""
    text = EXAMPLE.read_text(encoding="utf-8")
    swaps = [(EXAMPLE_LISTEN, f"listen 127.0.0.1:{listen_port} ssl;"), (EXAMPLE_CERT, str(cert)),
             (EXAMPLE_KEY, str(key))]
    swaps += [(line, f"server 127.0.0.1:{port} ") for line, port in zip(EXAMPLE_UPSTREAMS, upstream_ports)]
    for old, new in swaps:
        if text.count(old) != 1:
            raise AssertionError(f"{EXAMPLE} should hold {old!r} exactly once (the test swaps it)")
        text = text.replace(old, new)
    return text


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1 (the test's client trusts exactly this one)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class NginxProxy:
    """`nginx -g 'daemon off;'` on 127.0.0.1:`port` (TLS) balancing over `upstream_ports`."""

    def __init__(self, upstream_ports: Sequence[int], port: int) -> None:
        self.upstream_ports = list(upstream_ports)
        self.port = port
        self.work = Path(tempfile.mkdtemp(prefix="her2cds-nginx-"))
        self.process: subprocess.Popen | None = None
        self.cert: Path | None = None

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        self.cert, key = self_signed_certificate(self.work)
        (self.work / "site.conf").write_text(render_site(self.upstream_ports, self.port, self.cert, key))
        w = self.work
        main = f"""
daemon off;
master_process on;
worker_processes 1;
pid {w}/nginx.pid;
error_log {w}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {w}/access.log;
    client_body_temp_path {w}/client_body;
    proxy_temp_path {w}/proxy;
    fastcgi_temp_path {w}/fastcgi;
    uwsgi_temp_path {w}/uwsgi;
    scgi_temp_path {w}/scgi;
    include {w}/site.conf;
}}
"""
        path = w / "nginx.conf"
        path.write_text(main)
        return path

    def start(self) -> NginxProxy:
        binary = find_nginx()
        config = self._write_config()
        self.work.chmod(0o755)
        give_to_unprivileged(self.work)
        check = subprocess.run([binary, "-t", "-p", str(self.work), "-c", str(config), "-e", str(self.work / "error.log")],
                               capture_output=True, text=True, timeout=30, **run_as_unprivileged())
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t failed: {check.stderr[-2000:]}")
        self.process = subprocess.Popen([binary, "-p", str(self.work), "-c", str(config), "-e",
                                         str(self.work / "error.log")], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True, **run_as_unprivileged())
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.error_log()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start listening")

    def error_log(self) -> str:
        path = self.work / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()            # SIGTERM: fast shutdown of master and workers
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        shutil.rmtree(self.work, ignore_errors=True)
