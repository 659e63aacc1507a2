"""The app factory wires JWT auth in front of every API call except preflights, and fails closed."""
from __future__ import annotations

import io
import json

import pytest

from service_helpers import PV, full_prefetch, hook_body
from support.client_key import signed_token as token


@pytest.fixture
def secured_client(secured_app_for, fake_evaluate):
    return secured_app_for().test_client()


def test_discovery_without_a_token_is_401(secured_client):
    assert secured_client.get("/cds-services").status_code == 401


def test_discovery_with_a_token_for_the_public_url_is_200(secured_client):
    response = secured_client.get("/cds-services",
                                  headers={"Authorization": f"Bearer {token('https://cds.example.org/cds-services')}"})
    assert response.status_code == 200


def test_hook_call_with_a_valid_token_is_200(secured_client):
    aud = f"https://cds.example.org/cds-services/{PV}"
    response = secured_client.post(f"/cds-services/{PV}", data=json.dumps(hook_body(prefetch=full_prefetch())),
                                   content_type="application/json", headers={"Authorization": f"Bearer {token(aud)}"})
    assert response.status_code == 200


def test_preflight_needs_no_token(secured_client):
    response = secured_client.options(f"/cds-services/{PV}", headers={
        "Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert response.status_code == 200


# ---------------------------------------------------------------- issue 14: authenticate before reading a body


class CountingStream(io.BytesIO):
    """wsgi.input that counts the bytes the app reads."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk

    def readline(self, size: int = -1) -> bytes:
        chunk = super().readline(size)
        self.consumed += len(chunk)
        return chunk


@pytest.mark.parametrize("size", [10_000, 3 * 1024 * 1024], ids=["small-body", "body-over-the-limit"])
def test_an_unauthenticated_call_is_401_before_its_body_is_read(secured_client, caplog, size):
    caplog.set_level("WARNING", logger="her2cds.auth")
    stream = CountingStream(b"{" + b" " * (size - 2) + b"}")
    response = secured_client.post(f"/cds-services/{PV}", input_stream=stream, content_type="application/json",
                                   headers={"Content-Length": str(size)})
    assert response.status_code == 401          # not a 413 after draining megabytes for a stranger
    assert stream.consumed == 0
    assert any(getattr(r, "reason", "") == "no Authorization header" for r in caplog.records)


def test_an_authenticated_call_over_the_body_limit_is_413(secured_client):
    aud = f"https://cds.example.org/cds-services/{PV}"
    size = 3 * 1024 * 1024
    response = secured_client.post(f"/cds-services/{PV}", data=b"{" + b" " * (size - 2) + b"}",
                                   content_type="application/json", headers={"Authorization": f"Bearer {token(aud)}"})
    assert response.status_code == 413
