"""Gather: prefetch first, the client's FHIR server for the rest (CDS Hooks 2.0 §prefetch decision table).

Per prefetch key (see `services.FhirQuery`):

| what arrived                              | action                                                      |
|-------------------------------------------|-------------------------------------------------------------|
| the expected resource / a Bundle          | use it; a Bundle with `link[next]` is followed on fhirServer |
| `null`                                    | no data; never refetched                                    |
| missing, or an OperationOutcome           | fetched from fhirServer                                     |
| a resource of another type                | ignored (logged), then treated as missing                  |

Before anything is read, `fhirServer` must be on the caller's allowlist (`fhir_allowlist`; the
trusted issuer's `fhir_servers`, or HER2CDS_FHIR_SERVERS with auth off) and, when the call carries
`fhirAuthorization`, use https (unless HER2CDS_ALLOW_INSECURE_FHIR): otherwise the call is refused
with a 403 and nothing is sent anywhere.

All fetches run concurrently (at most HER2CDS_FHIR_MAX_WORKERS per call) on the process's fetch threads,
sharing one pooled session, each HTTP request with its own read deadline and byte cap and all of them
inside one overall deadline and byte budget.
A *required* query that cannot be answered (no fhirServer, unreachable, 401/403/5xx, deadline, too
large) is a 412 whose text names the missing data, not why the read failed (that would make the
service a port scanner's oracle; the log keeps the reason); an *optional* one becomes a `RecordIssue`
in `GatheredRecord.gaps`, which the cards name. No clinical logic lives here.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import threading
import time
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Mapping, NoReturn

from cds_service.config import Settings
from cds_service.errors import ApiError, PreconditionFailed
from cds_service.fhir_allowlist import Allowance, FhirServerNotAllowed, allowance, parse_allowlist
from cds_service.fhir_client import (FAILURES, ByteBudget, FetchThreads, FhirClient, FhirError, InvalidResponse,
                                     NotFound404, SessionPool, Timeout, describe, next_link)
from cds_service.logging_setup import get_logger
from cds_service.medication_refs import (REFERENCED_MEDICATIONS, draft_order_resources, fetch_medications,
                                         medication_related, unresolved_medication_ids)
from cds_service.metrics import observe_fhir_reads
from cds_service.services import FhirQuery, ServiceDefinition, fill_template
from cds_service.smart_backend import BackendTokens
from fhir_mappings import dedupe_resources
from fhir_mappings.model import RecordIssue


@dataclass(frozen=True)
class GatheredRecord:
    """What the gather step obtained for one hook call: the input of `pipeline.evaluate`."""

    patient_id: str
    resources: tuple[dict[str, Any], ...]            # raw FHIR R4 resource dicts, each once
    gaps: tuple[RecordIssue, ...] = field(default=())  # optional data that could not be read (say so on cards)


@dataclass
class KeyResult:
    """What one prefetch key ended up as. `source` is a log-safe label."""

    query: FhirQuery
    source: str = "missing"                  # prefetch | prefetch-null | fetched | failed
    resources: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0
    ignored: str | None = None               # why the prefetched value was not used
    error: str | None = None                 # FhirError.kind (or "no-fhir-server")
    issues: tuple[RecordIssue, ...] = ()     # a tuple: most keys have none (why: no empty list per key per call)
    next_url: str | None = None              # a prefetched Bundle's next page, to be read on fhirServer


@dataclass(frozen=True)
class GatherReport:
    """Log-safe account of a gather: which keys came from where, and what failed (no ids, no URLs)."""

    hits: tuple[str, ...]
    nulls: tuple[str, ...]
    fetched: tuple[str, ...]
    ignored: dict[str, str]
    failures: dict[str, str]
    pages_fetched: int
    elapsed_ms: float

    @classmethod
    def of(cls, results: list["KeyResult"], started: float) -> "GatherReport":
        """The report of a gather's key results (in one pass: it runs on every hook call)."""
        hits: list[str] = []
        nulls: list[str] = []
        fetched: list[str] = []
        ignored: dict[str, str] = {}
        failures: dict[str, str] = {}
        pages = 0
        for r in results:
            key, source = r.query.key, r.source
            if source == "prefetch":
                hits.append(key)
            elif source == "prefetch-null":
                nulls.append(key)
            elif source == "fetched":
                fetched.append(key)
                pages += r.pages
            elif source == "failed" and r.error != "no-fhir-server":
                fetched.append(key)
            if r.ignored:
                ignored[key] = r.ignored
            if r.error:
                failures[key] = r.error
        return cls(hits=tuple(hits), nulls=tuple(nulls), fetched=tuple(fetched), ignored=ignored,
                   failures=failures, pages_fetched=pages, elapsed_ms=round((time.monotonic() - started) * 1000, 1))

    def as_log(self) -> dict[str, Any]:
        out: dict[str, Any] = {"hits": list(self.hits), "nulls": list(self.nulls), "misses": list(self.fetched),
                               "pages_fetched": self.pages_fetched}
        if self.ignored:
            out["ignored"] = self.ignored
        if self.failures:
            out["failures"] = self.failures
        return out


