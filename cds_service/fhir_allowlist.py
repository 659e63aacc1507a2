"""Which FHIR servers a caller may make this service read from (server-side request forgery guard).

A CDS client names the FHIR server in `fhirServer`; a service that read from whatever URL a request
names would fetch from the hospital's internal network on behalf of anyone who can call it, and put
what it read (a patient's record) into the cards. So every client (trusted issuer) has an allowlist
of FHIR bases chosen by the operator, and nothing is read from a base outside it.

Allowlist entries (`fhir_servers` of a trusted-issuers entry, or `HER2CDS_FHIR_SERVERS` with auth off):
- an exact base URL, e.g. `https://ehr.example.org/fhir/r4`: that base (after normalising scheme and
  host case, the default port and a trailing slash), wherever its host resolves, private networks
  and loopback included (the operator named it);
- a prefix ending in `/*`, e.g. `https://fhir.example.org/tenants/*`: any base under that origin and path;
- `*`: any http(s) base.
A base matched only by a prefix or `*` must resolve to public addresses only: loopback, private
(RFC 1918, fc00::/7), link-local (169.254.0.0/16, fe80::/10), shared, reserved and multicast ranges
are refused. Because DNS can answer differently at connect time (DNS rebinding), the session used for
such bases checks the address again when it connects and connects to the address it checked
(`PublicOnlyAdapter`).

`check_fhir_server(base_url, allowed)` is the one API (the SMART app checks its launch `iss` with it too).
"""
from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_DEFAULT_PORTS = {"http": 80, "https": 443}

Resolver = Callable[[str, int], list[str]]


class FhirServerNotAllowed(Exception):
    """The named FHIR server may not be read from. `reason` is log-safe (no patient data, no token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FhirAllowlistError(ValueError):
    """An allowlist entry is not usable (a start-up error, not a request error)."""


@dataclass(frozen=True)
class Allowance:
    """How a base was allowed: `exact` (listed as it is: any address) or via a pattern (public addresses only)."""

    base: str
    exact: bool


def normalize_base(url: str) -> str:
    """`scheme://host[:port]/path` with lower-case scheme and host, no default port, no trailing slash.

    Raises FhirServerNotAllowed for anything that is not a plain http(s) base (user info, query,
    fragment, no host), so `https://ehr@evil` or `http://evil#@ehr` cannot pass for a listed base.
    """
    if not isinstance(url, str) or not url or len(url) > 2048 or any(c.isspace() for c in url):
        raise FhirServerNotAllowed("fhirServer is not a URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FhirServerNotAllowed("fhirServer is not a valid URL") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise FhirServerNotAllowed(f"fhirServer scheme {scheme[:16]!r} is not http(s)")
    if not parts.hostname or "@" in parts.netloc:
        raise FhirServerNotAllowed("fhirServer has no host, or carries user info")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise FhirServerNotAllowed("fhirServer carries a query or fragment")
    host = parts.hostname.lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def parse_allowlist(entries: Iterable[str], *, where: str = "fhir_servers") -> tuple[str, ...]:
    """The entries, normalised (`*`, `<base>/*` prefixes or exact bases); FhirAllowlistError when one is unusable."""
    out: list[str] = []
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            raise FhirAllowlistError(f"{where}: entries must be non-empty strings")
        entry = entry.strip()
        try:
            if entry == "*":
                out.append("*")
            elif entry.endswith("/*"):
                out.append(normalize_base(entry[:-2]) + "/*")
            else:
                out.append(normalize_base(entry))
        except FhirServerNotAllowed as exc:
            raise FhirAllowlistError(f"{where}: {entry[:120]!r}: {exc.reason}") from None
    return tuple(out)


def _matches_pattern(base: str, pattern: str) -> bool:
    if pattern == "*":
        return True
    if not pattern.endswith("/*"):
        return False
    prefix = pattern[:-2]
    return base == prefix or base.startswith(prefix + "/")


def is_public_address(address: str) -> bool:
    """Whether an IP address is globally routable (not loopback, private, link-local, shared, reserved...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


DNS_TIMEOUT_SECONDS = 2.0


def resolve(host: str, port: int, timeout: float = DNS_TIMEOUT_SECONDS) -> list[str]:
    """Every address `host` resolves to (an IP literal resolves to itself).

    `getaddrinfo` takes no timeout and a slow or hostile name server can hold it for many seconds, which
    would hold the hook call (and a worker thread) with it; so the lookup runs on its own daemon thread
    and a lookup that has not answered within `timeout` seconds is a `TimeoutError` (the thread ends
    when the resolver gives up).
    """
    answer: list[list[str] | BaseException] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            answer.append([str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)])
        except BaseException as exc:   # handed to the caller below
            answer.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name="her2cds-dns", daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError(f"DNS lookup took over {timeout:g} s")
    if isinstance(answer[0], BaseException):
        raise answer[0]
    return answer[0]


