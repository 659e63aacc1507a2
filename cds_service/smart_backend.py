"""FHIR access when the EHR sends no token: the service as a SMART Backend Services client.

Why: a CDS client may send `fhirServer` without `fhirAuthorization` (the CDS Hooks sandbox always
does). When the operator has registered this service as a backend client of that FHIR server, the
service obtains its own access token with `client_credentials` + `private_key_jwt` (SMART App Launch
2.x "Backend Services"): a JWT signed with the registered private key, `aud` = the token endpoint
(found in `{fhirServer}/.well-known/smart-configuration` unless configured).

Tokens are cached per FHIR base until shortly before they expire. The cache is thread-safe without
holding a lock across the network call: one caller fetches, concurrent callers for the same server
wait on an Event (bounded by their own deadline) and then read the cache.

Configuration (`HER2CDS_SMART_BACKEND_CLIENTS_FILE`): a JSON list, one object per FHIR server:
    {"fhir_server": "https://ehr.example.org/fhir/r4", "client_id": "her2-cds",
     "private_key_file": "/etc/her2-cds/smart-backend.pem",          # PEM, RSA or EC (P-384/P-256)
     "kid": "her2-cds-2026", "alg": "RS384",                          # optional (alg from the key type)
     "scope": "system/Patient.read system/Observation.read ...",      # optional (default below)
     "token_url": "https://ehr.example.org/oauth2/token",             # optional (default: discovered)
     "jku": "https://cds.example.org/.well-known/jwks.json",          # optional JWT header
     "allow_insecure_http": false}                                    # dev/test only: http FHIR server / token URL
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cds_service.fhir_client import BackendTokenUnavailable
from cds_service.logging_setup import get_logger

log = get_logger("smart_backend")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME_SECONDS = 240      # SMART: exp no more than five minutes ahead; margin for clock skew
DISCOVERY_CACHE_SECONDS = 3600
#: What the service reads (services.PATIENT_RECORD + referenced Medications), as SMART v1 system scopes.
DEFAULT_SCOPE = " ".join(f"system/{t}.read" for t in (
    "Patient", "Condition", "Observation", "MedicationRequest", "MedicationStatement",
    "MedicationAdministration", "Medication"))
_ALGS = {"RSA": ("RS384", "RS256"), "P-384": ("ES384",), "P-256": ("ES256",)}


class BackendConfigError(ValueError):
    """The backend clients file is unreadable or invalid (raised at startup, never during a call)."""


@dataclass(frozen=True)
class BackendRegistration:
    fhir_server: str                 # normalised: no trailing slash
    client_id: str
    private_key: Any                 # cryptography private key object (never logged)
    alg: str
    kid: str | None = None
    scope: str = DEFAULT_SCOPE
    token_url: str | None = None
    jku: str | None = None
    allow_insecure_http: bool = False

    def __repr__(self) -> str:       # never show the key
        return f"BackendRegistration({self.fhir_server!r}, client_id={self.client_id!r}, alg={self.alg})"


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float                # time.monotonic() after which a new token is fetched


def normalise_base(url: str) -> str:
    """Scheme and host lower-cased, no trailing slash: the key a `fhirServer` is matched on."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def load_registrations(path: str | Path) -> dict[str, BackendRegistration]:
    """Registrations by normalised FHIR base, from the JSON file; raises `BackendConfigError`."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendConfigError(f"HER2CDS_SMART_BACKEND_CLIENTS_FILE {path}: {exc}") from exc
    if not isinstance(raw, list):
        raise BackendConfigError(f"{path}: expected a JSON list of registrations")
    out: dict[str, BackendRegistration] = {}
    for i, item in enumerate(raw):
        registration = _registration(item, where=f"{path}[{i}]", relative_to=Path(path).parent)
        if registration.fhir_server in out:
            raise BackendConfigError(f"{path}[{i}]: second registration for {registration.fhir_server}")
        out[registration.fhir_server] = registration
    return out


def _registration(item: Any, *, where: str, relative_to: Path) -> BackendRegistration:
    if not isinstance(item, dict):
        raise BackendConfigError(f"{where}: expected an object")
    known = {"fhir_server", "client_id", "private_key_file", "kid", "alg", "scope", "token_url", "jku",
             "allow_insecure_http"}
    unknown = set(item) - known
    if unknown:
        raise BackendConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    for name in ("fhir_server", "client_id", "private_key_file"):
        if not isinstance(item.get(name), str) or not item[name].strip():
            raise BackendConfigError(f"{where}: {name} is required")
    insecure = item.get("allow_insecure_http", False)
    if not isinstance(insecure, bool):
        raise BackendConfigError(f"{where}: allow_insecure_http must be true or false")
    key_path = Path(item["private_key_file"])
    key_path = key_path if key_path.is_absolute() else relative_to / key_path
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise BackendConfigError(f"{where}: private_key_file {key_path} is not a readable PEM private key "
                                 f"without a password ({type(exc).__name__})") from exc
    allowed = _algorithms_for(key)
    if not allowed:
        raise BackendConfigError(f"{where}: the private key must be RSA (>= 2048 bits) or EC P-384/P-256")
    alg = item.get("alg") or allowed[0]
    if alg not in allowed:
        raise BackendConfigError(f"{where}: alg {alg!r} does not fit the key (use one of {list(allowed)})")
    # Our own token is a bearer credential as much as the EHR's: the same TLS rule as for fhirAuthorization.
    _check_https(item["fhir_server"], insecure, where, "FHIR server")
    token_url = item.get("token_url")
    if token_url is not None:
        _check_https(token_url, insecure, where, "token URL")
    for name in ("kid", "scope", "jku"):
        if name in item and (not isinstance(item[name], str) or not item[name].strip()):
            raise BackendConfigError(f"{where}: {name} must be a non-empty string")
    return BackendRegistration(fhir_server=normalise_base(item["fhir_server"]), client_id=item["client_id"],
                               private_key=key, alg=alg, kid=item.get("kid"),
                               scope=item.get("scope") or DEFAULT_SCOPE, token_url=token_url,
                               jku=item.get("jku"), allow_insecure_http=insecure)


def _algorithms_for(key: Any) -> tuple[str, ...]:
    if isinstance(key, rsa.RSAPrivateKey):
        return _ALGS["RSA"] if key.key_size >= 2048 else ()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp384r1": _ALGS["P-384"], "secp256r1": _ALGS["P-256"]}.get(key.curve.name, ())
    return ()


def _check_https(url: Any, insecure_allowed: bool, where: str, what: str) -> None:
    if not isinstance(url, str):
        raise BackendConfigError(f"{where}: {what} must be a string")
    scheme = urlsplit(url).scheme.lower()
    if scheme != "https" and not (scheme == "http" and insecure_allowed):
        raise BackendConfigError(f"{where}: {what} {url!r} must be https "
                                 "(http only with allow_insecure_http, for development)")


class BackendTokens:
    """Access tokens for the registered FHIR servers, cached per server; shared by all hook calls."""

    def __init__(self, registrations: Mapping[str, BackendRegistration], session_factory: Any, *,
                 timeout: float = 1.5) -> None:
        self._registrations = dict(registrations)
        self._session_factory = session_factory          # () -> requests.Session (the pooled one)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._token_urls: dict[str, tuple[str, float]] = {}
        self._inflight: dict[str, threading.Event] = {}

    def __bool__(self) -> bool:
        return bool(self._registrations)

    def registration_for(self, fhir_server: str) -> BackendRegistration | None:
        return self._registrations.get(normalise_base(fhir_server))

    def token_for(self, fhir_server: str, *, deadline: float) -> str | None:
        """A valid access token for `fhir_server`, None when it is not registered.

        Raises `BackendTokenUnavailable` when a registered server's token cannot be had in time."""
        registration = self.registration_for(fhir_server)
        if registration is None:
            return None
        key = registration.fhir_server
        while True:
            with self._lock:
                cached = self._tokens.get(key)
                if cached is not None and time.monotonic() < cached.refresh_at:
                    return cached.value
                waiter = self._inflight.get(key)
                leader = waiter is None
                if leader:
                    waiter = self._inflight[key] = threading.Event()
            if leader:
                try:
                    token = self._obtain(registration, deadline)   # network: no lock held
                    with self._lock:
                        self._tokens[key] = token
                    return token.value
                except BackendTokenUnavailable as exc:             # the operator needs the why; no secrets in it
                    log.warning("smart_backend.token_failed", extra={"fhir_server": key, "reason": str(exc)[:200]})
                    raise
                finally:
                    with self._lock:
                        self._inflight.pop(key, None)
                    waiter.set()
            left = deadline - time.monotonic()
            if left <= 0 or not waiter.wait(left):
                raise BackendTokenUnavailable("waiting for the access token took past the FHIR deadline")
            # loop: the cache now holds the leader's token, or (it failed) this caller tries itself

    def forget(self, fhir_server: str) -> None:
        """Drop the cached token (e.g. the FHIR server answered 401 to it)."""
        with self._lock:
            self._tokens.pop(normalise_base(fhir_server), None)

    # ---- network (no lock held)

    def _obtain(self, registration: BackendRegistration, deadline: float) -> _Token:
        token_url = self._token_url(registration, deadline)
        now = int(time.time())
        claims = {"iss": registration.client_id, "sub": registration.client_id, "aud": token_url,
                  "iat": now, "exp": now + ASSERTION_LIFETIME_SECONDS, "jti": str(uuid.uuid4())}
        headers: dict[str, str] = {"typ": "JWT"}
        if registration.kid:
            headers["kid"] = registration.kid
        if registration.jku:
            headers["jku"] = registration.jku
        assertion = jwt.encode(claims, registration.private_key, algorithm=registration.alg, headers=headers)
        form = {"grant_type": "client_credentials", "scope": registration.scope,
                "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
        started = time.monotonic()
        body = self._request("POST", token_url, deadline, data=form, what="token request")
        access_token = body.get("access_token")
        token_type = body.get("token_type")
        expires_in = body.get("expires_in")
        if not isinstance(access_token, str) or not access_token:
            raise BackendTokenUnavailable("token response without access_token")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise BackendTokenUnavailable(f"token_type {str(token_type)[:20]!r} is not bearer")
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or expires_in <= 0:
            expires_in = 60                      # SMART requires expires_in; without it, assume a short life
        margin = min(60.0, expires_in * 0.2)     # "shortly before expiry": 20 %, at most a minute
        log.info("smart_backend.token", extra={"fhir_server": registration.fhir_server, "expires_in": expires_in})
        return _Token(access_token, started + expires_in - margin)

    def _token_url(self, registration: BackendRegistration, deadline: float) -> str:
        if registration.token_url:
            return registration.token_url
        with self._lock:
            cached = self._token_urls.get(registration.fhir_server)
        if cached is not None and time.monotonic() < cached[1]:
            return cached[0]
        config = self._request("GET", registration.fhir_server + "/.well-known/smart-configuration", deadline,
                               what="smart-configuration")
        url = config.get("token_endpoint")
        methods = config.get("token_endpoint_auth_methods_supported")
        if isinstance(methods, list) and "private_key_jwt" not in methods:
            raise BackendTokenUnavailable("the authorization server does not offer private_key_jwt")
        try:
            _check_https(url, registration.allow_insecure_http, "smart-configuration", "token_endpoint")
        except BackendConfigError as exc:
            raise BackendTokenUnavailable(str(exc)) from exc
        with self._lock:
            self._token_urls[registration.fhir_server] = (url, time.monotonic() + DISCOVERY_CACHE_SECONDS)
        return url

    def _request(self, method: str, url: str, deadline: float, *, what: str, **kwargs: Any) -> dict[str, Any]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BackendTokenUnavailable(f"{what}: FHIR deadline passed")
        timeout = min(self._timeout, left)
        try:
            response = self._session_factory().request(
                method, url, timeout=(timeout, timeout), allow_redirects=False,
                headers={"Accept": "application/json"}, **kwargs)
        except requests.exceptions.RequestException as exc:
            raise BackendTokenUnavailable(f"{what}: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise BackendTokenUnavailable(f"{what}: HTTP {response.status_code}", status=response.status_code)
        try:
            body = response.json()
        except ValueError as exc:
            raise BackendTokenUnavailable(f"{what}: body is not JSON") from exc
        if not isinstance(body, dict):
            raise BackendTokenUnavailable(f"{what}: body is not a JSON object")
        return body
