"""Reading from the client's FHIR server: one pooled HTTP session, one exception per failure class.

Why one exception per status class (as fhirclient does): the gather step decides per query whether
a failure is fatal (412) or a data gap, and the logs say *why* a read failed (401 vs 5xx vs timeout)
without ever printing the URL's patient id or the bearer token. `FAILURES` is the one table of those
failures: the exception each HTTP status raises, the log-safe description the cards name a data gap
with, and whether a 412 may tell the caller (only for the caller's own setup, never the network's).

Every read is bounded, because the FHIR server is not ours to trust: each response is streamed with
a byte cap and a read deadline (a slow drip cannot hold a thread past it, a huge answer cannot take
the worker's memory), a call's responses share a total byte budget, and a per-process semaphore caps
the FHIR requests in flight however many hook calls run at once.
"""
from __future__ import annotations

import concurrent.futures as cf
import os
import re
import threading
import time
from collections.abc import Container
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from . import json_codec
from .fhir_allowlist import FhirServerNotAllowed, PublicOnlyAdapter

FHIR_JSON = "application/fhir+json"
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")   # not `"://" in url`: queries carry http://loinc.org|...


class FhirError(Exception):
    """A read that gave no usable answer. `kind` is a short, log-safe label; `FAILURES` says what it means."""

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


class TooLarge(FhirError):
    """The answer (or all answers of this call together) went over the configured byte cap."""

    kind = "too-large"


class Busy(FhirError):
    """No FHIR read slot of this process came free before the call's deadline."""

    kind = "busy"


class AddressNotAllowed(FhirError):
    """At connect time the server's name resolved to an address its allowance does not cover (DNS rebinding)."""

    kind = "address-not-allowed"


class InvalidResponse(FhirError):
    """2xx, but not a FHIR JSON resource (HTML error page, truncated body, a redirect loop...)."""

    kind = "invalid-response"


class BackendTokenUnavailable(FhirError):
    """No access token could be obtained for a registered FHIR server (the reason is in the message)."""

    kind = "backend-token-unavailable"


@dataclass(frozen=True)
class Failure:
    """One row of `FAILURES`: a way the FHIR data of a query can fail to arrive."""

    error: type[FhirError] | str        # the exception a read raises, or the kind of a failure found before any read
    description: str                    # log-safe (no URL, id or token): the cards name a data gap with it
    statuses: Container[int] = ()       # the HTTP answers `error_for_status` turns into `error`
    caller_setup: bool = False          # the caller's own setup is why: the 412 may say so (a network
                                        # failure is never told: no port-scanning oracle)

    @property
    def kind(self) -> str:
        return self.error if isinstance(self.error, str) else self.error.kind


# The one table of FHIR failures (as fhirclient maps each HTTP status to its own exception); the
# first row whose statuses hold an answer's status wins, so specific statuses come before ranges.
FAILURES: dict[str, Failure] = {f.kind: f for f in (
    Failure(Unauthorized401, "the FHIR server refused the access token (401)", (401,)),
    Failure(Forbidden403, "the FHIR server denied access (403)", (403,)),
    Failure(NotFound404, "the FHIR server does not support the query (404)", (404,)),
    Failure(Gone410, "the FHIR server does not support the query (410)", (410,)),
    Failure(ClientError4xx, "the FHIR server rejected the query (4xx)", range(400, 500)),
    Failure(ServerError5xx, "the FHIR server failed (5xx)", range(500, 1000)),
    Failure(Timeout, "the FHIR server did not answer in time"),
    Failure(Unreachable, "the FHIR server could not be reached"),
    Failure(InvalidResponse, "the FHIR server's answer was not a FHIR Bundle/resource"),
    Failure(TooLarge, "the FHIR server's answer was larger than this service reads"),
    Failure(Busy, "the service was too busy to read from the FHIR server in time"),
    Failure(AddressNotAllowed, "the FHIR server's address is not allowed"),
    Failure(FhirError, "the query could not be issued"),
    Failure(BackendTokenUnavailable, "no access token could be obtained from the FHIR server's authorization "
                                     "server (SMART Backend Services)", caller_setup=True),
    Failure("no-fhir-server", "not in prefetch and no fhirServer given", caller_setup=True),
    Failure("paged-no-fhir-server", "the prefetched Bundle has more pages and no fhirServer was given to read "
                                    "them", caller_setup=True),
)}


