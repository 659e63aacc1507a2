"""Who may call the service: verification of the CDS client's bearer JWT (CDS Hooks 2.0 "Trusting CDS Clients").

Every check of the spec's verification checklist, plus what real clients need (extra claims such
as Epic's `sub`, `nbf`, clock skew):
  header: `alg` one of ES384/RS384/ES256/RS256 (never `none`, never HMAC), `typ` JWT, `kid`
          present and in the issuer's pinned JWKS, `jku` (if sent) in the issuer's allowlist —
          never fetched, no `crit` extensions;
  claims: `iss` trusted, `aud` = the exact URL invoked under HER2CDS_PUBLIC_BASE_URL (never derived
          from the Host header), `exp`/`iat` required, `nbf` honoured (leeway for all three), a
          lifetime `exp - iat` of at most 5 minutes and `exp` at most 5 minutes ahead (plus leeway),
          `jti` required and never seen before within the token lifetime.
The replay store is a table in the service database, shared by all workers and instances.

Any failure is a bare 401 (`errors.Unauthorized`): the reason is logged here, never sent to the caller,
and the token itself is never logged.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import flask
import jwt
from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError

from .config import Settings
from .errors import Unauthorized
from .jwks import ALLOWED_ALGORITHMS, TrustedIssuer, load_trusted_issuers
from .paths import invoked_path, invoked_url
from .storage import Database, used_jwt_ids_table

log = logging.getLogger("her2cds.auth")   # under the service logger: JSON lines

MAX_TOKEN_CHARS = 16 * 1024
MAX_ISS_CHARS = 512
MAX_JTI_CHARS = 256
# CDS Hooks clients mint a token per call; a token living longer is a stolen-token window (and its jti
# would have to be kept that long). Both limits get the clock-skew leeway on top.
MAX_LIFETIME_SECONDS = 300
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")


class ReplayStore:
    """JWT ids already used, in the shared database: the first use of (iss, jti) wins, any later one is a replay.

    Rows are kept until the token could no longer be accepted (`exp` + leeway) and purged
    opportunistically, at most once per `purge_interval_seconds` per process.
    """

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time,
                 purge_interval_seconds: float = 60.0) -> None:
        self.db = db
        self._clock = clock
        self._purge_interval = purge_interval_seconds
        self._last_purge = float("-inf")
        self._lock = threading.Lock()

    def first_use(self, iss: str, jti: str, expires_at: int) -> bool:
        """Record (iss, jti); False when it was already recorded and has not expired (a replay)."""
        now = int(self._clock())
        self._maybe_purge(now)
        row = {"iss": iss, "jti": jti, "expires_at": int(expires_at)}
        try:
            with self.db.begin() as conn:
                conn.execute(insert(used_jwt_ids_table), [row])
            return True
        except IntegrityError:
            pass
        # The id is known. Only a row whose token can no longer be accepted may be reused.
        with self.db.begin() as conn:
            gone = conn.execute(delete(used_jwt_ids_table).where(
                used_jwt_ids_table.c.iss == iss, used_jwt_ids_table.c.jti == jti,
                used_jwt_ids_table.c.expires_at < now)).rowcount
        if not gone:
            return False
        try:
            with self.db.begin() as conn:
                conn.execute(insert(used_jwt_ids_table), [row])
            return True
        except IntegrityError:
            return False

    def _maybe_purge(self, now: int) -> None:
        with self._lock:
            if now - self._last_purge < self._purge_interval:
                return
            self._last_purge = now
        with self.db.begin() as conn:
            purged = conn.execute(delete(used_jwt_ids_table).where(used_jwt_ids_table.c.expires_at < now)).rowcount
        if purged:
            log.debug("auth.jti_purged", extra={"purged": purged})


class Authenticator:
    """Checks the `Authorization: Bearer <JWT>` of a request according to `settings.auth_mode`.

    `required`: a valid token is mandatory (the only production mode); `off`: everything is accepted
    (demo only, loopback bind only; the app factory says so loudly at startup). There is no
    "optional" mode: an unauthenticated call must never make the service read patient data.
    """

    def __init__(self, settings: Settings, db: Database, *,
                 issuers: Mapping[str, TrustedIssuer] | None = None,
                 replay_store: ReplayStore | None = None) -> None:
        self.mode = settings.auth_mode
        self.leeway = int(settings.jwt_leeway_seconds)
        self.public_base_url = settings.public_base_url.rstrip("/") if settings.public_base_url else None
        if self.mode == "required" and not self.public_base_url:
            raise ValueError("HER2CDS_PUBLIC_BASE_URL is required with HER2CDS_AUTH_MODE=required: the JWT "
                             "audience must be the URL the client invoked, never one derived from the Host header")
        if issuers is None:
            issuers = (load_trusted_issuers(settings.trusted_issuers_file, cache_seconds=settings.jwks_cache_seconds,
                                            max_stale_seconds=settings.jwks_max_stale_seconds,
                                            min_refresh_seconds=settings.jwks_refresh_seconds)
                       if settings.trusted_issuers_file and self.mode != "off" else {})
        self.issuers: Mapping[str, TrustedIssuer] = dict(issuers)
        self.replay_store = replay_store or ReplayStore(db)
        if self.mode != "off" and not self.issuers:
            log.error("auth.no_trusted_issuers: HER2CDS_AUTH_MODE=%s but HER2CDS_TRUSTED_ISSUERS_FILE names no "
                      "trusted issuer; every token will be refused", self.mode, extra={"auth_mode": self.mode})
        elif self.mode != "off":
            log.info("auth.configured", extra={"auth_mode": self.mode, "trusted_issuers": sorted(self.issuers)})

    def audience_for(self, request: flask.Request) -> str:
        """The exact URL the client invoked, as it must appear in `aud` (HER2CDS_PUBLIC_BASE_URL + path).

        Extra slashes the client sent (`/cds-services//id`, routed as `/cds-services/id`) are kept."""
        if self.public_base_url:
            return self.public_base_url + (invoked_path(request.environ) or request.path)
        return invoked_url(request.environ)     # only reachable with auth off, where nothing is checked

    def fhir_servers_for(self, iss: str | None) -> tuple[str, ...]:
        """The FHIR bases the client `iss` may name in `fhirServer` (none for an unknown issuer)."""
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        return issuer.fhir_servers if issuer is not None else ()

    def authenticate(self, request: flask.Request) -> dict[str, Any] | None:
        """The verified claims if the request may proceed (None with auth off); raise `Unauthorized` otherwise."""
        if self.mode == "off":
            return None
        header = request.headers.get("Authorization")
        if header is None:
            self._reject("missing-token", "no Authorization header", request)
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            self._reject("malformed-header", "Authorization is not 'Bearer <token>'", request)
        return self.verify(token, audience=self.audience_for(request), request=request)

    def verify(self, token: str, *, audience: str, request: flask.Request | None = None) -> dict[str, Any]:
        """The verified claims of `token` for `audience`; raises `Unauthorized` on any failure."""
        iss = kid = unverified = None
        try:
            if len(token) > MAX_TOKEN_CHARS:
                raise _Refused("malformed-token", f"token longer than {MAX_TOKEN_CHARS} characters")
            header = jwt.get_unverified_header(token)
            alg, kid = header.get("alg"), header.get("kid")
            if alg not in ALLOWED_ALGORITHMS:
                raise _Refused("algorithm", f"alg {alg!r} not allowed")
            if not isinstance(header.get("typ"), str) or header["typ"].upper() != "JWT":
                raise _Refused("malformed-token", f"typ {header.get('typ')!r} is not JWT")
            if "crit" in header:
                raise _Refused("malformed-token", "crit header extensions are not supported")
            if not isinstance(kid, str) or not kid:
                raise _Refused("unknown-key", "no kid in the header")
            unverified = jwt.decode(token, options={"verify_signature": False})
            iss = unverified.get("iss")
            issuer = self.issuers.get(iss) if isinstance(iss, str) else None
            if issuer is None:
                raise _Refused("untrusted-issuer", "issuer not trusted")
            if not issuer.jku_allowed(header.get("jku")):
                raise _Refused("jku-not-allowed", f"jku {header.get('jku')!r} not in the issuer's allowlist")
            key = issuer.keys.key_for(kid)
            if key is None:
                raise _Refused("unknown-key", "kid not in the issuer's JWKS")
            if not key.allows(alg):
                raise _Refused("algorithm", f"key {kid} may not verify {alg}")
            claims = jwt.decode(token, key.key, algorithms=[alg], audience=audience, issuer=iss,
                                leeway=self.leeway, options={"require": list(REQUIRED_CLAIMS)})
            jti = claims.get("jti")
            if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS or len(iss) > MAX_ISS_CHARS:
                raise _Refused("missing-claim", "jti missing, empty or too long")
            if _number(claims["exp"]) - _number(claims["iat"]) > MAX_LIFETIME_SECONDS + self.leeway:
                raise _Refused("lifetime",
                               f"token lifetime exp - iat over {MAX_LIFETIME_SECONDS} s (+{self.leeway} s leeway)")
            if _number(claims["exp"]) > time.time() + MAX_LIFETIME_SECONDS + self.leeway:
                raise _Refused("lifetime", f"exp more than {MAX_LIFETIME_SECONDS} s (+{self.leeway} s leeway) ahead")
        except _Refused as refused:
            self._reject(refused.kind, refused.reason, request, iss=iss, kid=kid)
        except jwt.InvalidAudienceError as exc:
            presented = unverified.get("aud") if isinstance(unverified, dict) else None
            self._reject("audience",
                         f"InvalidAudienceError: {exc}: expected {audience!r}, presented {_short(presented)!r}",
                         request, iss=iss, kid=kid)
        except jwt.PyJWTError as exc:
            self._reject(_jwt_error_kind(exc), f"{type(exc).__name__}: {exc}", request, iss=iss, kid=kid)
        # Any other exception is a bug in our code: a 500 with a logged traceback, never a 401 that blames the caller.
        if not self.replay_store.first_use(iss, jti, int(claims["exp"]) + self.leeway):
            self._reject("replay", "jti replayed", request, iss=iss, kid=kid)
        log.debug("auth.accepted", extra={"iss": iss, "kid": kid, "sub": _short(claims.get("sub"))})
        return claims

    def _reject(self, kind: str, reason: str, request: flask.Request | None, *, iss: Any = None,
                kid: Any = None) -> NoReturn:
        where = {"http_method": request.method, "path": request.path} if request is not None else {}
        log.warning("auth.rejected: %s", reason, extra={"status": 401, "reason": reason, "kind": kind,
                                                         "iss": _short(iss), "kid": _short(kid), **where})
        raise Unauthorized(reason, kind=kind)


class _Refused(Exception):
    """A refusal found by our own checks: `kind` is one of REFUSAL_KINDS (the metric's label), `reason` the log text."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.reason = kind, reason


# PyJWT's exceptions -> refusal kind, most specific first (InvalidSignatureError is a DecodeError).
_JWT_ERROR_KINDS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not-yet-valid"),
    (jwt.InvalidIssuedAtError, "not-yet-valid"),
    (jwt.InvalidAudienceError, "audience"),
    (jwt.MissingRequiredClaimError, "missing-claim"),
    (jwt.InvalidSignatureError, "signature"),
    (jwt.InvalidAlgorithmError, "algorithm"),
    (jwt.DecodeError, "malformed-token"),
)

#: Every kind a refusal may have: the `reason` label of her2cds_auth_rejections_total.
REFUSAL_KINDS = frozenset({"missing-token", "malformed-header", "malformed-token", "algorithm", "unknown-key",
                           "untrusted-issuer", "jku-not-allowed", "missing-claim", "lifetime", "audience", "replay",
                           "other"} | {kind for _, kind in _JWT_ERROR_KINDS})


def _jwt_error_kind(exc: jwt.PyJWTError) -> str:
    return next((kind for cls, kind in _JWT_ERROR_KINDS if isinstance(exc, cls)), "other")


def _number(value: Any) -> float:
    """A NumericDate claim as a number (PyJWT has checked exp and iat are numbers)."""
    return float(value)


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + "..."