def _bundle_resources(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Entries' resources, minus search-outcome OperationOutcomes (sekmet/HAPI add those for warnings)."""
    out = []
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str) \
                and resource["resourceType"] != "OperationOutcome":
            out.append(resource)
    return out


def classify_prefetch(query: FhirQuery, prefetch: Mapping[str, Any],
                      context: Mapping[str, Any] | None = None) -> KeyResult:
    """Apply the decision table to one key, without any I/O.

    A read whose resource has another id than the one the template asked for (a client bug that would
    put another patient's data on this patient's cards) is ignored like a resource of the wrong type.
    """
    if query.key not in prefetch:
        return KeyResult(query)
    value = prefetch[query.key]
    if value is None:
        return KeyResult(query, source="prefetch-null")
    rtype = value.get("resourceType") if isinstance(value, dict) else None
    if rtype == "OperationOutcome":
        return KeyResult(query, ignored="OperationOutcome")
    if query.is_read and rtype == query.resource_type:
        asked_for = fill_template(query.template, context) if context is not None else None
        if asked_for and value.get("id") is not None and f"{rtype}/{value.get('id')}" != asked_for:
            return KeyResult(query, ignored="other-id")
        return KeyResult(query, source="prefetch", resources=[value])
    if not query.is_read and rtype == "Bundle":
        return KeyResult(query, source="prefetch", resources=_bundle_resources(value), pages=1,
                         next_url=next_link(value))
    return KeyResult(query, ignored=f"wrong-type:{rtype if isinstance(rtype, str) else type(value).__name__}"[:80])


log = get_logger("gather")


class FhirServerRefused(ApiError):
    """403: the call names a fhirServer this client may not make us read (or would send its token in clear).

    Not a 412: 412 says required data could not be obtained (a retry or a prefetch may help); this
    is a policy refusal no retry changes, given whether or not prefetch was complete. The caller
    gets a fixed text; the reason is logged (`gather.fhir_server_refused`).
    """

    def __init__(self, reason: str) -> None:
        super().__init__("The fhirServer named in this call may not be used by this client "
                         "(see the service's FHIR-server allowlist and TLS requirements)",
                         status=403, code="forbidden", expression="fhirServer")
        self.reason = reason


class RequiredDataUnavailable(PreconditionFailed):
    """412 that also carries the gather report, so the failed call is still logged with hits/misses."""

    def __init__(self, message: str, report: GatherReport) -> None:
        super().__init__(message)
        self.report = report


def _copy_into(target: KeyResult, source: KeyResult) -> None:
    for f in dataclasses.fields(KeyResult):
        setattr(target, f.name, getattr(source, f.name))


