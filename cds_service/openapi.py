"""The OpenAPI 3.1 document of the service, served at `GET /openapi.json` (a stable path, no JWT).

Built once per app from three sources so it cannot drift from the code: the static part
(`openapi.yaml`: discovery, health, readiness, metrics, shared components), one hook-call and one
feedback operation per registered CDS service, and the JSON Schemas the service validates request
and feedback bodies with (`schemas/`, draft 2020-12 = the OpenAPI 3.1 dialect), copied in with their
`$defs` moved under `components/schemas` so the document is self-contained.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from importlib import resources
from typing import Any

import yaml
from flask import Blueprint, Response, jsonify

from cds_service.services import FhirQuery, ServiceDefinition

PATH = "/openapi.json"


def _packaged(name: str) -> str:
    return resources.files("cds_service").joinpath(name).read_text(encoding="utf-8")


def _inline(schema: dict[str, Any], prefix: str, components: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$defs` moved to components as `<prefix><Name>` and its `#/$defs/` refs rewritten."""
    schema = copy.deepcopy(schema)
    for key in ("$schema", "$id"):
        schema.pop(key, None)
    definitions = schema.pop("$defs", {})

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
                    out[key] = f"#/components/schemas/{prefix}{value[len('#/$defs/'):]}"
                else:
                    out[key] = rewrite(value)
            return out
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    for name, definition in definitions.items():
        components[f"{prefix}{name}"] = rewrite(definition)
    return rewrite(schema)


# The error answers of the CDS Hooks POST operations, in document order: status -> components/responses name.
_ERRORS = {"400": "BadRequest", "401": "Unauthorized", "403": "Forbidden", "404": "NotFound",
           "412": "PreconditionFailed", "413": "PayloadTooLarge", "415": "UnsupportedMediaType"}


def _post(operation_id: str, summary: str, body: dict[str, Any], ok: dict[str, Any],
          errors: Iterable[str]) -> dict[str, Any]:
    """A JWT-protected `POST` taking a JSON body: what the hook calls and the feedback calls share."""
    return {"post": {
        "tags": ["cds-hooks"],
        "operationId": operation_id,
        "summary": summary,
        "security": [{"cdsHooksJwt": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {"200": ok, **{status: {"$ref": f"#/components/responses/{_ERRORS[status]}"}
                                    for status in errors}}}}


def _hook_operation(service: ServiceDefinition) -> dict[str, Any]:
    operation = _post(
        f"call-{service.id}", f"{service.hook}: {service.title}",
        {"allOf": [{"$ref": "#/components/schemas/HookRequest"}, {"properties": {"hook": {"const": service.hook}}}]},
        {"description": "Cards (an empty list only when there is nothing to say)",
         "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CdsResponse"}}}},
        _ERRORS)
    if service.queries:
        operation["post"]["description"] = _prefetch_policy(service.queries)
    return operation


def _prefetch_policy(queries: Iterable[FhirQuery]) -> str:
    """Each prefetch key's failure policy and its reason (`services.FhirQuery`), for the EHR integrator:
    which keys a call cannot do without (412) and which only leave a gap the cards name."""
    lines = ["Each prefetch key is read from `prefetch`, else from `fhirServer`. When it can be obtained "
             "from neither:", ""]
    for query in queries:
        policy = ("required: the call is answered 412" if query.required
                  else "optional: the cards name the data gap")
        lines.append(f"- `{query.key}` ({policy}): {query.why}")
    return "\n".join(lines)


def _feedback_operation(service: ServiceDefinition) -> dict[str, Any]:
    return _post(
        f"feedback-{service.id}", f"Feedback on the cards of {service.id} (stored once per item)",
        {"$ref": "#/components/schemas/FeedbackRequest"},
        {"description": "Stored (duplicates are accepted and not stored twice)",
         "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}}},
        ("400", "401", "404", "413", "415"))


def build_document(services: Iterable[ServiceDefinition]) -> dict[str, Any]:
    """The whole document for these service definitions (each has `id` and `hook`)."""
    document = yaml.safe_load(_packaged("openapi.yaml"))
    schemas = document["components"]["schemas"]
    schemas["HookRequest"] = _inline(json.loads(_packaged("schemas/request.schema.json")), "HookRequest_", schemas)
    schemas["FeedbackRequest"] = _inline(json.loads(_packaged("schemas/feedback.schema.json")), "Feedback_", schemas)
    for service in services:
        document["paths"][f"/cds-services/{service.id}"] = _hook_operation(service)
        document["paths"][f"/cds-services/{service.id}/feedback"] = _feedback_operation(service)
    return document


def create_blueprint(services: Iterable[ServiceDefinition]) -> Blueprint:
    document = build_document(services)
    blueprint = Blueprint("openapi", __name__)

    @blueprint.get(PATH)
    def openapi_document() -> Response:
        return jsonify(document)

    return blueprint