def public_addresses(host: str, port: int, resolver: Resolver | None = None) -> list[str]:
    """The addresses of `host`, all public; FhirServerNotAllowed if it does not resolve or any is not public."""
    try:
        addresses = (resolver or resolve)(host.strip("[]"), port)
    except (OSError, UnicodeError) as exc:
        raise FhirServerNotAllowed(f"fhirServer host does not resolve ({type(exc).__name__})") from None
    if not addresses:
        raise FhirServerNotAllowed("fhirServer host does not resolve")
    for address in addresses:
        if not is_public_address(address):
            raise FhirServerNotAllowed(
                f"fhirServer resolves to a non-public address ({address}) and is not listed as an exact base")
    return addresses


def allowance(base_url: str, allowed: Collection[str], *, resolver: Resolver | None = None) -> Allowance:
    """How `base_url` is allowed by `allowed` (normalised entries or raw ones); FhirServerNotAllowed if it is not."""
    base = normalize_base(base_url)
    entries = parse_allowlist(allowed)
    if base in entries:
        return Allowance(base, exact=True)
    if not any(_matches_pattern(base, entry) for entry in entries):
        raise FhirServerNotAllowed("fhirServer is not in the allowlist of this client")
    parts = urlsplit(base)
    public_addresses(parts.hostname or "", parts.port or _DEFAULT_PORTS[parts.scheme], resolver)
    return Allowance(base, exact=False)


def check_fhir_server(base_url: str, allowed: Collection[str]) -> None:
    """Return if `base_url` may be read from under `allowed`; raise FhirServerNotAllowed otherwise.

    No request is sent to the server; a base matched only by a pattern is resolved (DNS) and must
    resolve to public addresses only. Read from a pattern-matched base only through a session with
    `PublicOnlyAdapter`, which re-checks the address it connects to.
    """
    allowance(base_url, allowed)


# ------------------------------------------------------------------ connect-time check (DNS rebinding)

class _PublicOnlyMixin:
    """Resolve, check every address is public, and connect to the checked address (not a second lookup)."""

    host: str
    port: int
    _dns_host: str

    def _new_conn(self):  # type: ignore[no-untyped-def]
        checked = public_addresses(self._dns_host, self.port)[0]
        original = self._dns_host
        self._dns_host = checked          # urllib3 connects to _dns_host; TLS SNI and Host still use `host`
        try:
            return super()._new_conn()    # type: ignore[misc]
        finally:
            self._dns_host = original


class PublicOnlyHTTPConnection(_PublicOnlyMixin, HTTPConnection):
    pass


class PublicOnlyHTTPSConnection(_PublicOnlyMixin, HTTPSConnection):
    pass


class _PublicOnlyHTTPPool(HTTPConnectionPool):
    ConnectionCls = PublicOnlyHTTPConnection


class _PublicOnlyHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = PublicOnlyHTTPSConnection


class PublicOnlyAdapter(HTTPAdapter):
    """A requests adapter whose connections only ever reach public addresses (checked at connect).

    A refused address surfaces as FhirServerNotAllowed from `session.get`.
    """

    def init_poolmanager(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _PublicOnlyHTTPPool, "https": _PublicOnlyHTTPSPool}
