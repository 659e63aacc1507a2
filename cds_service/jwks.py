"""Trusted CDS clients and their signing keys (pinned JWK Sets from a file or a configured URL).

A CDS client's token says where its keys are (`jku`), but a service that fetched whatever URL a
token names would trust anyone. So keys are pinned per issuer by the operator: a JWKS file, or a
JWKS URL the operator configured (fetched with a timeout, cached, refreshed on an unknown `kid`
at most once per `min_refresh_seconds`). A token's `jku` is only compared with an allowlist,
never fetched.

The trusted-issuers file (`HER2CDS_TRUSTED_ISSUERS_FILE`) is a JSON list:

    [{"iss": "https://sandbox.cds-hooks.org", "jwks_file": "sandbox-jwks.json",
      "jku": "https://sandbox.cds-hooks.org/.well-known/jwks.json"},
     {"iss": "https://fhir.example.org/interconnect", "jwks_url": "https://fhir.example.org/jwks",
      "fhir_servers": ["https://fhir.example.org/interconnect/api/FHIR/R4"]}]

`jwks_file` paths are relative to the trusted-issuers file's folder; `jwks_url` must be https; `jku`
(a string or a list) is optional: when given, a token whose header carries a `jku` outside that list
is refused. `fhir_servers` lists the FHIR bases that client's calls may name in `fhirServer`
(`fhir_allowlist`: exact bases, `<base>/*` prefixes or `*`, the last two for public addresses only);
without it, only calls that need no FHIR server (complete prefetch) are served for that client.
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

from .fhir_allowlist import FhirAllowlistError, parse_allowlist

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
    """A JWK Set at an operator-configured https URL: fetched with a timeout, cached, refreshed on unknown kid.

    - Refreshes are rate-limited (at most one fetch per `min_refresh_seconds` for this issuer, so a
      flood of tokens with made-up kids cannot make us hammer the issuer's server).
    - The lock is never held across the network call: while one thread fetches, the others go on
      with the keys already known (a thread that has no key at all waits for that one fetch, bounded).
    - A failed refresh keeps the keys fetched before (the issuer's server being down must not lock
      every clinician out), but only up to `max_stale_seconds` after they were fetched: a key the
      issuer has withdrawn must not stay trusted for ever because its JWKS endpoint is unreachable.
    - No redirects, no proxy environment variables: the operator configured exactly this URL.
    """

    def __init__(self, url: str, *, cache_seconds: float, timeout_seconds: float = 3.0,
                 min_refresh_seconds: float = 30.0, max_stale_seconds: float = 6 * 3600,
                 clock: Callable[[], float] = time.monotonic,
                 session: requests.Session | None = None) -> None:
        self.url = url
        self.cache_seconds = cache_seconds
        self.timeout_seconds = timeout_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self.max_stale_seconds = max(max_stale_seconds, cache_seconds)
        self._clock = clock
        if session is None:
            session = requests.Session()
        session.trust_env = False          # no HTTP(S)_PROXY / netrc: the key fetch goes where configured
        self._session = session
        self._lock = threading.Lock()
        self._keys: dict[str, VerificationKey] | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None
        self._fetching: threading.Event | None = None     # set when the fetch in flight ends
        self._stale_logged_for: float | None = None

    def key_for(self, kid: str) -> VerificationKey | None:
        now = self._clock()
        with self._lock:
            key = self._usable_keys(now).get(kid)
            due = self._keys is None or now - self._fetched_at >= self.cache_seconds or key is None
            in_flight = self._fetching
            fetch_here = due and in_flight is None and self._may_refresh(now)
            if fetch_here:
                self._attempted_at = now
                in_flight = self._fetching = threading.Event()
        if fetch_here:
            keys = None
            try:
                keys = self._fetch_keys()          # outside the lock
            finally:
                with self._lock:
                    if keys is not None:
                        self._keys, self._fetched_at = keys, self._clock()
                    self._fetching = None
                in_flight.set()
        elif key is None and in_flight is not None:
            in_flight.wait(2 * self.timeout_seconds + 1)     # the fetch in flight may bring this kid
        with self._lock:
            return self._usable_keys(self._clock()).get(kid)

    def _usable_keys(self, now: float) -> dict[str, VerificationKey]:
        if self._keys is None:
            return {}
        if now - self._fetched_at > self.max_stale_seconds:
            if self._stale_logged_for != self._fetched_at:      # once per key set, not once per token
                self._stale_logged_for = self._fetched_at
                log.warning("jwks.stale_keys_dropped", extra={"jwks_url": self.url,
                                                               "age_seconds": round(now - self._fetched_at)})
            return {}
        return self._keys

    def _may_refresh(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self.min_refresh_seconds

    def _fetch_keys(self) -> dict[str, VerificationKey] | None:
        try:
            keys = parse_jwks(self._fetch(), source=self.url)
        except (requests.RequestException, ValueError) as exc:
            log.warning("jwks.fetch_failed: %s", type(exc).__name__,
                        extra={"jwks_url": self.url, "error": str(exc)[:300], "kept_previous_keys": bool(self._keys)})
            return None
        log.info("jwks.fetched", extra={"jwks_url": self.url, "keys": len(keys)})
        return keys

    def _fetch(self) -> Any:
        with self._session.get(self.url, timeout=self.timeout_seconds, stream=True, allow_redirects=False,
                               headers={"Accept": "application/json, application/jwk-set+json"}) as reply:
            if reply.is_redirect or reply.status_code != 200:
                raise requests.HTTPError(f"HTTP {reply.status_code} (redirects are not followed)")
            body = bytearray()
            deadline = time.monotonic() + 2 * self.timeout_seconds   # a slow drip must not stall the refresh
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
    fhir_servers: tuple[str, ...] = ()            # FHIR bases this client's calls may name (fhir_allowlist)

    def jku_allowed(self, jku: Any) -> bool:
        if jku is None or self.jku_allowlist is None:
            return True
        return isinstance(jku, str) and jku in self.jku_allowlist


def load_trusted_issuers(path: str | os.PathLike[str], *, cache_seconds: float = 3600,
                         max_stale_seconds: float = 6 * 3600, min_refresh_seconds: float = 30.0,
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
        unknown = set(entry) - {"iss", "jwks_file", "jwks_url", "jku", "fhir_servers", "comment"}
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
            if not isinstance(jwks_url, str) or not jwks_url.lower().startswith("https://"):
                raise TrustConfigError(f"{where}: 'jwks_url' must be an https URL (keys fetched over plain "
                                       "http could be swapped on the way; pin a jwks_file instead)")
            source = RemoteJwks(jwks_url, cache_seconds=cache_seconds, clock=clock, session=session,
                                max_stale_seconds=max_stale_seconds, min_refresh_seconds=min_refresh_seconds)
        issuers[iss] = TrustedIssuer(iss=iss, keys=source, jku_allowlist=_jku_allowlist(entry.get("jku"), where),
                                     fhir_servers=_fhir_servers(entry.get("fhir_servers"), where))
    return issuers


def _fhir_servers(value: Any, where: str) -> tuple[str, ...]:
    """The issuer's FHIR-server allowlist, normalised; missing means none (prefetch-only calls)."""
    if value is None:
        log.warning("%s: no 'fhir_servers'; this client's calls naming a fhirServer will be refused", where)
        return ()
    if not isinstance(value, list):
        raise TrustConfigError(f"{where}: 'fhir_servers' must be a list of FHIR base URLs")
    try:
        return parse_allowlist(value, where=f"{where} fhir_servers")
    except FhirAllowlistError as exc:
        raise TrustConfigError(str(exc)) from None


def _jku_allowlist(value: Any, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TrustConfigError(f"{where}: 'jku' must be a URL or a list of URLs")
    return frozenset(value)
