"""Helpers for the HTTP service tests: request bodies, FHIR data, a mocked FHIR server, raw sockets."""
from __future__ import annotations

import io
import json
import re
import socket
import threading
import time
import uuid
from typing import Any, Callable

import responses

from cds_service.relative_dates import load_json
from cds_service.services import SERVICES
from support import REPO, TODAY, bundle_resources

FHIR = "https://fhir.test/fhir"   # https: calls with fhirAuthorization need TLS
PATIENT = "p1"
PV, SELECT, SIGN = (s.id for s in SERVICES)
CARD = {"uuid": "0b9c4c1e-8a43-4a31-9d6c-4c2a8f6b1a11", "summary": "fake card", "indicator": "info",
        "source": {"label": "test"}}


def log_events(stream: io.StringIO, event: str | None = None) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [line for line in lines if event is None or line["event"] == event]

# ---------------------------------------------------------------- request bodies and FHIR data


def hook_body(hook: str = "patient-view", *, patient: str = PATIENT, fhir_server: str | None = FHIR,
              prefetch: dict | None = None, drafts: list[dict] | None = None, **extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": "Practitioner/u1", "patientId": patient}
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": d} for d in (drafts or [draft_order()])]}
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
    if fhir_server:
        body["fhirServer"] = fhir_server
    if prefetch is not None:
        body["prefetch"] = prefetch
    body.update(extra)
    return body


def draft_order(rid: str = "d1") -> dict[str, Any]:
    return {"resourceType": "MedicationRequest", "id": rid, "status": "draft", "intent": "order",
            "subject": {"reference": f"Patient/{PATIENT}"},
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                      "code": "224905"}]}}


def resource(rtype: str, rid: str, patient: str = PATIENT) -> dict[str, Any]:
    if rtype == "Patient":
        return {"resourceType": "Patient", "id": rid}
    return {"resourceType": rtype, "id": rid, "subject": {"reference": f"Patient/{patient}"}}


def searchset(resources: list[dict], next_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
                              "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources]}
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


SEARCH_KEYS = {"conditions": "Condition", "observations": "Observation", "observationComponents": "Observation",
               "labObservations": "Observation", "diagnosticReports": "DiagnosticReport",
               "medicationRequests": "MedicationRequest",
               "medicationStatements": "MedicationStatement",
               "medicationAdministrations": "MedicationAdministration"}


def record_id(key: str) -> str:
    """The id of the one resource each search key finds (three keys search Observation: distinct ids)."""
    rtype = SEARCH_KEYS[key]
    return {"observationComponents": "observation-components-1", "labObservations": "observation-lab-1"}.get(
        key, f"{rtype.lower()}-1")


def _observation_key(url: str) -> str:
    if "component-code=" in url:
        return "observationComponents"
    return "labObservations" if "category=laboratory" in url else "observations"


def full_prefetch(patient: str = PATIENT) -> dict[str, Any]:
    """What a client that prefetched every key sends: one resource per key."""
    out: dict[str, Any] = {"patient": resource("Patient", patient)}
    for key, rtype in SEARCH_KEYS.items():
        out[key] = searchset([resource(rtype, record_id(key), patient)])
    return out


def serve_record(rsps: responses.RequestsMock, *, base: str = FHIR, patient: str = PATIENT,
                 status: dict[str, int] | None = None) -> list[str]:
    """Mock a FHIR server holding one resource of each type; returns the list of URLs requested."""
    seen: list[str] = []
    status = status or {}

    def answer(rtype: str) -> Callable:
        def callback(request: Any) -> tuple[int, dict, str]:
            seen.append(request.url)
            code = status.get(rtype, 200)
            if code != 200:
                return code, {}, json.dumps({"resourceType": "OperationOutcome", "issue": []})
            if rtype == "Patient":
                return 200, {}, json.dumps(resource("Patient", patient))
            key = _observation_key(request.url) if rtype == "Observation" else \
                next(k for k, t in SEARCH_KEYS.items() if t == rtype)
            return 200, {}, json.dumps(searchset([resource(rtype, record_id(key), patient)]))
        return callback

    for rtype in ["Patient", *dict.fromkeys(SEARCH_KEYS.values())]:
        rsps.add_callback(responses.GET, re.compile(re.escape(f"{base}/{rtype}") + r"([/?].*)?$"),
                          callback=answer(rtype), content_type="application/fhir+json")
    return seen


# ---------------------------------------------------------------- a real record (tests/fixtures/records)

RECORD = REPO / "tests" / "fixtures" / "records" / "her2-second-line-after-tch.json"
RECORD_PATIENT = "rec-pat"


def synthetic_record(patient: str = RECORD_PATIENT) -> list[dict[str, Any]]:
    """The committed synthetic record (HER2-positive, progressed on first-line TCH), dates resolved to
    today, its patient id renamed to `patient`."""
    text = json.dumps(bundle_resources(load_json(RECORD, TODAY))).replace(f'"{RECORD_PATIENT}"', json.dumps(patient))
    return json.loads(text.replace(f"Patient/{RECORD_PATIENT}", f"Patient/{patient}"))


def prefetch_for(resources: list[dict], patient: str) -> dict[str, Any]:
    """What a client that prefetched every key of patient-view sends for `resources`."""
    out: dict[str, Any] = {}
    for query in SERVICES[0].queries:
        of_type = [r for r in resources if r["resourceType"] == query.resource_type]
        if query.is_read:
            out[query.key] = next((r for r in of_type if r.get("id") == patient), None)
        else:
            out[query.key] = searchset(of_type)
    return out


def serve_resources(rsps: responses.RequestsMock, resources: list[dict], patient: str, *, base: str = FHIR) -> None:
    """Mock a FHIR server answering each patient-view query with the resources of its type."""
    prefetch = prefetch_for(resources, patient)
    for query in SERVICES[0].queries:
        path = query.template.split("?")[0].replace("{{context.patientId}}", patient)
        rsps.add(responses.GET, re.compile(re.escape(f"{base}/{path}") + r"(\?.*)?$"),
                 body=json.dumps(prefetch[query.key]), content_type="application/fhir+json")


# ---------------------------------------------------------------- real sockets for timeout/unreachable


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class HangingServer:
    """Accepts TCP connections on loopback and never answers (a subclass answers in `handle`)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def handle(self, conn: socket.socket) -> None:
        self.conns.append(conn)     # held open, never answered

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn = self.sock.accept()[0]
            except OSError:
                continue
            self.handle(conn)

    def __enter__(self) -> "HangingServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        for conn in self.conns:
            conn.close()
        self.sock.close()


def elapsed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = fn()
    return result, time.monotonic() - start
