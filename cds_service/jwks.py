"""Trusted CDS clients and their signing keys (pinned JWK Sets from a file or a configured URL).

A CDS client's token says where its keys are (`jku`), but a service that fetched whatever URL a
token names would trust anyone. So keys are pinned per issuer by the operator: a JWKS file, or a
JWKS URL the operator configured (fetched with a timeout, cached, refreshed on an unknown `kid`
at most once per `min_refresh_seconds`). A token's `jku` is only compared with an allowlist,
never fetched.

The trusted-issuers file (`HER2CDS_TRUSTED_ISSUERS_FILE`) is a JSON list:

    [{"iss": "https://sandbox.cds-hooks.org", "jwks_file": "sandbox-jwks.json",
      "jku": "https://sandbox.cds-hooks.org/.well-known/jwks.json"},
     {"iss": "https://fhir.example.org/interconnect", "jwks_url": "https://fhir.example.org/jwks"}]

`jwks_file` paths are relative to the trusted-issuers file's folder; `jku` (a string or a list) is
optional: when given, a token whose header carries a `jku` outside that list is refused.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa

log = logging.getLogger("her2cds.jwks")

# Asymmetric algorithms only: never `none`, never HMAC (CDS Hooks 2.0 "JWT signing algorithm").
ALLOWED_ALGORITHMS = ("ES384", "RS384", "ES256", "RS256")
_EC_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1}
_MAX_JWKS_BYTES = 1024 * 1024


class TrustConfigError(ValueError):
    """The trusted-issuers file or a pinned JWKS is unusable (a startup error, not a request error)."""


@dataclass(frozen=True)
class VerificationKey:
    """One public signing key of a JWK Set, with what the JWK itself restricts it to."""

    kid: str
    key: Any                      # cryptography public key object
    declared_alg: str | None      # the JWK's `alg`, if any

    def allows(self, alg: str) -> bool:
        """Whether a token signed with `alg` may be verified with this key (no cross-type use)."""
        if alg not in ALLOWED_ALGORITHMS:
            return False
        if self.declared_alg is not None and self.declared_alg != alg:
            return False
        if alg.startswith("ES"):
            return isinstance(self.key, ec.EllipticCurvePublicKey) and isinstance(self.key.curve, _EC_CURVES[alg])
        return isinstance(self.key, rsa.RSAPublicKey)


def parse_jwks(document: Any, *, source: str) -> dict[str, VerificationKey]:
    """kid -> key for the usable signature keys of a JWK Set; unusable entries are skipped with a warning."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise TrustConfigError(f"{source}: not a JWK Set (an object with a 'keys' array)")
    keys: dict[str, VerificationKey] = {}
    for index, entry in enumerate(document["keys"]):
        where = f"{source} keys[{index}]"
        if not isinstance(entry, Mapping):
            log.warning("%s: not an object, skipped", where)
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            log.warning("%s: no 'kid', skipped (tokens select keys by kid)", where)
            continue
        if entry.get("use") not in (None, "sig"):
            continue
        ops = entry.get("key_ops")
        if isinstance(ops, list) and "verify" not in ops:
            continue
        if "d" in entry:
            log.warning("%s (kid %s): contains a private key; only its public part is used", where, kid)
        try:
            parsed = jwt.PyJWK(dict(entry))
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            log.warning("%s (kid %s): unusable key skipped: %s", where, kid, exc)
            continue
        key = parsed.key
        if hasattr(key, "public_key"):
            key = key.public_key()
        if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
            log.warning("%s (kid %s): not an EC or RSA key, skipped", where, kid)
            continue
        declared = entry.get("alg") if isinstance(entry.get("alg"), str) else None
        if kid in keys:
            log.warning("%s: duplicate kid %s, the first one is used", where, kid)
            continue
        keys[kid] = VerificationKey(kid=kid, key=key, declared_alg=declared)
    return keys


class KeySource(Protocol):
    def key_for(self, kid: str) -> VerificationKey | None:
        """The key with this kid, or None if the issuer has no such key (after any allowed refresh)."""


