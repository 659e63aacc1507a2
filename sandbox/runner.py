"""`her2-cds demo`: a local FHIR server with the demo patients, the service, and what to try next.

Everything it starts (sekmet-fhir, `her2-cds serve`) runs in its own session and is stopped by PID
on Ctrl-C or SIGTERM, so a demo never leaves servers behind. Authentication is OFF in the demo (and
said so loudly): it binds 127.0.0.1 only.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, Mapping, Sequence
from urllib.parse import quote, urlencode

from cds_service.relative_dates import load_json
from sandbox import loader
from sandbox.sekmet import SekmetError, SekmetServer, free_port, stop_process, wait_for_http

SANDBOX_UI = "https://sandbox.cds-hooks.org/"
PATIENT_VIEW_PATIENT = "demo-1-pat"
ORDER_SELECT_DRAFT = "demo-5-doxorubicin.json"    # anthracycline 33 days after trastuzumab -> critical card
ORDER_SIGN_DRAFT = "demo-3-tdxd.json"             # T-DXd drafted for a patient with ILD -> critical card
_SERVICE_READY_SECONDS = 60.0


class _Stop(Exception):
    """Raised from the SIGTERM handler so the `finally` blocks stop the children."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Stop()


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def sandbox_url(fhir_base: str, patient_id: str, discovery_url: str) -> str:
    """The public CDS Hooks sandbox, pointed at our FHIR server, patient and discovery endpoint."""
    return SANDBOX_UI + "?" + urlencode({"fhirServiceUrl": fhir_base, "patientId": patient_id,
                                         "serviceDiscoveryURL": discovery_url}, quote_via=quote, safe="")


def app_url(service_base: str, fhir_base: str, patient_id: str) -> str:
    """The explanation view in open-server mode (demo: auth off, the demo FHIR server allowed)."""
    return f"{service_base}/app?" + urlencode({"iss": fhir_base, "patient": patient_id}, quote_via=quote, safe="")


