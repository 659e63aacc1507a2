"""Hook request validation: JSON body -> a checked dict, or a 400/415 naming what is wrong.

The schema (`schemas/request.schema.json`, see its README for provenance and leniencies) catches
structure; this module adds what a schema cannot say well: the body must be JSON, the `hook` must be
the one the addressed service is registered for. FHIR content inside the request (draft orders,
prefetch) is *not* validated with fhir.resources here: the mapping step reads it leniently, field by
field, so one odd element skips a resource instead of rejecting the call (and big prefetch stays fast).
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from cds_service import json_codec
from cds_service.errors import ApiError, BadRequest
from cds_service.services import ServiceDefinition

JSON_MEDIA_TYPES = ("application/json", "application/fhir+json")


class UnsupportedMediaType(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=415)


@lru_cache(maxsize=1)
def request_validator() -> Draft202012Validator:
    """The compiled request schema (read once per process; immutable)."""
    text = resources.files("cds_service").joinpath("schemas/request.schema.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(inline_local_refs(schema))


@lru_cache(maxsize=None)
def hook_validator(hook: str) -> Draft202012Validator:
    """The request schema for calls whose `hook` is `hook` or absent: the `allOf` branches that pick the
    context definition by `hook` are reduced to this hook's. Why: it accepts exactly the bodies the
    full schema accepts once `validate_hook_request` has refused any other hook name (a body without a
    valid `hook` fails both), and skips evaluating the other hooks' conditions on every call. Errors
    are still worded from the full schema. The check of each prefetch value's type is left to
    `_prefetch_values_valid` (jsonschema built a validator per prefetch key on every call)."""
    schema = dict(request_validator().schema)
    branches = [b for b in schema.get("allOf", ()) if _branch_hook(b) in (hook, None)]
    schema["allOf"] = [b["then"] if _branch_hook(b) == hook else b for b in branches]
    prefetch = schema.get("properties", {}).get("prefetch")
    if isinstance(prefetch, dict) and prefetch.get("additionalProperties") == _PREFETCH_VALUE_SCHEMA:
        schema["properties"] = {**schema["properties"],
                                "prefetch": {k: v for k, v in prefetch.items() if k != "additionalProperties"}}
    return Draft202012Validator(schema)


_PREFETCH_VALUE_SCHEMA = {"type": ["object", "null"]}


def _prefetch_values_valid(body: dict[str, Any]) -> bool:
    """What `prefetch.additionalProperties` says (every value a JSON object or null), in plain Python."""
    prefetch = body.get("prefetch")
    return not isinstance(prefetch, dict) or all(v is None or isinstance(v, dict) for v in prefetch.values())


def _branch_hook(branch: Any) -> str | None:
    """The hook an `if: {properties: {hook: {const: ...}}}` branch is for (None: another kind of branch)."""
    try:
        return branch["if"]["properties"]["hook"]["const"]
    except (KeyError, TypeError):
        return None


def inline_local_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The same schema with each `#/$defs/...` reference replaced by its definition. Why: resolving a
    `$ref` on every call took a third of the validator's time. A reference met again inside its own
    definition (recursion) is left as it is, and `$defs` stays, so nothing the validator accepts or
    reports changes."""
    defs = schema.get("$defs", {})

    def inline(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [inline(v, seen) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs and ref not in seen:
            resolved = inline(defs[ref[8:]], seen + (ref,))
            rest = {k: inline(v, seen) for k, v in node.items() if k != "$ref"}
            return {**rest, "allOf": [*rest.get("allOf", ()), resolved]} if rest else resolved
        return {k: (v if k == "$defs" else inline(v, seen)) for k, v in node.items()}

    return inline(schema, ())


def check_content_type(content_type: str | None) -> None:
    """415 unless the body is declared JSON (`application/json` or `application/fhir+json`, any parameters)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in JSON_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type must be application/json (got {media[:64] or 'none'!r})")   # header: echo a bounded part


def parse_json(raw: bytes) -> Any:
    """The body as JSON (msgspec: see `json_codec`). A large body is parsed with the cycle collector paused
    (`collector_pause`, held by the caller)."""
    try:
        return json_codec.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        line = getattr(exc, "line", None)
        position = f" at line {line}, column {exc.column}" if line else ""     # type: ignore[attr-defined]
        raise BadRequest(f"Request body is not valid JSON{position}") from None
    except RecursionError:
        raise BadRequest("Request body is nested too deeply") from None


def error_location(error: ValidationError) -> str:
    """FHIRPath-like location of the offending field, e.g. `context.patientId` or `feedback[0].card`, naming
    the missing field of a `required` / `dependentRequired` error; "" for the body itself. Shared with the
    feedback endpoint, whose bodies are checked with a schema too."""
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    missing = None
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = next((name for name in error.validator_value if name not in error.instance), None)
    elif error.validator == "dependentRequired" and isinstance(error.instance, dict):
        for name, needs in error.validator_value.items():
            if name in error.instance:
                missing = next((n for n in needs if n not in error.instance), None)
                if missing:
                    break
    if missing:
        path = f"{path}.{missing}" if path else missing
    return path


# The 400 text per failed keyword; any other keyword gets "is invalid (<keyword>)" (the library's own text
# can quote the, possibly large, offending value).
_MESSAGES = {
    "required": "{expression} is required",
    "dependentRequired": "{expression} is required when fhirAuthorization is present (cds-r-1)",
    "maxLength": "{expression} is too long (at most {value} characters)",
    "type": "{expression} must be of JSON type {value}",
    "const": "{expression} must be {value!r}",
    "pattern": "{expression} has an invalid format",
}


def _message(error: ValidationError, expression: str) -> str:
    template = _MESSAGES.get(error.validator, "{expression} is invalid ({validator})")
    return template.format(expression=expression, value=error.validator_value, validator=error.validator)


def validate_hook_request(body: Any, service: ServiceDefinition) -> dict[str, Any]:
    """The body if it is a valid call of `service`; else BadRequest naming the field (`expression`)."""
    if not isinstance(body, dict):
        raise BadRequest(f"Request body must be a JSON object, not a JSON {type(body).__name__}", expression="$")
    hook = body.get("hook")
    if isinstance(hook, str) and hook and hook != service.hook:
        raise BadRequest(f"Service {service.id} is registered for hook {service.hook!r}, not {hook[:64]!r}",
                         expression="hook")
    if hook_validator(service.hook).is_valid(body) and _prefetch_values_valid(body):
        return body
    error = best_match(request_validator().iter_errors(body))
    if error is not None:
        expression = error_location(error) or "$"
        raise BadRequest(_message(error, expression), expression=expression)
    return body
