"""Service configuration: one frozen object built from environment variables (documented defaults).

`create_app(config)` takes a mapping of overrides (field name -> value) on top of the environment,
so tests build apps without touching `os.environ`. Every variable is listed in the README.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

AUTH_MODES = ("required", "off")   # no "optional": an unauthenticated caller must never reach patient data
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_DATA_DIR = "/var/lib/her2-cds"            # the default SQLite file lives here (created 0700, file 0600)


@dataclass(frozen=True)
class Settings:
    # --- listening (used by `her2-cds serve`)
    host: str = "127.0.0.1"                       # HER2CDS_HOST
    port: int = 8080                              # HER2CDS_PORT
    workers: int = 2                              # HER2CDS_WORKERS
    threads: int = 2                              # HER2CDS_THREADS: gthread threads per worker (slow clients hold a thread, not a worker; more interleaved calls cost CPU)
    malloc_arenas: int = 2                        # HER2CDS_MALLOC_ARENAS: glibc malloc arenas per process under `serve` (0: glibc's default, 8 per core); MALLOC_ARENA_MAX, when set, wins
    # --- security
    auth_mode: str = "required"                   # HER2CDS_AUTH_MODE: required | off (demo only; loopback bind only)
    trusted_issuers_file: str | None = None       # HER2CDS_TRUSTED_ISSUERS_FILE: JSON list of {iss, jwks_file|jwks_url, jku?, fhir_servers}
    public_base_url: str | None = None            # HER2CDS_PUBLIC_BASE_URL: e.g. https://cds.example.org (the JWT aud; mandatory with auth required)
    jwt_leeway_seconds: int = 60                  # HER2CDS_JWT_LEEWAY_SECONDS: clock skew allowed on exp/iat/nbf
    jwks_cache_seconds: int = 3600                # HER2CDS_JWKS_CACHE_SECONDS: how long a fetched JWKS is used before a refresh
    jwks_max_stale_seconds: int = 21600           # HER2CDS_JWKS_MAX_STALE_SECONDS: keys fetched longer ago than this are dropped when refreshes fail
    jwks_refresh_seconds: int = 30                # HER2CDS_JWKS_REFRESH_SECONDS: at most one JWKS fetch per issuer per this (unknown kid)
    allow_insecure_fhir: bool = False             # HER2CDS_ALLOW_INSECURE_FHIR: accept fhirAuthorization with an http:// fhirServer (demo only)
    cors_origins: str = ""                        # HER2CDS_CORS_ORIGINS: none by default; comma-separated origins, or "*" (demo)
    # --- storage
    feedback_db_url: str = f"sqlite:///{DEFAULT_DATA_DIR}/her2cds.sqlite3"   # HER2CDS_FEEDBACK_DB_URL (SQLAlchemy URL; also holds the JWT replay store)
    retention_days: int = 365                     # HER2CDS_RETENTION_DAYS: issued cards and feedback older than this are purged
    purge_interval_seconds: int = 3600            # HER2CDS_PURGE_INTERVAL_SECONDS: how often each worker purges in the background
    # --- FHIR access
    fhir_timeout_seconds: float = 1.5             # HER2CDS_FHIR_TIMEOUT_SECONDS: per HTTP request to the FHIR server
    fhir_deadline_seconds: float = 2.0            # HER2CDS_FHIR_DEADLINE_SECONDS: all FHIR reads of one hook call
    fhir_max_pages: int = 20                      # HER2CDS_FHIR_MAX_PAGES: link[next] pages followed per query
    fhir_max_workers: int = 8                     # HER2CDS_FHIR_MAX_WORKERS: concurrent FHIR queries per call
    smart_backend_clients_file: str | None = None  # HER2CDS_SMART_BACKEND_CLIENTS_FILE: JSON list of SMART Backend Services registrations (token when the EHR sends none)
    fhir_max_response_bytes: int = 16 * 1024 * 1024   # HER2CDS_FHIR_MAX_RESPONSE_BYTES: one FHIR response (decoded)
    fhir_max_call_bytes: int = 64 * 1024 * 1024   # HER2CDS_FHIR_MAX_CALL_BYTES: all FHIR responses of one hook call
    fhir_max_concurrent_reads: int = 32           # HER2CDS_FHIR_MAX_CONCURRENT_READS: FHIR requests in flight per process
    # --- HTTP
    max_body_bytes: int = 1024 * 1024             # HER2CDS_MAX_BODY_BYTES: larger requests get 413
    log_level: str = "INFO"                       # HER2CDS_LOG_LEVEL
    # --- clinical policy (see cards/knowledge)
    tfi_policy: str | None = None                 # HER2CDS_TFI_POLICY: an id of the knowledge file's tfi_policies (None: its default)
    list_post_seed_regimens: bool = True          # HER2CDS_LIST_POST_SEED_REGIMENS: list later-evidence regimens as alternatives
    plan_at_progression_card: bool = False        # HER2CDS_PLAN_AT_PROGRESSION_CARD: next-regimen card while the line is ongoing
    # --- explanation view (the SMART app at /app; see cds_service/explain)
    fhir_servers: str = ""                        # HER2CDS_FHIR_SERVERS: comma-separated FHIR bases the app may read (its `iss` allowlist), and hook calls may name with auth off; empty: none
    app_client_id: str = "her2-cds"               # HER2CDS_APP_CLIENT_ID: the app's client_id registered at the EHR
    app_client_secret: str | None = None          # HER2CDS_APP_CLIENT_SECRET: confidential client (client_secret_basic); unset: public client (PKCE only)
    app_frame_ancestors: str = "'self'"           # HER2CDS_APP_FRAME_ANCESTORS: CSP frame-ancestors, e.g. "https://ehr.example.org" (EHRs embedding the app)
    app_cookie_samesite: str = "Lax"              # HER2CDS_APP_COOKIE_SAMESITE: Lax | Strict | None (None: cross-site iframe in the EHR; https only)
    app_session_seconds: int = 3600               # HER2CDS_APP_SESSION_SECONDS: lifetime of an app session (and of its access token at most)
    # --- operations
    metrics_token: str | None = field(default=None, repr=False)   # HER2CDS_METRICS_TOKEN: /metrics needs "Bearer <token>"; unset: /metrics is off (404)

    def __post_init__(self) -> None:
        if self.auth_mode not in AUTH_MODES:
            raise ValueError(f"HER2CDS_AUTH_MODE must be one of {AUTH_MODES}, not {self.auth_mode!r}")
        if self.auth_mode == "off" and not is_loopback_host(self.host):
            raise ValueError(f"HER2CDS_AUTH_MODE=off is for the demo only and needs a loopback HER2CDS_HOST, "
                             f"not {self.host!r}")
        if self.tfi_policy is not None:
            from cards import load_knowledge   # the policies are defined in the knowledge file, nowhere else
            known = sorted(load_knowledge().tfi_policies)
            if self.tfi_policy not in known:
                raise ValueError(f"HER2CDS_TFI_POLICY must be one of {known} (cards/knowledge tfi_policies), "
                                 f"not {self.tfi_policy!r}")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ValueError(f"HER2CDS_LOG_LEVEL must be one of {LOG_LEVELS}, not {self.log_level[:40]!r}")
        if self.retention_days < 1:
            raise ValueError(f"HER2CDS_RETENTION_DAYS must be at least 1, not {self.retention_days!r}")
        if self.purge_interval_seconds < 1:
            raise ValueError(f"HER2CDS_PURGE_INTERVAL_SECONDS must be at least 1, not {self.purge_interval_seconds!r}")
        if self.app_cookie_samesite not in ("Lax", "Strict", "None"):
            raise ValueError(f"HER2CDS_APP_COOKIE_SAMESITE must be Lax, Strict or None, not {self.app_cookie_samesite!r}")

    @property
    def fhir_server_list(self) -> list[str]:
        """HER2CDS_FHIR_SERVERS as a list (the allowlist used when auth is off)."""
        return [s.strip() for s in self.fhir_servers.split(",") if s.strip()]

    @property
    def cors_origin_list(self) -> list[str] | str:
        value = self.cors_origins.strip()
        if value == "*":
            return "*"
        return [o.strip() for o in value.split(",") if o.strip()]


def is_loopback_host(host: str) -> bool:
    """Whether a listen address is loopback only (`localhost`, 127.0.0.0/8, ::1); `0.0.0.0` and names are not."""
    value = (host or "").strip().strip("[]")
    if value.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(value).is_loopback
    except ValueError:
        return False


def _convert(name: str, kind: Any, raw: str) -> Any:
    """The typed value of variable `name`; ValueError naming the variable for anything not clearly valid
    (a typo such as `ture` must stop start-up, not silently mean false)."""
    if kind in (bool, "bool"):
        return _parse_bool(name, raw, TRUE_WORDS, FALSE_WORDS)
    try:
        if kind in (int, "int"):
            return int(raw.strip())
        if kind in (float, "float"):
            return float(raw.strip())
    except ValueError:
        raise ValueError(f"{name} must be a number ({kind if isinstance(kind, str) else kind.__name__}), "
                         f"not {raw[:40]!r}") from None
    return raw


#: Boolean settings that switch clinical behaviour take only true/false/1/0 (any case), not yes/on/no/off.
STRICT_BOOL_FIELDS = frozenset({"plan_at_progression_card"})
STRICT_TRUE_WORDS = ("1", "true")
STRICT_FALSE_WORDS = ("0", "false")


def _parse_bool(name: str, raw: str, true_words: tuple[str, ...], false_words: tuple[str, ...]) -> bool:
    word = raw.strip().lower()
    if word in true_words:
        return True
    if word in false_words:
        return False
    raise ValueError(f"{name} must be one of {true_words + false_words}, not {raw[:40]!r}")


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `HER2CDS_<FIELD>` environment variables, then `overrides` (field names)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        name = f"HER2CDS_{f.name.upper()}"
        raw = env.get(name)
        if raw is not None and raw != "":
            kind = f.type if not isinstance(f.type, str) else f.type.split(" |")[0]
            values[f.name] = (_parse_bool(name, raw, STRICT_TRUE_WORDS, STRICT_FALSE_WORDS)
                              if f.name in STRICT_BOOL_FIELDS else _convert(name, kind, raw))
    settings = Settings(**values)
    if overrides:
        unknown = set(overrides) - {f.name for f in fields(Settings)}
        if unknown:
            raise ValueError(f"unknown setting(s): {sorted(unknown)}")
        settings = replace(settings, **dict(overrides))
    return settings
