"""jsonschema-rs, which judges every hook body (`request_checker`), refuses exactly what Python's jsonschema refuses,
and, where the two regex dialects differ, refuses more: a value with a trailing newline.

Why it matters: the verdict comes from jsonschema-rs and only the wording of the 400 from jsonschema, so a
difference would let through a body the schema refuses, or refuse a good one without saying why.
"""
from __future__ import annotations

import copy
from typing import Any, Iterator

from cds_service.request_validation import request_checker, request_validator
from service_helpers import PV, full_prefetch, hook_body

# Values put in every place of a valid body: each JSON type, and strings at the schema's edges.
REPLACEMENTS: list[Any] = [
    None, True, 0, 1.0, 2.5, "", "x", "x" * 65, "x" * 129, "x" * 201, "abc\n", "a/b", "Patient/p 1", "Patient/p1",
    "Bundle", "bearer", "BEARER", "tok en", "tok=", "tok=a", "https://h/p", "HTTP://h", "https://h/a b", "ftp://h",
    "é€", "😀" * 65, [], ["x"], [1], ["x" * 201], ["x"] * 501, {}, {"resourceType": "Bundle"}, {"resource": {}},
    {"resource": {"resourceType": "X"}}, {"access_token": "t", "token_type": "Bearer"}, 2 ** 70,
]


def _paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, path + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value[:2]):
            yield from _paths(child, path + (index,))


def _replaced(body: dict, path: tuple, value: Any, delete: bool = False) -> Any:
    if not path:
        return value
    copied = copy.deepcopy(body)
    target = copied
    for part in path[:-1]:
        target = target[part]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return copied


def _base_bodies() -> list[dict]:
    auth = {"fhirAuthorization": {"access_token": "abc.DEF-_~+/=", "token_type": "Bearer", "expires_in": 300,
                                  "scope": "s", "subject": "c"}}
    small_prefetch = dict(list(full_prefetch().items())[:3])
    select = hook_body("order-select", prefetch=small_prefetch, **auth)
    select["context"]["selections"] = ["MedicationRequest/d1"]
    select["context"]["encounterId"] = "e1"
    return [hook_body("patient-view", prefetch=small_prefetch, extension={"a": 1}, **auth), select,
            hook_body("order-sign", fhir_server=None)]


def _mutations() -> Iterator[Any]:
    for body in _base_bodies():
        yield body
        for path in _paths(body):
            for value in REPLACEMENTS:
                yield _replaced(body, path, value)
            if path:
                yield _replaced(body, path, None, delete=True)
        for hook in ("patient-view", "order-select", "order-sign", "other"):
            yield {**body, "hook": hook}
        yield {**body, "prefetch": {"k": None, "j": {"resourceType": "Patient"}}}


def _has_trailing_newline(value: Any) -> bool:
    if isinstance(value, str):
        return value.endswith("\n")
    if isinstance(value, dict):
        return any(_has_trailing_newline(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_trailing_newline(v) for v in value)
    return False


def test_every_mutated_body_gets_the_verdict_of_jsonschema_except_a_trailing_newline():
    checker, validator = request_checker(), request_validator()
    bodies = list(_mutations())
    assert len(bodies) > 4000
    differ = [body for body in bodies if checker.is_valid(body) != validator.is_valid(body)]
    assert differ and all(_has_trailing_newline(b) and not checker.is_valid(b) for b in differ)


def test_an_id_with_a_trailing_newline_is_a_400_naming_the_field(client):
    body = hook_body("patient-view", fhir_server=None)
    body["context"]["patientId"] = "p1\n"
    response = client.post(f"/cds-services/{PV}", json=body)
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["details"]["text"] == "context.patientId has an invalid format"
    assert response.get_json()["issue"][0]["expression"] == ["context.patientId"]
