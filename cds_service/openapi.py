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


def _error(ref: str) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/{ref}"}


def _hook_operation(service: Any) -> dict[str, Any]:
    return {"post": {
        "tags": ["cds-hooks"],
        "operationId": f"call-{service.id}",
        "summary": f"{service.hook}: {getattr(service, 'title', '') or service.id}",
        "security": [{"cdsHooksJwt": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"allOf": [
            {"$ref": "#/components/schemas/HookRequest"},
            {"properties": {"hook": {"const": service.hook}}}]}}}},
        "responses": {
            "200": {"description": "Cards (an empty list only when there is nothing to say)",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CdsResponse"}}}},
            "400": _error("BadRequest"), "401": _error("Unauthorized"), "403": _error("Forbidden"),
            "404": _error("NotFound"), "412": _error("PreconditionFailed"), "413": _error("PayloadTooLarge"),
            "415": _error("UnsupportedMediaType")}}}


def _feedback_operation(service: Any) -> dict[str, Any]:
    return {"post": {
        "tags": ["cds-hooks"],
        "operationId": f"feedback-{service.id}",
        "summary": f"Feedback on the cards of {service.id} (stored once per item)",
        "security": [{"cdsHooksJwt": []}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/FeedbackRequest"}}}},
        "responses": {
            "200": {"description": "Stored (duplicates are accepted and not stored twice)",
                    "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}}},
            "400": _error("BadRequest"), "401": _error("Unauthorized"), "404": _error("NotFound"),
            "413": _error("PayloadTooLarge"), "415": _error("UnsupportedMediaType")}}}


def build_document(services: Iterable[Any]) -> dict[str, Any]:
    """The whole document for these service definitions (each has `id` and `hook`)."""
    document = yaml.safe_load(_packaged("openapi.yaml"))
    schemas = document["components"]["schemas"]
    schemas["HookRequest"] = _inline(json.loads(_packaged("schemas/request.schema.json")), "HookRequest_", schemas)
    schemas["FeedbackRequest"] = _inline(json.loads(_packaged("schemas/feedback.schema.json")), "Feedback_", schemas)
    for service in services:
        document["paths"][f"/cds-services/{service.id}"] = _hook_operation(service)
        document["paths"][f"/cds-services/{service.id}/feedback"] = _feedback_operation(service)
    return document


def create_blueprint(services: Iterable[Any]) -> Blueprint:
    document = build_document(services)
    blueprint = Blueprint("openapi", __name__)

    @blueprint.get(PATH)
    def openapi_document() -> Response:
        return jsonify(document)

    return blueprint