class Gatherer:
    """Runs the decision table for one hook call. Stateless between calls; holds the shared session pool."""

    def __init__(self, settings: Settings, sessions: SessionPool, backend: BackendTokens | None = None) -> None:
        self.settings = settings
        self.sessions = sessions
        self.backend = backend          # SMART Backend Services tokens for calls without fhirAuthorization
        # As many threads as the process has FHIR read slots: a thread beyond them could only wait for a slot,
        # and each thread kept holds glibc's per-thread cache of freed memory (~80 kB each, measured: the
        # 64 threads of the old `2 x threads x fhir_max_workers` cap took worker peak RSS past 120 MB).
        self.fetch_threads = FetchThreads(settings.fhir_max_concurrent_reads)
        parse_allowlist(settings.fhir_server_list, where="HER2CDS_FHIR_SERVERS")   # a bad entry stops start-up

    def gather(self, service: ServiceDefinition, body: Mapping[str, Any],
               allowed_fhir_servers: Collection[str] = ()) -> tuple[GatheredRecord, GatherReport]:
        """The record for one call; `allowed_fhir_servers` is the caller's FHIR-server allowlist."""
        started = time.monotonic()
        deadline = started + self.settings.fhir_deadline_seconds
        context: Mapping[str, Any] = body["context"]
        prefetch: Mapping[str, Any] = body.get("prefetch") or {}
        allowed = self._check_server(body, allowed_fhir_servers)   # refuses (403) before any read
        results = [classify_prefetch(q, prefetch, context) for q in service.queries]

        connect = _Once(lambda: self._connect(body, deadline, allowed))   # the token (if any) is fetched only when needed
        pending: list[tuple[KeyResult, str | None]] = [    # (key, continuation URL or None = full fetch)
            (result, result.next_url) for result in results if result.source == "missing" or result.next_url]

        client, no_client = connect() if pending else (None, None)
        if pending and client is None:
            for result, continuation in pending:
                if continuation is None:
                    result.source, result.error = "failed", no_client
                else:
                    result.error = "paged-" + no_client if no_client == "no-fhir-server" else no_client
        elif pending:
            self._run(client, pending, context, deadline)
        results.extend(self._referenced_medications(body, results, connect))
        self._forget_refused_backend_token(body, results)

        report = GatherReport.of(results, started)
        missing_required = [r for r in results if r.error and r.query.required]
        if missing_required:
            detail = "; ".join(f"{r.query.key} ({r.query.resource_type}): {_caller_reason(r.error)}"
                               for r in missing_required)
            raise RequiredDataUnavailable(
                f"Required FHIR data could not be obtained from prefetch or fhirServer: {detail}", report)
        return self._record(context, results), report

    # ---- helpers

    def _connect(self, body: Mapping[str, Any], deadline: float,
                 allowed: Allowance | None) -> tuple[FhirClient | None, str | None]:
        """(client, None), or (None, why there is none): no fhirServer, or no backend token to be had."""
        try:
            client = observe_fhir_reads(self._client(body, deadline, allowed))
        except FhirError as exc:
            return None, exc.kind
        return (client, None) if client is not None else (None, "no-fhir-server")

    def _check_server(self, body: Mapping[str, Any], allowed_fhir_servers: Collection[str]) -> Allowance | None:
        """How `fhirServer` is allowed (None without one); FhirServerRefused (403) when it may not be used:
        not on the caller's allowlist, or an access token that would travel to it in clear text."""
        server = body.get("fhirServer")
        if not isinstance(server, str) or not server:
            return None
        try:
            allowed = allowance(server, allowed_fhir_servers)
        except FhirServerNotAllowed as exc:
            self._refuse(exc.reason, allowed_fhir_servers)
        if body.get("fhirAuthorization") is not None and allowed.base.startswith("http://") \
                and not self.settings.allow_insecure_fhir:
            self._refuse("fhirAuthorization with an http:// fhirServer: the access token would travel in clear "
                         "text (HER2CDS_ALLOW_INSECURE_FHIR is off)", allowed_fhir_servers)
        return allowed

    def _client(self, body: Mapping[str, Any], deadline: float, allowed: Allowance | None) -> FhirClient | None:
        """The client for an allowed `fhirServer` (`_check_server`), or None without one."""
        server = body.get("fhirServer")
        if not isinstance(server, str) or not server:
            return None
        auth = body.get("fhirAuthorization")
        token = auth.get("access_token") if isinstance(auth, dict) else None
        if allowed is None:
            return None
        if auth is None and self.backend:      # the EHR sent no token: our own, if registered for this server
            token = self.backend.token_for(server, deadline=deadline)
        return FhirClient(self.sessions.session(public_only=not allowed.exact), server,
                          access_token=token if isinstance(token, str) else None,
                          timeout=self.settings.fhir_timeout_seconds, deadline=deadline,
                          max_response_bytes=self.settings.fhir_max_response_bytes,
                          budget=ByteBudget(self.settings.fhir_max_call_bytes),
                          read_slots=self.sessions.read_slots)

    @staticmethod
    def _refuse(reason: str, allowed_fhir_servers: Collection[str]) -> NoReturn:
        log.warning("gather.fhir_server_refused: %s", reason,
                    extra={"status": 403, "reason": reason, "allowlist_size": len(allowed_fhir_servers)})
        raise FhirServerRefused(reason)

    def _run(self, client: FhirClient, pending: list[tuple[KeyResult, str | None]],
             context: Mapping[str, Any], deadline: float) -> None:
        """Fetch on at most `fhir_max_workers` lanes of the process's fetch threads, each lane taking the next
        pending key until none is left. Only fetches finished by the deadline are applied; the rest fail as
        timeouts, and a late fetch's answer is discarded."""
        queue = deque(pending)
        finished: list[tuple[KeyResult, KeyResult]] = []     # (key, its filled copy), appended by the lanes
        abandoned = threading.Event()

        def lane() -> None:
            while not abandoned.is_set():
                try:
                    result, continuation = queue.popleft()
                except IndexError:
                    return
                finished.append((result, self._fetch(client, result, context, continuation)))

        lane_count = max(1, min(self.settings.fhir_max_workers, len(pending)))
        lanes = [self.fetch_threads.submit(lane) for _ in range(lane_count)]
        done, _ = cf.wait(lanes, timeout=max(0.0, deadline - time.monotonic()))
        abandoned.set()
        for future in lanes:
            future.cancel()           # a lane not started yet never starts
        for future in done:
            future.result()           # a bug in our code (not a FhirError) propagates: a 500, never a 412
        answered = set()
        for result, filled in list(finished):     # a copy: a late lane may still append
            _copy_into(result, filled)
            answered.add(id(result))
        for result, _ in pending:
            if id(result) not in answered:
                result.error = Timeout.kind
                if result.source != "prefetch":
                    result.source, result.resources = "failed", []

    def _fetch(self, client: FhirClient, start: KeyResult, context: Mapping[str, Any],
               continuation: str | None) -> KeyResult:
        """A filled copy of `start`; never raises (a failure is recorded on the copy)."""
        query = start.query
        result = KeyResult(query, source=start.source, resources=list(start.resources), pages=start.pages,
                           ignored=start.ignored, issues=start.issues)
        try:
            if continuation is not None:
                self._follow(client, result, continuation)
                return result
            url = fill_template(query.template, context)
            if url is None:
                raise FhirError("a prefetch token could not be resolved from the context")
            if query.is_read:
                try:
                    resource = client.get(url, what=query.key)
                except NotFound404:
                    result.source, result.pages = "fetched", 1     # no such patient: no data, not a failure
                    return result
                if resource.get("resourceType") != query.resource_type:
                    raise InvalidResponse(f"{query.key}: read answered with another resource type")
                result.resources, result.pages, result.source = [resource], 1, "fetched"
                return result
            page = client.search_page(url, what=query.key)
            result.resources, result.pages = _bundle_resources(page.bundle), 1
            if page.next_url:
                self._follow(client, result, page.next_url)
            result.source = "fetched"
        except FhirError as exc:     # bad data or an unreachable server: this key fails (412 or a gap)
            result.error = exc.kind
        # Anything else is a bug in our code: it propagates (future.result() re-raises it) and the call is a
        # 500 with a logged traceback, never a 412 that blames the EHR's FHIR server.
        if result.error and result.source != "prefetch":
            result.source, result.resources = "failed", []
        return result

    def _follow(self, client: FhirClient, result: KeyResult, url: str | None) -> None:
        """Follow `link[next]` up to the page cap; past the cap, what was read is kept and the gap noted."""
        pages_seen = max(result.pages, 1)
        collected: list[dict[str, Any]] = []
        while url:
            if pages_seen >= self.settings.fhir_max_pages:
                result.issues = (*result.issues, RecordIssue(
                    result.query.key,
                    f"more than {self.settings.fhir_max_pages} pages of {result.query.resource_type}; "
                    "later pages were not read"))
                break
            page = client.search_page(url, what=result.query.key)
            collected.extend(_bundle_resources(page.bundle))
            pages_seen += 1
            url = page.next_url
        result.resources = result.resources + collected
        result.pages = pages_seen

    def _referenced_medications(self, body: Mapping[str, Any], results: list[KeyResult],
                                connect: "_Once") -> list[KeyResult]:
        """Medications the gathered orders and the drafts name by reference but nobody sent, read by id
        (never a 412). Medications sent inside `draftOrders` count as sent."""
        server = body.get("fhirServer") if isinstance(body.get("fhirServer"), str) else None
        drafts = draft_order_resources(body["context"].get("draftOrders"))
        medication_resources = medication_related(list(chain.from_iterable([k.resources for k in results])))
        wanted = unresolved_medication_ids(chain(medication_resources, drafts), server)
        if not wanted:
            return []
        result = KeyResult(REFERENCED_MEDICATIONS)
        client, no_client = connect()
        if client is None:
            result.source, result.error = "failed", no_client
            return [result]
        lookup = fetch_medications(client, wanted, max_pages=self.settings.fhir_max_pages)
        result.resources, result.pages, result.issues = lookup.resources, lookup.pages, tuple(lookup.issues)
        result.source, result.error = ("failed", lookup.error) if lookup.error else ("fetched", None)
        return [result]

    def _forget_refused_backend_token(self, body: Mapping[str, Any], results: list[KeyResult]) -> None:
        """A 401 to our own cached token (revoked, server restarted): the next call fetches a fresh one."""
        if self.backend and "fhirAuthorization" not in body and isinstance(body.get("fhirServer"), str) \
                and any(r.error == "unauthorized-401" for r in results):
            self.backend.forget(body["fhirServer"])

    @staticmethod
    def _record(context: Mapping[str, Any], results: list[KeyResult]) -> GatheredRecord:
        """Resources deduped by type/id, in query order; every failed (optional) key becomes a named gap."""
        gaps: list[RecordIssue] = []
        for r in results:
            gaps.extend(r.issues)
            if r.error:
                gaps.append(RecordIssue(r.query.key, f"{r.query.records_label} could not be read "
                                                     f"({describe(r.error)}); they are not considered here"))
        resources = dedupe_resources(chain.from_iterable([r.resources for r in results]))
        return GatheredRecord(patient_id=str(context["patientId"]), resources=tuple(resources), gaps=tuple(gaps))


class _Once:
    """Calls `make` on first use and remembers the answer (one FHIR client, one token fetch per call)."""

    def __init__(self, make: Any) -> None:
        self._make = make
        self._value: Any = None
        self._done = False

    def __call__(self) -> Any:
        if not self._done:
            self._value, self._done = self._make(), True
        return self._value


def _caller_reason(kind: str | None) -> str:
    """What the 412 tells the caller: where the data was missing from, never the network error class."""
    failure = FAILURES.get(kind or "")
    if failure is not None and failure.caller_setup:   # configuration, not network
        return failure.description
    return "not in prefetch, and could not be read from fhirServer"