def hook_request(hook: str, fhir_base: str, patient_id: str, drafts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A CDS Hooks 2.0 request in fetch mode (no prefetch: the service reads `fhirServer` itself)."""
    context: dict[str, Any] = {"userId": "Practitioner/demo-user", "patientId": patient_id}
    if hook != "patient-view":
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": d} for d in drafts or []]}
        if hook == "order-select":
            context["selections"] = [f"MedicationRequest/{d['id']}" for d in drafts or []]
    return {"hook": hook, "hookInstance": str(uuid.uuid4()), "fhirServer": fhir_base, "context": context}


def curl_command(url: str, body: dict[str, Any] | None = None, body_file: Path | None = None) -> str:
    parts = ["curl", "-s", "-X", "POST", "-H", "Content-Type: application/json"]
    if body_file is not None:
        parts += ["--data", f"@{body_file}"]
    else:
        parts += ["--data", json.dumps(body, separators=(",", ":"))]
    return " ".join(shlex.quote(p) for p in parts + [url])


def discover(base: str, timeout: float = 5.0) -> dict[str, str]:
    """hook -> service URL, from the running service's discovery document."""
    with urllib.request.urlopen(f"{base}/cds-services", timeout=timeout) as response:
        services = json.load(response).get("services", [])
    return {s["hook"]: f"{base}/cds-services/{s['id']}" for s in services if "hook" in s and "id" in s}


def _shown(path: Path) -> str:
    """Relative to the working directory when inside it (what a user in the checkout types), else absolute."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


@dataclass
class DemoInstructions:
    service_base: str
    fhir_base: str
    services: dict[str, str]
    request_dir: Path

    def text(self) -> str:
        drafts = loader.SANDBOX_DIR / "drafts"
        lines = [
            "",
            "=" * 78,
            "her2-cds demo is running (decision support, not a substitute for clinical judgment)",
            f"  FHIR R4 server : {self.fhir_base}   (demo patients: {', '.join(loader.patient_ids())})",
            f"  CDS service    : {self.service_base}/cds-services   (authentication OFF)",
            "",
            "Discovery:",
            f"  curl -s {self.service_base}/cds-services",
        ]
        if "patient-view" in self.services:
            body = hook_request("patient-view", self.fhir_base, PATIENT_VIEW_PATIENT)
            lines += ["", f"patient-view for {PATIENT_VIEW_PATIENT} (progressed after TCH -> T-DXd):",
                      "  " + curl_command(self.services["patient-view"], body)]
        for hook, draft_file, what in (("order-select", ORDER_SELECT_DRAFT, "doxorubicin 33 days after trastuzumab"),
                                       ("order-sign", ORDER_SIGN_DRAFT, "T-DXd drafted with ILD on the problem list")):
            if hook not in self.services:
                continue
            bundle = load_json(drafts / draft_file)
            orders = [e["resource"] for e in bundle["entry"]]
            patient = orders[0]["subject"]["reference"].split("/", 1)[1]
            path = self.request_dir / f"{hook}.json"
            path.write_text(json.dumps(hook_request(hook, self.fhir_base, patient, orders), indent=2), encoding="utf-8")
            lines += ["", f"{hook} for {patient} ({what}; request body in {path}):",
                      "  " + curl_command(self.services[hook], body_file=path)]
        lines += ["", f"Explanation view (therapy timeline and reasoning) for {PATIENT_VIEW_PATIENT}, in a browser:",
                  "  " + app_url(self.service_base, self.fhir_base, PATIENT_VIEW_PATIENT)]
        lines += ["",
                  "Offline, no servers needed:",
                  f"  her2-cds evaluate --bundle {_shown(loader.PATIENTS_DIR / 'demo-4-brain-metastases.json')} --format markdown",
                  "",
                  "CDS Hooks sandbox (browser on this machine; see sandbox/README.md for mixed content / CORS):",
                  "  " + sandbox_url(self.fhir_base, PATIENT_VIEW_PATIENT, f"{self.service_base}/cds-services"),
                  "",
                  "Ctrl-C stops the service and the FHIR server.",
                  "=" * 78, ""]
        return "\n".join(lines)


def start_service(port: int, work: Path, *, fhir_servers: Sequence[str] = (), env: Mapping[str, str] | None = None,
                  log: IO[bytes] | None = None) -> subprocess.Popen:
    """`her2-cds serve` on 127.0.0.1:`port` as a child in its own session (so it is stopped by PID with
    its workers), auth off, CORS *, feedback DB in `work`, the FHIR bases callers may name
    (`fhir_servers`, added to any HER2CDS_FHIR_SERVERS already set), and tokens allowed to http://
    FHIR servers (a local sekmet has no TLS; said loudly at start-up); `env` adds or overrides
    settings. Used by the demo and by the integration tests' live-service fixture."""
    allowed = [s for s in os.environ.get("HER2CDS_FHIR_SERVERS", "").split(",") if s.strip()] + list(fhir_servers)
    child_env = {**os.environ,
                 "HER2CDS_AUTH_MODE": "off",
                 "HER2CDS_FHIR_SERVERS": ",".join(allowed),
                 "HER2CDS_ALLOW_INSECURE_FHIR": "1",
                 "HER2CDS_CORS_ORIGINS": "*",
                 "HER2CDS_FEEDBACK_DB_URL": f"sqlite:///{work / 'feedback.sqlite3'}",
                 "HER2CDS_FHIR_TIMEOUT_SECONDS": "5",
                 **(env or {})}
    return subprocess.Popen([sys.executable, "-P", "-m", "cds_service.cli", "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "2"],
                            env=child_env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT if log is not None else None, start_new_session=True)


def run_demo(port: int = 8080, fhir_port: int | None = None, venv: Path | None = None) -> int:
    if not port_is_free(port):
        print(f"error: port {port} on 127.0.0.1 is in use; pass --port N", file=sys.stderr)
        return 2
    print("#" * 78, file=sys.stderr)
    print("# DEMO MODE: HER2CDS_AUTH_MODE=off - the service accepts unauthenticated calls.", file=sys.stderr)
    print("# HER2CDS_ALLOW_INSECURE_FHIR=1 - FHIR access tokens may go to http:// servers.", file=sys.stderr)
    print("# Bound to 127.0.0.1 only. Never run a production service this way.", file=sys.stderr)
    print("# FHIR servers callers may name: the demo's own, plus HER2CDS_FHIR_SERVERS if set.", file=sys.stderr)
    print("#" * 78, file=sys.stderr)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    service: subprocess.Popen | None = None
    fhir = SekmetServer(port=fhir_port or free_port(), venv=venv)
    work = Path(tempfile.mkdtemp(prefix="her2cds-demo-"))
    try:
        try:
            print("starting sekmet-fhir (local FHIR R4 server) ...", file=sys.stderr, flush=True)
            fhir.start()
            for r in loader.load_directory(fhir.base_url):
                print(f"  loaded {r.bundle} ({r.resources} resources)", file=sys.stderr)
        except (SekmetError, loader.LoadError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        service = start_service(port, work, fhir_servers=[fhir.base_url])
        base = f"http://127.0.0.1:{port}"
        if not wait_for_http(f"{base}/cds-services", _SERVICE_READY_SECONDS, service):
            print(f"error: the service did not answer at {base}/cds-services (see its log above)", file=sys.stderr)
            return 1
        print(DemoInstructions(base, fhir.base_url, discover(base), work).text(), flush=True)
        while service.poll() is None and fhir.process is not None and fhir.process.poll() is None:
            time.sleep(0.5)
        print("a demo server exited on its own; stopping the rest", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Stop):
        print("\nstopping ...", file=sys.stderr)
        return 0
    finally:
        if service is not None:
            stop_process(service, grace=10)
        fhir.stop()
        shutil.rmtree(work, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)
