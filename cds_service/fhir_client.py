"""Reading from the client's FHIR server: one pooled HTTP session, one exception per failure class.

Why one exception per status class (as fhirclient does): the gather step decides per query whether
a failure is fatal (412) or a data gap, and the logs say *why* a read failed (401 vs 5xx vs timeout)
without ever printing the URL's patient id or the bearer token.
"""
from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

FHIR_JSON = "application/fhir+json"
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")   # not `"://" in url`: queries carry http://loinc.org|...


class FhirError(Exception):
    """A read that gave no usable answer. `kind` is a short, log-safe label."""

    kind = "error"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Unauthorized401(FhirError):
    kind = "unauthorized-401"


class Forbidden403(FhirError):
    kind = "forbidden-403"


class NotFound404(FhirError):
    kind = "not-found-404"


class Gone410(NotFound404):
    kind = "gone-410"


class ClientError4xx(FhirError):
    kind = "client-error-4xx"


class ServerError5xx(FhirError):
    kind = "server-error-5xx"


class Timeout(FhirError):
    kind = "timeout"


class Unreachable(FhirError):
    kind = "unreachable"


class InvalidResponse(FhirError):
    """2xx, but not a FHIR JSON resource (HTML error page, truncated body, a redirect loop...)."""

    kind = "invalid-response"


def error_for_status(status: int, what: str) -> FhirError:
    if status == 401:
        return Unauthorized401(f"{what}: HTTP 401", status=status)
    if status == 403:
        return Forbidden403(f"{what}: HTTP 403", status=status)
    if status == 404:
        return NotFound404(f"{what}: HTTP 404", status=status)
    if status == 410:
        return Gone410(f"{what}: HTTP 410", status=status)
    if 400 <= status < 500:
        return ClientError4xx(f"{what}: HTTP {status}", status=status)
    if status >= 500:
        return ServerError5xx(f"{what}: HTTP {status}", status=status)
    return InvalidResponse(f"{what}: unexpected HTTP {status}", status=status)


class SessionPool:
    """One `requests.Session` per process (gunicorn forks after import: a socket pool must not be shared).

    Sessions are safe for concurrent GETs from the gather thread pool; the adapter's pool is sized to it.
    """

    def __init__(self, pool_size: int = 8) -> None:
        self._pool_size = max(1, pool_size)
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._session: requests.Session | None = None

    def session(self) -> requests.Session:
        with self._lock:
            if self._session is None or self._pid != os.getpid():
                session = requests.Session()
                adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self._pool_size, max_retries=0)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.headers.update({"Accept": FHIR_JSON + ", application/json;q=0.9",
                                        "User-Agent": "her2-cds"})
                session.trust_env = False   # no proxy/netrc surprises: the EHR told us where its server is
                self._session, self._pid = session, os.getpid()
            return self._session

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
            self._session = None


@dataclass(frozen=True)
class Page:
    """One search page: its resources and where the next page is (None when it is the last)."""

    bundle: dict[str, Any]
    next_url: str | None


def next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or ():
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str) \
                and link["url"]:
            return link["url"]
    return None


class FhirClient:
    """Reads against one FHIR base for one hook call, all bounded by `deadline` (time.monotonic())."""

    def __init__(self, session: requests.Session, base_url: str, *, access_token: str | None = None,
                 timeout: float = 1.5, deadline: float | None = None) -> None:
        self._session = session
        self.base_url = base_url.rstrip("/") + "/"
        self._headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
        self._timeout = timeout
        self._deadline = deadline
        origin = urlsplit(self.base_url)
        self._origin = (origin.scheme.lower(), origin.netloc.lower())

    def __repr__(self) -> str:   # never show the token
        return f"FhirClient({self.base_url!r}, authorized={bool(self._headers)})"

    def url_for(self, relative: str) -> str:
        return urljoin(self.base_url, relative.lstrip("/"))

    def same_server(self, url: str) -> bool:
        """Only URLs on the client's FHIR server get our bearer token (a prefetched next link could point anywhere)."""
        parts = urlsplit(url)
        return (parts.scheme.lower(), parts.netloc.lower()) == self._origin

    def _remaining(self) -> float:
        if self._deadline is None:
            return self._timeout
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise Timeout("overall FHIR deadline passed")
        return min(self._timeout, left)

    def get(self, url: str, *, what: str) -> dict[str, Any]:
        """GET one FHIR resource (absolute URL on this server, or relative to the base)."""
        absolute = url if _ABSOLUTE.match(url) else self.url_for(url)
        if not self.same_server(absolute):
            raise InvalidResponse(f"{what}: link to another server not followed")
        timeout = self._remaining()
        try:
            response = self._session.get(absolute, headers=self._headers, timeout=(timeout, timeout),
                                         allow_redirects=False)
        except requests.exceptions.Timeout as exc:
            raise Timeout(f"{what}: no answer within {timeout:.1f} s") from exc
        except requests.exceptions.ConnectionError as exc:
            raise Unreachable(f"{what}: connection failed") from exc
        except requests.exceptions.RequestException as exc:
            raise Unreachable(f"{what}: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise error_for_status(response.status_code, what)
        try:
            body = response.json()
        except ValueError as exc:
            raise InvalidResponse(f"{what}: body is not JSON") from exc
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise InvalidResponse(f"{what}: body is not a FHIR resource")
        return body

    def search_page(self, url: str, *, what: str) -> Page:
        bundle = self.get(url, what=what)
        if bundle.get("resourceType") != "Bundle":
            raise InvalidResponse(f"{what}: a search answered with {bundle.get('resourceType')}, not a Bundle")
        return Page(bundle, next_link(bundle))
