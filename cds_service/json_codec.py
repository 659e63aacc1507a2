"""JSON in and out of the HTTP layer: bodies (hook calls, FHIR responses) read with msgspec, cards written
with orjson.

Why not the standard `json` module: on the hot path of a hook call it was the largest cost the service
itself did not need (issue 15); a 5,000-resource prefetch (~3 MB) took 17-24 ms to parse.
Why msgspec to read (jcrist/msgspec, maintained, wheels for every platform we run on): as fast as orjson
(8-11 ms on that body; 41 vs 51 us on a 13 KB hook body) and it builds the Python objects directly.
orjson first builds its own document tree: parsing the 2.7 MB body peaked at 44 MB (traced), msgspec at
the 13.6 MB of the result, and that transient was most of a worker's peak memory. Both are stricter on
input than `json`: `NaN`/`Infinity` literals and lone surrogates (not JSON by RFC 8259) are refused, so such
a body is a 400 like any invalid JSON; integers are kept exact however long.
Why orjson to write: msgspec writes dates and datetimes its own way, orjson hands them to Flask's.

Output keeps the field order as built (no key sorting), compact, UTF-8 (not `\\uXXXX` escapes);
dates, dataclasses and other types orjson does not write the way Flask does go to Flask's own
`default`, so every value is written as before.
"""
from __future__ import annotations

import re
from typing import Any

import msgspec
import orjson
from flask import Flask, Response
from flask.json.provider import DefaultJSONProvider

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS

_DECODER = msgspec.json.Decoder()
_AT_BYTE = re.compile(r"\(byte (\d+)\)")


class InvalidJson(ValueError):
    """Not JSON; `line` and `column` (1-based) where the decoder stopped, when it said (else None)."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line, self.column = line, column


def loads(raw: bytes | str) -> Any:
    """The JSON document in `raw`; InvalidJson (a ValueError) if it is not one, RecursionError if nested
    deeper than the interpreter allows."""
    try:
        return _DECODER.decode(raw)
    except msgspec.DecodeError as exc:
        raise _invalid(str(exc), raw) from None


def _invalid(message: str, raw: bytes | str) -> InvalidJson:
    found = _AT_BYTE.search(message)
    if not found:
        return InvalidJson(message)
    data = raw.encode() if isinstance(raw, str) else raw
    offset = min(int(found.group(1)), len(data))
    line_start = data.rfind(b"\n", 0, offset) + 1
    return InvalidJson(message, data.count(b"\n", 0, offset) + 1, offset - line_start + 1)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=DefaultJSONProvider.default, option=_OPTIONS)


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider (`jsonify`, `request.get_json`) backed by `loads` / `dumps`; compact output only."""

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
    """Use msgspec / orjson for this app's `request.get_json` / `jsonify`."""
    app.json = OrjsonProvider(app)
