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

import jsonschema_rs
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
    """The request schema for jsonschema (read once per process; immutable): checks the schema itself and
    words the 400 of a refused body."""
    text = resources.files("cds_service").joinpath("schemas/request.schema.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@lru_cache(maxsize=1)
def request_checker() -> jsonschema_rs.Draft202012Validator:
    """The same schema compiled by jsonschema-rs, which gives the verdict on every call.

    Why: Python's jsonschema took a quarter of the HTTP layer's work on every call (re-walking the
    schema and the context, draft orders included: 236 us per order-select body); jsonschema-rs
    (Stranger6667/jsonschema, Rust, Draft 2020-12, maintained) decides the same body in 4 us. It reads
    `pattern` as ECMA-262 says, where `$` is the end of the string: a value with a trailing newline
    ("abc\n") is refused, which Python's `re` lets through."""
    return jsonschema_rs.Draft202012Validator(request_validator().schema)     # the schema jsonschema checked


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
    except json_codec.InvalidJson as exc:
        position = f" at line {exc.line}, column {exc.column}" if exc.line else ""
        raise BadRequest(f"Request body is not valid JSON{position}") from None
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("Request body is not valid JSON") from None
    except RecursionError:
        raise BadRequest("Request body is nested too deeply") from None


def _path_expression(parts: Any) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def error_location(error: ValidationError) -> str:
    """FHIRPath-like location of the offending field, e.g. `context.patientId` or `feedback[0].card`, naming
    the missing field of a `required` / `dependentRequired` error; "" for the body itself. Shared with the
    feedback endpoint, whose bodies are checked with a schema too."""
    path = _path_expression(error.absolute_path)
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
    if request_checker().is_valid(body):
        return body
    error = best_match(request_validator().iter_errors(body))
    if error is not None:
        expression = error_location(error) or "$"
        raise BadRequest(_message(error, expression), expression=expression)
    # Refused by jsonschema-rs only: a pattern Python's `re` matches and ECMA-262 does not (see request_checker).
    refusal = next(iter(request_checker().iter_errors(body)))
    expression = _path_expression(refusal.instance_path) or "$"
    raise BadRequest(_MESSAGES["pattern"].format(expression=expression), expression=expression)
