"""How hook bodies are read (json_codec: msgspec): what is refused as not JSON, and where the 400 says it stopped."""
from __future__ import annotations

import pytest

from cds_service import json_codec
from service_helpers import PV


@pytest.mark.parametrize("raw, line, column", [
    (b'{"hook": "patient-view",\n "context": NaN}', 2, 13),
    (b'{"hook": "patient-view"} trailing', 1, 27),
    (b'\n\n  {"hook": ', None, None),                  # truncated: the decoder names no position
])
def test_a_body_that_is_not_json_is_a_400_naming_where_reading_stopped(client, raw, line, column):
    response = client.post(f"/cds-services/{PV}", data=raw, content_type="application/json")
    assert response.status_code == 400
    text = response.get_json()["issue"][0]["details"]["text"]
    assert text.startswith("Request body is not valid JSON")
    assert (f"at line {line}, column {column}" in text) if line else ("at line" not in text)


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b'{"a": Infinity}', b'"\\ud800"', b'"\xff"', b'\xef\xbb\xbf{}', b'',
                                 b'1e400'],
                         ids=["NaN", "Infinity", "lone surrogate", "not UTF-8", "byte order mark", "empty",
                              "beyond a double"])
def test_what_rfc_8259_does_not_allow_is_refused(raw):
    with pytest.raises(ValueError):
        json_codec.loads(raw)


def test_integers_are_kept_exact_however_long():
    assert json_codec.loads(b"123456789012345678901234567890") == 123456789012345678901234567890


def test_a_body_nested_deeper_than_the_interpreter_allows_is_a_400(client):
    response = client.post(f"/cds-services/{PV}", data=b"[" * 5000 + b"]" * 5000, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["details"]["text"] == "Request body is nested too deeply"
