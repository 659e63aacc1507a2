"""The app factory wires JWT auth in front of every API call except preflights, and fails closed."""
from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest

from cds_service import create_app
from service_helpers import FHIR, PV, full_prefetch, hook_body
from support import SHARED, require_shared

KEYS = SHARED / "probe" / "keys"
ISSUER = "https://probe.invalid"


@pytest.fixture
def secured_client(tmp_path, settings_overrides, evaluate):
    require_shared(KEYS / "jwks.json")
    issuers = tmp_path / "issuers.json"
    issuers.write_text(json.dumps([{"iss": ISSUER, "jwks_file": str(KEYS / "jwks.json"), "fhir_servers": [FHIR]}]))
    app = create_app({**settings_overrides, "auth_mode": "required", "trusted_issuers_file": str(issuers),
                      "public_base_url": "https://cds.example.org"})
    return app.test_client()


def token(aud: str) -> str:
    now = int(time.time())
    return jwt.encode({"iss": ISSUER, "aud": aud, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())},
                      (KEYS / "private-key.pem").read_bytes(), algorithm="ES384",
                      headers={"kid": "cds-probe-es384-1", "typ": "JWT"})


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
