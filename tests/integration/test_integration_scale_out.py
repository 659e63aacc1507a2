"""Two `her2-cds serve` instances sharing one PostgreSQL, behind nginx with the shipped example config.

The shape the service is run in: identical instances behind a load balancer, one database for the
state they share (JWT replay store, issued cards, feedback). Auth is required (the test is the CDS
client: ES384 JWTs, `aud` = HER2CDS_PUBLIC_BASE_URL + path, the public URL being nginx's TLS port).
Hook calls carry their prefetch and no `fhirServer`, so no FHIR-server allowlist is involved.
"""
from __future__ import annotations

import datetime as dt
import http.client
import itertools
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from cds_service.cli import main as cli_main
from cds_service.storage import Database, feedback_table, issued_cards_table
from hook_calls import hook_body
from sandbox.runner import start_service
from sandbox.sekmet import free_port, stop_process, wait_for_http
from support.nginx_server import NginxProxy, NginxUnavailable
from support.postgres_server import in_ci

pytestmark = pytest.mark.integration

ISSUER = "https://ehr.scale-out.test"
KID = "scale-out-es384"
PATIENT = "demo-1-pat"
METRICS_TOKEN = "scale-out-metrics"


@dataclass
class Client:
    """A CDS client that signs a fresh JWT for every call."""

    public_base: str
    private_key: Any

    def token(self, path: str) -> str:
        now = int(time.time())
        return jwt.encode({"iss": ISSUER, "aud": self.public_base + path, "iat": now, "exp": now + 300,
                           "jti": str(uuid.uuid4())}, self.private_key, algorithm="ES384",
                          headers={"kid": KID, "typ": "JWT"})


