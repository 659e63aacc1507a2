"""JSON in and out of the HTTP layer with orjson: the hook body parsed, the cards serialised.

Why orjson: on the hot path of a hook call the standard `json` module was the largest cost the
service itself did not need (issue 15), and with a 5,000-resource prefetch (~3 MB) parsing alone took
tens of milliseconds. orjson (ijl/orjson, maintained, wheels for every platform we run on) parses and
writes the same JSON several times faster. It is stricter on input: `NaN`/`Infinity` literals and
lone surrogates (not JSON by RFC 8259) are rejected, so such a body is a 400 like any invalid JSON.

Output keeps the field order as built (no key sorting), compact, UTF-8 (not `\\uXXXX` escapes);
dates, dataclasses and other types orjson does not write the way Flask does go to Flask's own
`default`, so every value is written as before.
"""
from __future__ import annotations

from typing import Any

import orjson
from flask import Flask, Response
from flask.json.provider import DefaultJSONProvider

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS

DecodeError = orjson.JSONDecodeError      # a json.JSONDecodeError (ValueError) with lineno / colno


def loads(raw: bytes | str) -> Any:
    return orjson.loads(raw)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=DefaultJSONProvider.default, option=_OPTIONS)


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider (`jsonify`, `request.get_json`) backed by orjson; compact output only."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs:                                   # indent etc.: the standard library, as Flask does
            return super().dumps(obj, **kwargs)
        return dumps(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return super().loads(s, **kwargs) if kwargs else loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(dumps(obj) + b"\n", mimetype=self.mimetype)


def install(app: Flask) -> None:
    """Use orjson for this app's `jsonify` and `request.get_json`."""
    app.json = OrjsonProvider(app)
