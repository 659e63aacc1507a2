"""Helpers for the auth tests: keys, token minting, a minimal Flask app guarded by the Authenticator."""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flask
import jwt

from cds_service.auth import Authenticator
from cds_service.config import Settings
from cds_service.errors import ApiError
from cds_service.services import SERVICES

ISSUER = "https://client.test"
JKU = "https://client.test/jwks.json"
BASE = "http://localhost"
SERVICE_PATH = f"/cds-services/{SERVICES[0].id}"
SERVICE_URL = BASE + SERVICE_PATH


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        return {**json.loads(algorithm.to_jwk(self.private.public_key())), "kid": self.kid, "use": "sig",
                "alg": self.alg}


def make_settings(trust_dir: Path | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"auth_mode": "required", "jwt_leeway_seconds": 60, "public_base_url": BASE}
    if trust_dir is not None:
        values["trusted_issuers_file"] = str(trust_dir / "trusted-issuers.json")
    values.update(overrides)
    return Settings(**values)


def guarded_app(authenticator: Authenticator) -> flask.Flask:
    """Discovery and one service, each behind `authenticate`, errors as OperationOutcome (like the real app)."""
    app = flask.Flask("auth-test")

    @app.before_request
    def _authenticate() -> None:
        authenticator.authenticate(flask.request)

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> tuple[flask.Response, int]:
        return flask.jsonify(error.to_outcome()), error.status

    @app.get("/cds-services")
    def _discovery() -> flask.Response:
        return flask.jsonify({"services": []})

    @app.post("/cds-services/<service_id>")
    def _service(service_id: str) -> flask.Response:
        return flask.jsonify({"cards": []})

    return app


def claims(aud: Any = SERVICE_URL, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {"iss": ISSUER, "aud": aud, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def mint(key: SigningKey, payload: dict[str, Any] | None = None, *, alg: str | None = None,
         **header_overrides: Any) -> str:
    header: dict[str, Any] = {"kid": key.kid, "typ": "JWT", "jku": JKU}
    header.update(header_overrides)
    header = {k: v for k, v in header.items() if v is not None}
    return jwt.encode(payload or claims(), key.private, algorithm=alg or key.alg, headers=header)


def call(client: flask.testing.FlaskClient, token: str | None, *, path: str = SERVICE_PATH,
         headers: dict[str, str] | None = None) -> Any:
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    if path == "/cds-services":
        return client.get(path, headers=all_headers)
    return client.post(path, json={}, headers=all_headers)