@dataclass
class Cluster:
    work: Path
    db_url: str
    trust_file: Path
    ports: list[int] = field(default_factory=lambda: [free_port(), free_port()])
    proxy_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen | None] = field(default_factory=lambda: [None, None])
    proxy: NginxProxy | None = None

    @property
    def public_base(self) -> str:
        return f"https://127.0.0.1:{self.proxy_port}"

    def direct(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}"

    def start_instance(self, index: int) -> None:
        env = {"HER2CDS_AUTH_MODE": "required", "HER2CDS_TRUSTED_ISSUERS_FILE": str(self.trust_file),
               "HER2CDS_PUBLIC_BASE_URL": self.public_base, "HER2CDS_FEEDBACK_DB_URL": self.db_url,
               "HER2CDS_METRICS_TOKEN": METRICS_TOKEN, "HER2CDS_LOG_LEVEL": "WARNING",
               "PROMETHEUS_MULTIPROC_DIR": str(self.work / f"metrics-{index}")}   # wiped by serve at start
        log = open(self.work / f"instance-{index}.log", "ab")
        self.processes[index] = start_service(self.ports[index], self.work, env=env, log=log)
        log.close()

    def wait_ready(self, index: int) -> None:
        if not wait_for_http(self.direct(index) + "/readyz", 90, self.processes[index]):
            log = (self.work / f"instance-{index}.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"instance {index} did not become ready; log:\n{log}")

    def ensure_running(self) -> None:
        dead = [i for i, p in enumerate(self.processes) if p is None or p.poll() is not None]
        for i in dead:
            self.start_instance(i)
        for i in dead:
            self.wait_ready(i)

    def stop(self) -> None:
        for process in self.processes:
            if process is not None:
                stop_process(process, grace=15)
        if self.proxy is not None:
            self.proxy.stop()


def _signing_key(folder: Path) -> tuple[Any, Path]:
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = json.loads(jwt.get_algorithm_by_name("ES384").to_jwk(key.public_key()))
    (folder / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": KID, "use": "sig", "alg": "ES384"}]}))
    trust = folder / "trusted-issuers.json"
    trust.write_text(json.dumps([{"iss": ISSUER, "jwks_file": str(folder / "jwks.json")}]))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return pem, trust


@pytest.fixture(scope="module")
def cluster(postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Client]]:
    work = tmp_path_factory.mktemp("scale-out")
    pem, trust = _signing_key(work)
    cluster = Cluster(work=work, db_url=postgres.new_database("scaleout"), trust_file=trust)
    try:
        try:
            cluster.proxy = NginxProxy(cluster.ports, cluster.proxy_port).start()
        except NginxUnavailable as exc:   # pragma: no cover - depends on the machine
            if in_ci():
                pytest.fail(f"nginx is required in CI: {exc}")
            pytest.skip(str(exc))
        cluster.ensure_running()
        yield cluster, Client(cluster.public_base, pem)
    finally:
        cluster.stop()


@pytest.fixture
def running(cluster) -> tuple[Cluster, Client]:
    """The cluster with both instances up (a previous test may have killed one)."""
    cluster[0].ensure_running()
    return cluster


@pytest.fixture(scope="module")
def prefetched_call(fhir_server, cluster) -> tuple[str, dict[str, Any]]:
    """(service id, body) of a patient-view call carrying its prefetch and no fhirServer."""
    discovery = requests.get(cluster[0].direct(0) + "/cds-services", timeout=10,
                             headers={"Authorization": "Bearer " + cluster[1].token("/cds-services")}).json()
    service = next(s for s in discovery["services"] if s["hook"] == "patient-view")
    body = hook_body(service, fhir_server, PATIENT, [], "prefetch")
    body.pop("fhirServer")
    return service["id"], body


def _fresh(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "hookInstance": str(uuid.uuid4())}


def _post(client: Client, base: str, path: str, body: Any, verify: Any = True, **kwargs: Any) -> requests.Response:
    return requests.post(base + path, json=body, timeout=30, verify=verify,
                         headers={"Authorization": "Bearer " + client.token(path)}, **kwargs)


def _db_rows(db_url: str, table: Any, column: Any, values: list[str]) -> set[str]:
    db = Database(db_url)
    try:
        with db.begin() as conn:
            return {r[0] for r in conn.execute(select(column).where(column.in_(values)))}
    finally:
        db.dispose()


def _report_total(db_url: str, capsys: pytest.CaptureFixture[str]) -> int:
    """The item count `her2-cds feedback-report` prints (run in-process: a subprocess costs seconds)."""
    capsys.readouterr()
    assert cli_main(["feedback-report", "--db", db_url]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Total:"))
    return int(line.split()[1])


def test_a_jwt_accepted_by_one_instance_is_refused_as_a_replay_by_the_other(running, prefetched_call):
    cluster, client = running
    service_id, body = prefetched_call
    path = f"/cds-services/{service_id}"
    token = client.token(path)
    first = requests.post(cluster.direct(0) + path, json=_fresh(body), timeout=30,
                          headers={"Authorization": f"Bearer {token}"})
    again = requests.post(cluster.direct(1) + path, json=_fresh(body), timeout=30,
                          headers={"Authorization": f"Bearer {token}"})
    assert first.status_code == 200, first.text
    assert again.status_code == 401
    assert again.json()["resourceType"] == "OperationOutcome"


def test_the_proxy_serves_hook_calls_over_tls_with_the_public_base_url_as_audience(running, prefetched_call):
    cluster, client = running
    service_id, body = prefetched_call
    response = _post(client, cluster.public_base, f"/cds-services/{service_id}", _fresh(body),
                     verify=str(cluster.proxy.cert))
    assert response.status_code == 200, response.text
    assert response.json()["cards"]


def test_feedback_sent_through_either_instance_is_reported_once(running, prefetched_call, capsys):
    cluster, client = running
    service_id, body = prefetched_call
    uuids = _issued_cards(cluster, client, service_id, body)
    before = _report_total(cluster.db_url, capsys)
    item = {"card": uuids[0], "outcome": "overridden", "outcomeTimestamp": "2026-12-01T10:05:31Z",
            "overrideReason": {"userComment": "scale-out test"}}
    path = f"/cds-services/{service_id}/feedback"
    answers = [_post(client, cluster.direct(0), path, {"feedback": [item]}),
               _post(client, cluster.direct(1), path, {"feedback": [item]}),
               _post(client, cluster.public_base, path, {"feedback": [item]}, verify=str(cluster.proxy.cert))]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert _report_total(cluster.db_url, capsys) == before + 1


def _issued_cards(cluster: Cluster, client: Client, service_id: str, body: dict[str, Any]) -> list[str]:
    """Card uuids issued to our client through nginx and already in the shared card log (feedback may
    only name cards issued to the same client)."""
    cards = _post(client, cluster.public_base, f"/cds-services/{service_id}", _fresh(body),
                  verify=str(cluster.proxy.cert)).json()["cards"]
    uuids = [c["uuid"] for c in cards]
    deadline = time.monotonic() + 10     # the issued-card log is written by a background thread
    while _db_rows(cluster.db_url, issued_cards_table, issued_cards_table.c.card_uuid, uuids) != set(uuids):
        assert time.monotonic() < deadline, "issued cards never reached the shared database"
        time.sleep(0.2)
    return uuids


_ITEM_NUMBERS = itertools.count()
_EPOCH = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.timezone.utc)


def _distinct_item(card: str) -> dict[str, Any]:
    """A feedback item of its own (a distinct outcomeTimestamp makes a distinct item)."""
    at = _EPOCH + dt.timedelta(milliseconds=next(_ITEM_NUMBERS))
    return {"card": card, "outcome": "overridden", "outcomeTimestamp": at.isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")}


def _feedback_load(cluster: Cluster, client: Client, service_id: str, cards: list[str], stop: threading.Event,
                   acked: list[str], failed: list[str], timeline: list[tuple[float, bool]]) -> None:
    """Send feedback batches through nginx until `stop`; record which items were acknowledged (200)."""
    path = f"/cds-services/{service_id}/feedback"
    session = requests.Session()
    while not stop.is_set():
        items = [_distinct_item(cards[n % len(cards)]) for n in range(3)]
        try:
            response = session.post(cluster.public_base + path, json={"feedback": items}, timeout=20,
                                    verify=str(cluster.proxy.cert),
                                    headers={"Authorization": "Bearer " + client.token(path)})
            ok = response.status_code == 200
            if not ok:
                assert response.json()["resourceType"] == "OperationOutcome"
        except requests.RequestException:
            ok = False
        (acked if ok else failed).extend(i["outcomeTimestamp"] for i in items)
        timeline.append((time.monotonic(), ok))


def test_sigkill_of_one_instance_under_load_loses_no_acknowledged_feedback(running, prefetched_call):
    cluster, client = running
    service_id, body = prefetched_call
    cards = _issued_cards(cluster, client, service_id, body)
    stop, acked, failed, timeline = threading.Event(), [], [], []
    threads = [threading.Thread(target=_feedback_load, args=(cluster, client, service_id, cards, stop, acked, failed,
                                                             timeline)) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    victim = cluster.processes[0]
    os.killpg(victim.pid, signal.SIGKILL)            # master and workers, no chance to clean up
    killed_at = time.monotonic()
    victim.wait(timeout=10)
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked) > 30, f"too little load got through: {len(acked)} acknowledged"
    stored = _db_rows(cluster.db_url, feedback_table, feedback_table.c.outcome_timestamp, acked)
    assert stored == set(acked), f"{len(set(acked) - stored)} acknowledged item(s) lost"
    assert len(failed) <= 4 * 3, f"more calls failed than were in flight at the kill: {len(failed) // 3}"
    after = [ok for at, ok in timeline if at > killed_at + 0.5]
    assert after and all(after), "calls after the kill must all reach the surviving instance"


def _raw_request(port: int, path: str, token: str, body: bytes) -> socket.socket:
    """Open a connection to an instance and send the headers and half the body (the call is in flight)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    sock.sendall(head.encode() + body[: len(body) // 2])
    return sock


def _finish(sock: socket.socket, body: bytes) -> tuple[int, dict[str, Any]]:
    sock.sendall(body[len(body) // 2:])
    response = http.client.HTTPResponse(sock)
    response.begin()
    payload = json.loads(response.read())
    sock.close()
    return response.status, payload


def test_sigterm_drains_in_flight_calls_and_flushes_the_issued_card_writer(running, prefetched_call):
    cluster, client = running
    service_id, body = prefetched_call
    path = f"/cds-services/{service_id}"
    bodies = [json.dumps(_fresh(body)).encode() for _ in range(2)]     # one per worker
    sockets = [_raw_request(cluster.ports[1], path, client.token(path), b) for b in bodies]
    time.sleep(1.0)                                                   # both workers are reading a body
    cluster.processes[1].send_signal(signal.SIGTERM)
    time.sleep(1.0)
    answers = [_finish(s, b) for s, b in zip(sockets, bodies)]
    assert [status for status, _ in answers] == [200, 200]
    assert cluster.processes[1].wait(timeout=20) == 0
    uuids = [c["uuid"] for _, payload in answers for c in payload["cards"]]
    assert uuids
    written = _db_rows(cluster.db_url, issued_cards_table, issued_cards_table.c.card_uuid, uuids)
    assert written == set(uuids), "the issued-card writer was not flushed before the instance exited"


def test_slow_uploads_wait_in_nginx_not_in_a_worker(running, prefetched_call):
    cluster, client = running
    service_id, body = prefetched_call
    path = f"/cds-services/{service_id}"
    context = ssl.create_default_context(cafile=str(cluster.proxy.cert))
    stalled = []
    for _ in range(6):          # more than the 4 workers of both instances together
        raw = socket.create_connection(("127.0.0.1", cluster.proxy_port), timeout=10)
        tls = context.wrap_socket(raw, server_hostname="127.0.0.1")
        tls.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     f"Content-Length: 100000\r\n\r\n{{").encode())
        stalled.append(tls)
    try:
        started = time.monotonic()
        response = _post(client, cluster.public_base, path, _fresh(body), verify=str(cluster.proxy.cert))
        assert response.status_code == 200
        assert time.monotonic() - started < 5
    finally:
        for tls in stalled:
            tls.close()


def test_the_proxy_does_not_expose_metrics_but_each_instance_does(running, prefetched_call):
    cluster, client = running
    service_id, body = prefetched_call
    assert _post(client, cluster.direct(0), f"/cds-services/{service_id}", _fresh(body)).status_code == 200
    proxied = requests.get(cluster.public_base + "/metrics", timeout=10, verify=str(cluster.proxy.cert),
                           headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert proxied.status_code == 404 and proxied.json()["resourceType"] == "OperationOutcome"
    direct = requests.get(cluster.direct(0) + "/metrics", timeout=10,
                          headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert direct.status_code == 200 and "her2cds_hook_calls_total" in direct.text
