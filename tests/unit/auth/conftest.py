"""Fixtures for the auth tests: keys made per session, a pinned JWKS file, a guarded app (the database: `db`
in tests/unit/conftest.py)."""
from __future__ import annotations

import json
from pathlib import Path

import flask
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from auth_helpers import ISSUER, JKU, SigningKey, guarded_app, make_settings
from cds_service.auth import Authenticator
from cds_service.storage import Database


@pytest.fixture(scope="session")
def es384() -> SigningKey:
    return SigningKey("test-es384", "ES384", ec.generate_private_key(ec.SECP384R1()))


@pytest.fixture(scope="session")
def es256() -> SigningKey:
    return SigningKey("test-es256", "ES256", ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="session")
def rs384() -> SigningKey:
    return SigningKey("test-rs384", "RS384", rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="session")
def rs256_no_alg() -> SigningKey:
    """An RSA key whose JWK declares no `alg` (Epic-style JWKS): RS256 and RS384 both allowed."""
    return SigningKey("test-rsa-any", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture
def jwks_document(es384: SigningKey, es256: SigningKey, rs384: SigningKey, rs256_no_alg: SigningKey) -> dict:
    loose = rs256_no_alg.jwk()
    del loose["alg"]
    return {"keys": [es384.jwk(), es256.jwk(), rs384.jwk(), loose]}


@pytest.fixture
def trust_dir(tmp_path: Path, jwks_document: dict) -> Path:
    folder = tmp_path / "trust"
    folder.mkdir()
    (folder / "client-jwks.json").write_text(json.dumps(jwks_document))
    (folder / "trusted-issuers.json").write_text(json.dumps(
        [{"iss": ISSUER, "jwks_file": "client-jwks.json", "jku": [JKU]}]))
    return folder


@pytest.fixture
def authenticator(trust_dir: Path, db: Database) -> Authenticator:
    return Authenticator(make_settings(trust_dir), db)


@pytest.fixture
def client(authenticator: Authenticator) -> flask.testing.FlaskClient:
    return guarded_app(authenticator).test_client()
