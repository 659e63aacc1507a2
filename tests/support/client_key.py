"""The committed TEST-ONLY client key (tests/fixtures/test_client_key): a trusted-issuers file naming it,
and CDS Hooks JWTs signed with it, so the auth-wiring tests run in a clean clone without ../shared."""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt

KEYS = Path(__file__).resolve().parents[1] / "fixtures" / "test_client_key"
JWKS_FILE = KEYS / "jwks.json"
KID = "her2-cds-tests-es384-1"
ISSUER = "https://test-client.invalid"


def signed_token(aud: str, iss: str = ISSUER) -> str:
    """A valid 5-minute ES384 token for `aud`, with a fresh `jti`."""
    now = int(time.time())
    return jwt.encode({"iss": iss, "aud": aud, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())},
                      (KEYS / "private-key.pem").read_bytes(), algorithm="ES384", headers={"kid": KID, "typ": "JWT"})


def trusted_issuers_file(folder: Path, fhir_servers_by_issuer: dict[str, list[str]]) -> Path:
    """A trusted-issuers file in `folder` trusting the test key under each issuer, with its `fhir_servers`."""
    path = folder / "issuers.json"
    entries: list[dict[str, Any]] = [{"iss": iss, "jwks_file": str(JWKS_FILE), "fhir_servers": servers}
                                     for iss, servers in fhir_servers_by_issuer.items()]
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path
