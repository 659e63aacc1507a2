"""Load the demo patients (transaction Bundles with relative-date tokens) into any FHIR R4 server.

Why both paths: a transaction POSTed to the base is atomic and one request (sekmet, HAPI); some
servers or proxies refuse transactions, so on a refusal we PUT each entry (`PUT Type/id`), which is
idempotent because every entry carries its own id. Entries are PUT in bundle order (the Patient
first), so servers with referential integrity (HAPI) accept each reference when it arrives.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import requests

from cds_service.relative_dates import load_json

SANDBOX_DIR = Path(__file__).resolve().parent
PATIENTS_DIR = SANDBOX_DIR / "patients"
FHIR_JSON = "application/fhir+json"
DEFAULT_TIMEOUT_SECONDS = 30.0
# Status codes that mean "this server does not take transactions here", not "your data is wrong".
_TRANSACTION_REFUSED = {404, 405, 501}


class LoadError(RuntimeError):
    """A bundle could not be stored; the message names the server, bundle and reason."""


@dataclass(frozen=True)
class LoadResult:
    bundle: str          # file name (or bundle id)
    method: str          # "transaction" | "put-each"
    resources: int


def bundle_files(directory: Path = PATIENTS_DIR) -> list[Path]:
    """The demo bundles, in file-name order (demo-1..., demo-2...)."""
    return sorted(p for p in Path(directory).glob("*.json") if p.is_file())


def read_bundles(paths: Iterable[Path], today: dt.date | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(name, bundle) with relative-date tokens resolved against `today` (default: today, UTC)."""
    return [(Path(p).name, load_json(p, today)) for p in paths]


def _outcome_text(response: requests.Response) -> str:
    """The server's own words: OperationOutcome diagnostics if any, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        parts = [i.get("diagnostics") or (i.get("details") or {}).get("text") or i.get("code", "")
                 for i in body.get("issue", []) if isinstance(i, dict)]
        return "; ".join(p for p in parts if p)[:500]
    return json.dumps(body)[:300]


def _entry_failures(body: Any) -> list[str]:
    """Entries of a transaction-response whose status is not 2xx (some servers answer 200 anyway)."""
    failures = []
    for entry in (body or {}).get("entry", []) if isinstance(body, dict) else []:
        status = str((entry.get("response") or {}).get("status", ""))
        if status and not status.startswith("2"):
            failures.append(status)
    return failures


def post_transaction(session: requests.Session, base_url: str, bundle: dict[str, Any], timeout: float) -> requests.Response:
    return session.post(base_url.rstrip("/"), json=bundle, timeout=timeout,
                        headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})


def put_each(session: requests.Session, base_url: str, bundle: dict[str, Any], timeout: float, name: str) -> int:
    """PUT every entry at its `request.url` (or Type/id). Returns how many were stored."""
    count = 0
    for entry in bundle.get("entry", []):
        resource = entry.get("resource") or {}
        url = (entry.get("request") or {}).get("url") or f"{resource.get('resourceType')}/{resource.get('id')}"
        try:
            response = session.put(f"{base_url.rstrip('/')}/{url}", json=resource, timeout=timeout,
                                   headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
        except requests.RequestException as exc:
            raise LoadError(f"{name}: PUT {url} to {base_url} failed: {exc}") from exc
        if response.status_code >= 300:
            raise LoadError(f"{name}: PUT {url} -> HTTP {response.status_code}: {_outcome_text(response)}")
        count += 1
    return count


def load_bundle(base_url: str, bundle: dict[str, Any], *, name: str = "bundle",
                session: requests.Session | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> LoadResult:
    """Store one transaction Bundle: POST to the base; if the server refuses transactions, PUT each."""
    session = session or requests.Session()
    try:
        response = post_transaction(session, base_url, bundle, timeout)
    except requests.ConnectionError as exc:
        raise LoadError(f"cannot reach the FHIR server at {base_url} ({exc.__class__.__name__}). "
                        "Is it running, and is this its base URL (ending in /fhir or /baseR4)?") from exc
    except requests.Timeout as exc:
        raise LoadError(f"{name}: the FHIR server at {base_url} did not answer within {timeout:g} s") from exc
    entries = len(bundle.get("entry", []))
    if response.status_code < 300:
        try:
            body = response.json()
        except ValueError:
            body = None
        failed = _entry_failures(body)
        if failed:
            raise LoadError(f"{name}: transaction accepted but entries failed: {', '.join(failed)}")
        return LoadResult(name, "transaction", entries)
    if response.status_code in _TRANSACTION_REFUSED or (
            response.status_code == 400 and "transaction" in _outcome_text(response).lower()):
        return LoadResult(name, "put-each", put_each(session, base_url, bundle, timeout, name))
    raise LoadError(f"{name}: POST transaction to {base_url} -> HTTP {response.status_code}: {_outcome_text(response)}")


def load_directory(base_url: str, directory: Path = PATIENTS_DIR, *, today: dt.date | None = None,
                   timeout: float = DEFAULT_TIMEOUT_SECONDS, session: requests.Session | None = None) -> list[LoadResult]:
    """Load every bundle of `directory` (the demo patients by default)."""
    paths = bundle_files(directory)
    if not paths:
        raise LoadError(f"no *.json bundles in {directory}")
    session = session or requests.Session()
    return [load_bundle(base_url, bundle, name=name, session=session, timeout=timeout)
            for name, bundle in read_bundles(paths, today)]


def patient_ids(directory: Path = PATIENTS_DIR) -> list[str]:
    """The Patient id of each demo bundle, in file order."""
    ids = []
    for path in bundle_files(directory):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        ids += [e["resource"]["id"] for e in bundle.get("entry", []) if e.get("resource", {}).get("resourceType") == "Patient"]
    return ids