class FileJwks:
    """A JWK Set pinned in a file; re-read when the file changes (key rotation without a restart)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime_ns = -1
        self._keys: dict[str, VerificationKey] = {}
        try:
            self._load()
        except OSError as exc:
            raise TrustConfigError(f"cannot read JWKS file {path}: {exc}") from exc
        if not self._keys:
            raise TrustConfigError(f"JWKS file {path} holds no usable signature key")

    def _load(self) -> None:
        stat = self.path.stat()
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise TrustConfigError(f"JWKS file {self.path} is not JSON: {exc}") from exc
        self._keys = parse_jwks(document, source=str(self.path))
        self._mtime_ns = stat.st_mtime_ns

    def key_for(self, kid: str) -> VerificationKey | None:
        key = self._keys.get(kid)
        if key is not None:
            return key
        with self._lock:
            try:
                if self.path.stat().st_mtime_ns != self._mtime_ns:
                    self._load()
            except (OSError, TrustConfigError) as exc:
                log.warning("JWKS file %s could not be re-read, keeping the loaded keys: %s", self.path, exc)
            return self._keys.get(kid)


class RemoteJwks:
    """A JWK Set at an operator-configured URL: fetched with a timeout, cached, refreshed on unknown kid.

    A failed refresh keeps the keys fetched before (the issuer's server being down must not lock
    every clinician out); with no keys at all every token of that issuer is refused.
    """

    def __init__(self, url: str, *, cache_seconds: float, timeout_seconds: float = 3.0,
                 min_refresh_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 session: requests.Session | None = None) -> None:
        self.url = url
        self.cache_seconds = cache_seconds
        self.timeout_seconds = timeout_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self._clock = clock
        self._session = session or requests.Session()
        self._lock = threading.Lock()
        self._keys: dict[str, VerificationKey] | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None

    def key_for(self, kid: str) -> VerificationKey | None:
        with self._lock:
            now = self._clock()
            if self._keys is None or now - self._fetched_at >= self.cache_seconds:
                self._refresh(now)
            key = (self._keys or {}).get(kid)
            if key is None and self._may_refresh(now):
                self._refresh(now)
                key = (self._keys or {}).get(kid)
            return key

    def _may_refresh(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self.min_refresh_seconds

    def _refresh(self, now: float) -> None:
        if not self._may_refresh(now):
            return
        self._attempted_at = now
        try:
            document = self._fetch()
            keys = parse_jwks(document, source=self.url)
        except (requests.RequestException, ValueError) as exc:
            log.warning("jwks.fetch_failed: %s", type(exc).__name__,
                        extra={"jwks_url": self.url, "error": str(exc)[:300], "kept_previous_keys": bool(self._keys)})
            return
        self._keys = keys
        self._fetched_at = now
        log.info("jwks.fetched", extra={"jwks_url": self.url, "keys": len(keys)})

    def _fetch(self) -> Any:
        with self._session.get(self.url, timeout=self.timeout_seconds, stream=True,
                               headers={"Accept": "application/json, application/jwk-set+json"}) as reply:
            reply.raise_for_status()
            body = bytearray()
            deadline = time.monotonic() + 2 * self.timeout_seconds   # a slow drip must not hold the lock
            for chunk in reply.iter_content(64 * 1024):
                body += chunk
                if len(body) > _MAX_JWKS_BYTES:
                    raise ValueError("JWKS larger than 1 MiB")
                if time.monotonic() > deadline:
                    raise requests.Timeout("JWKS download too slow")
            return json.loads(bytes(body))


@dataclass(frozen=True)
class TrustedIssuer:
    iss: str
    keys: KeySource
    jku_allowlist: frozenset[str] | None = None   # None: any (unfetched) jku is tolerated

    def jku_allowed(self, jku: Any) -> bool:
        if jku is None or self.jku_allowlist is None:
            return True
        return isinstance(jku, str) and jku in self.jku_allowlist


def load_trusted_issuers(path: str | os.PathLike[str], *, cache_seconds: float = 3600,
                         clock: Callable[[], float] = time.monotonic,
                         session: requests.Session | None = None) -> dict[str, TrustedIssuer]:
    """iss -> TrustedIssuer from the trusted-issuers JSON file; raises TrustConfigError when unusable."""
    file = Path(path).expanduser()
    try:
        entries = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TrustConfigError(f"cannot read trusted-issuers file {file}: {exc}") from exc
    except ValueError as exc:
        raise TrustConfigError(f"trusted-issuers file {file} is not JSON: {exc}") from exc
    if not isinstance(entries, list):
        raise TrustConfigError(f"{file}: expected a JSON list of {{iss, jwks_file | jwks_url, jku?}}")
    issuers: dict[str, TrustedIssuer] = {}
    for index, entry in enumerate(entries):
        where = f"{file}[{index}]"
        if not isinstance(entry, Mapping):
            raise TrustConfigError(f"{where}: not an object")
        unknown = set(entry) - {"iss", "jwks_file", "jwks_url", "jku", "comment"}
        if unknown:
            raise TrustConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
        iss = entry.get("iss")
        if not isinstance(iss, str) or not iss:
            raise TrustConfigError(f"{where}: 'iss' must be a non-empty string")
        if iss in issuers:
            raise TrustConfigError(f"{where}: issuer {iss} listed twice")
        jwks_file, jwks_url = entry.get("jwks_file"), entry.get("jwks_url")
        if (jwks_file is None) == (jwks_url is None):
            raise TrustConfigError(f"{where}: give exactly one of 'jwks_file' and 'jwks_url'")
        source: KeySource
        if jwks_file is not None:
            if not isinstance(jwks_file, str) or not jwks_file:
                raise TrustConfigError(f"{where}: 'jwks_file' must be a path")
            key_path = Path(jwks_file).expanduser()
            if not key_path.is_absolute():
                key_path = file.resolve().parent / key_path
            source = FileJwks(key_path)
        else:
            if not isinstance(jwks_url, str) or not jwks_url.startswith(("https://", "http://")):
                raise TrustConfigError(f"{where}: 'jwks_url' must be an http(s) URL")
            source = RemoteJwks(jwks_url, cache_seconds=cache_seconds, clock=clock, session=session)
        issuers[iss] = TrustedIssuer(iss=iss, keys=source, jku_allowlist=_jku_allowlist(entry.get("jku"), where))
    return issuers


def _jku_allowlist(value: Any, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TrustConfigError(f"{where}: 'jku' must be a URL or a list of URLs")
    return frozenset(value)