def describe(kind: str | None) -> str:
    """The log-safe description of a failure kind (an unknown kind is its own description)."""
    failure = FAILURES.get(kind or FhirError.kind)
    return failure.description if failure is not None else kind or FhirError.kind


def error_for_status(status: int, what: str) -> FhirError:
    """The exception for a non-200 answer: its row in `FAILURES`, else (1xx-3xx) an invalid response."""
    for failure in FAILURES.values():
        if status in failure.statuses and not isinstance(failure.error, str):
            return failure.error(f"{what}: HTTP {status}", status=status)
    return InvalidResponse(f"{what}: unexpected HTTP {status}", status=status)


class ByteBudget:
    """The bytes all FHIR responses of one hook call may take together (shared by the call's threads)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, n: int, what: str) -> None:
        with self._lock:
            self.used += n
            over = self.used > self.limit
        if over:
            raise TooLarge(f"{what}: the call's FHIR responses exceed {self.limit} bytes")


class SessionPool:
    """One `requests.Session` per process (gunicorn forks after import: a socket pool must not be shared).

    Sessions are safe for concurrent GETs from the gather thread pool; the adapter's pool is sized to it.
    """

    def __init__(self, pool_size: int = 8, max_concurrent_reads: int = 32) -> None:
        self._pool_size = max(1, pool_size)
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._sessions: dict[bool, requests.Session] = {}
        self.read_slots = threading.BoundedSemaphore(max(1, max_concurrent_reads))

    def session(self, public_only: bool = False) -> requests.Session:
        """The session for exactly listed bases, or (`public_only`) one that connects only to public
        addresses, checked at connect time (bases allowed by a pattern, see `fhir_allowlist`)."""
        with self._lock:
            if self._pid != os.getpid():
                self._sessions, self._pid = {}, os.getpid()
            if public_only not in self._sessions:
                session = requests.Session()
                adapter_class = PublicOnlyAdapter if public_only else HTTPAdapter
                adapter = adapter_class(pool_connections=4, pool_maxsize=self._pool_size, max_retries=0)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.headers.update({"Accept": FHIR_JSON + ", application/json;q=0.9",
                                        "User-Agent": "her2-cds"})
                session.trust_env = False   # no proxy/netrc surprises: the EHR told us where its server is
                self._sessions[public_only] = session
            return self._sessions[public_only]

    def close(self) -> None:
        with self._lock:
            for session in self._sessions.values():
                session.close()
            self._sessions = {}


class FetchThreads:
    """The process's threads for FHIR reads: started on first use in each process and kept for its life.

    Why: a thread pool per hook call started its threads anew on every call that read the FHIR server,
    about a third of a no-prefetch call's CPU (issue 15). Threads do not survive a fork and gunicorn forks
    its workers after the app is built, so each process makes its own pool on first use, as `SessionPool`
    does its sessions. Idle threads are reused; new ones start only while every thread is busy.
    """

    def __init__(self, max_threads: int) -> None:
        self._max_threads = max(1, max_threads)
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._executor: cf.ThreadPoolExecutor | None = None

    def submit(self, fn: Callable[[], Any]) -> cf.Future:
        with self._lock:
            if self._executor is None or self._pid != os.getpid():
                self._executor = cf.ThreadPoolExecutor(max_workers=self._max_threads, thread_name_prefix="fhir")
                self._pid = os.getpid()
            return self._executor.submit(fn)


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
    """Reads against one FHIR base for one hook call, all bounded by `deadline` (time.monotonic()).

    `timeout` is the read deadline of one request: connecting, waiting and reading the whole answer
    (not only each socket read) end within it, so a request started before the call's deadline
    ends at most `timeout` after it. `max_response_bytes` caps one answer, `budget` all answers of
    the call; `read_slots` (a semaphore) caps the requests in flight in this process.
    """

    def __init__(self, session: requests.Session, base_url: str, *, access_token: str | None = None,
                 timeout: float = 1.5, deadline: float | None = None,
                 max_response_bytes: int = 16 * 1024 * 1024, budget: ByteBudget | None = None,
                 read_slots: threading.Semaphore | None = None) -> None:
        self._session = session
        self._max_response_bytes = max_response_bytes
        self._budget = budget
        self._read_slots = read_slots
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
        waited = self._remaining()
        slots = self._read_slots
        if slots is not None and not slots.acquire(timeout=waited):
            raise Busy(f"{what}: no FHIR read slot free within {waited:.1f} s")
        try:
            body = self._read(absolute, what=what, timeout=self._remaining())
        finally:
            if slots is not None:
                slots.release()
        try:
            document = json_codec.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidResponse(f"{what}: body is not JSON") from exc
        except RecursionError as exc:
            raise InvalidResponse(f"{what}: body is nested too deeply") from exc
        if not isinstance(document, dict) or not isinstance(document.get("resourceType"), str):
            raise InvalidResponse(f"{what}: body is not a FHIR resource")
        return document

    def _read(self, url: str, *, what: str, timeout: float) -> bytes:
        """The body of a 200 answer, streamed under the byte caps and the read deadline."""
        read_deadline = time.monotonic() + timeout
        try:
            response = self._session.get(url, headers=self._headers, timeout=(timeout, timeout),
                                         allow_redirects=False, stream=True)
        except FhirServerNotAllowed as exc:
            raise AddressNotAllowed(f"{what}: {exc.reason}") from None
        except requests.exceptions.Timeout as exc:
            raise Timeout(f"{what}: no answer within {timeout:.1f} s") from exc
        except requests.exceptions.ConnectionError as exc:
            raise Unreachable(f"{what}: connection failed") from exc
        except requests.exceptions.RequestException as exc:
            raise Unreachable(f"{what}: {type(exc).__name__}") from exc
        try:
            if response.status_code != 200:
                raise error_for_status(response.status_code, what)
            declared = response.headers.get("Content-Length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > self._max_response_bytes:
                raise TooLarge(f"{what}: answer of {declared} bytes exceeds {self._max_response_bytes}")
            body = bytearray()
            while True:
                # read1: one socket read at most, so the deadline is checked however slowly bytes drip
                # (read(n) would block until n bytes came, each socket read resetting the timeout)
                chunk = response.raw.read1(64 * 1024, decode_content=True)
                if not chunk:
                    break
                body += chunk
                if self._budget is not None:
                    self._budget.take(len(chunk), what)
                if len(body) > self._max_response_bytes:
                    raise TooLarge(f"{what}: answer exceeds {self._max_response_bytes} bytes")
                if time.monotonic() > read_deadline:
                    raise Timeout(f"{what}: answer not read within {timeout:.1f} s")
            return bytes(body)
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError) as exc:
            if isinstance(exc, (urllib3.exceptions.TimeoutError, requests.exceptions.Timeout, TimeoutError)):
                raise Timeout(f"{what}: answer not read within {timeout:.1f} s") from exc
            raise InvalidResponse(f"{what}: answer broken off ({type(exc).__name__})") from exc
        finally:
            response.close()

    def search_page(self, url: str, *, what: str) -> Page:
        bundle = self.get(url, what=what)
        if bundle.get("resourceType") != "Bundle":
            raise InvalidResponse(f"{what}: a search answered with {bundle.get('resourceType')}, not a Bundle")
        return Page(bundle, next_link(bundle))
