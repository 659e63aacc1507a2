"""Build and send CDS Hooks calls the way a CDS client does (fetch mode or prefetch mode)."""
from __future__ import annotations

import re
import uuid
from typing import Any

import requests

USER = "Practitioner/it-user"
TIMEOUT = 15
_TOKEN = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")


def context_for(hook: str, patient_id: str, drafts: list[dict[str, Any]]) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": USER, "patientId": patient_id}
    if hook != "patient-view":
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": d} for d in drafts]}
        if hook == "order-select":
            context["selections"] = [f"MedicationRequest/{d['id']}" for d in drafts]
    return context


def resolve_template(template: str, context: dict[str, Any]) -> str | None:
    """CDS Hooks 2.0 tokens; None when a token cannot be resolved (the key is then skipped)."""
    user_type, _, user_id = str(context.get("userId", "")).partition("/")
    values = {f"context.{k}": v for k, v in context.items() if isinstance(v, str)}
    values |= {f"user{user_type}Id": user_id, "userId": user_id}
    out, missing = template, False
    for token in set(_TOKEN.findall(template)):
        if token in values:
            out = re.sub(r"\{\{\s*" + re.escape(token) + r"\s*\}\}", values[token], out)
        else:
            missing = True
    return None if missing else out


def prefetch_for(service: dict[str, Any], fhir_base: str, context: dict[str, Any]) -> dict[str, Any]:
    """GET each template from the FHIR server (one page, like the sandbox); failed keys are omitted."""
    prefetch: dict[str, Any] = {}
    for key, template in (service.get("prefetch") or {}).items():
        url = resolve_template(template, context)
        if url is None:
            continue
        response = requests.get(f"{fhir_base}/{url}", headers={"Accept": "application/fhir+json"}, timeout=TIMEOUT)
        if response.status_code == 200:
            prefetch[key] = response.json()
    return prefetch


def hook_body(service: dict[str, Any], fhir_base: str, patient_id: str, drafts: list[dict[str, Any]],
              mode: str) -> dict[str, Any]:
    context = context_for(service["hook"], patient_id, drafts)
    body: dict[str, Any] = {"hook": service["hook"], "hookInstance": str(uuid.uuid4()), "fhirServer": fhir_base,
                            "context": context}
    if mode == "prefetch":
        prefetch = prefetch_for(service, fhir_base, context)
        if prefetch:
            body["prefetch"] = prefetch
    return body


def call(service_base: str, service: dict[str, Any], body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{service_base}/cds-services/{service['id']}", json=body, timeout=TIMEOUT)
