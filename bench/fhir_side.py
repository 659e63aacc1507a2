"""FHIR side of the bench: load records, resolve the service's prefetch templates, measure the floor.

The floor is what the FHIR server itself costs for the queries a hook needs: issued one after another
(sequential sum) and all at once (parallel batch, the wall time = the slowest query). Service latency
divided by the floor is the honest figure on a noisy 2-core machine.
"""
from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from bench.stats import Summary, summarize
from sandbox.loader import load_bundle

TIMEOUT_S = 30.0
MAX_PAGES = 200
TRANSACTION_CHUNK = 1000
_TOKEN = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")


def load_resources(base_url: str, resources: Iterable[dict[str, Any]], session: requests.Session | None = None) -> int:
    """PUT every resource (by its own id) through transaction Bundles of <= 1,000 entries; returns count.

    PUT keeps ids stable, so prefetch, drafts and references all name the same resources."""
    items = list(resources)
    own = session or requests.Session()
    try:
        for start in range(0, len(items), TRANSACTION_CHUNK):
            chunk = items[start:start + TRANSACTION_CHUNK]
            bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
                {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in chunk]}
            response = own.post(base_url, data=json.dumps(bundle), timeout=max(TIMEOUT_S, len(chunk) / 20),
                                headers={"Content-Type": "application/fhir+json"})
            if response.status_code >= 300:
                raise RuntimeError(f"FHIR transaction refused: {response.status_code} {response.text[:300]}")
    finally:
        if session is None:
            own.close()
    return len(items)


def load_transaction(base_url: str, bundle: dict[str, Any]) -> None:
    """Post a scenario's transaction Bundle as it is, with the demo loader (PUT each where refused)."""
    load_bundle(base_url, bundle)


def resolve_template(template: str, context: dict[str, Any]) -> str | None:
    """Fill `{{context.x}}` and `{{userPractitionerId}}`-style tokens; None if one cannot be filled."""
    missing = False

    def fill(match: re.Match[str]) -> str:
        nonlocal missing
        token = match.group(1)
        if token.startswith("context."):
            value = context.get(token.split(".", 1)[1])
        elif token.startswith("user") and str(context.get("userId", "")).count("/") == 1:
            kind, ident = str(context["userId"]).split("/")
            value = ident if token == f"user{kind}Id" else None
        else:
            value = None
        if not isinstance(value, str):
            missing = True
            return ""
        return value

    out = _TOKEN.sub(fill, template)
    return None if missing else out


def _with_count(relative: str, count: int) -> str:
    parts = urlsplit(relative)
    if "?" not in relative:
        return relative
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(k == "_count" for k, _ in query):
        return relative
    return urlunsplit(parts._replace(query=urlencode(query + [("_count", str(count))], safe="|,:/")))


def get_complete(session: requests.Session, base_url: str, relative: str, *, page_size: int | None = None) -> tuple[Any, int]:
    """GET a read or a search; a search follows `link[next]` and returns ONE searchset Bundle holding
    every entry (what a complete prefetch carries). Returns (json or None for 404, number of requests)."""
    url = f"{base_url.rstrip('/')}/{_with_count(relative, page_size) if page_size else relative}"
    response = session.get(url, timeout=TIMEOUT_S, headers={"Accept": "application/fhir+json"})
    requests_made = 1
    if response.status_code == 404:
        return None, requests_made
    response.raise_for_status()
    first = response.json()
    if first.get("resourceType") != "Bundle":
        return first, requests_made
    entries = [e for e in first.get("entry", []) if e.get("search", {}).get("mode", "match") == "match"]
    page = first
    for _ in range(MAX_PAGES):
        nxt = next((l.get("url") for l in page.get("link", []) if l.get("relation") == "next"), None)
        if not nxt:
            break
        response = session.get(nxt, timeout=TIMEOUT_S, headers={"Accept": "application/fhir+json"})
        requests_made += 1
        response.raise_for_status()
        page = response.json()
        entries.extend(e for e in page.get("entry", []) if e.get("search", {}).get("mode", "match") == "match")
    merged = {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}
    return merged, requests_made


def resolve_prefetch(base_url: str, templates: dict[str, str], context: dict[str, Any]) -> dict[str, Any]:
    """The complete prefetch an EHR would send: every template resolved, searches fully paged."""
    prefetch: dict[str, Any] = {}
    with requests.Session() as session:
        for key, template in templates.items():
            relative = resolve_template(template, context)
            if relative is None:
                continue
            value, _ = get_complete(session, base_url, relative, page_size=1000)
            prefetch[key] = value
    return prefetch


def resolved_queries(templates: dict[str, str], context: dict[str, Any]) -> list[str]:
    return [q for q in (resolve_template(t, context) for t in templates.values()) if q is not None]


def measure_floor(base_url: str, queries: list[str], *, repeats: int, warmup: int,
                  concurrency: int = 1) -> dict[str, Summary]:
    """The FHIR server's own cost for `queries`, as `concurrency` clients would see it at once:
    `sequential` (one query after another, each fully paged, one Session per client) and `parallel`
    (all queries at once, one thread + Session per query; the figure is the wall time of the batch).
    `repeats` samples of each after `warmup` discarded ones."""
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session

    def one(query: str) -> None:
        get_complete(session(), base_url, query)

    inner = ThreadPoolExecutor(max_workers=max(1, len(queries) * concurrency))
    try:
        def sequential_batch() -> float:
            start = time.perf_counter()
            for q in queries:
                one(q)
            return (time.perf_counter() - start) * 1000.0

        def parallel_batch() -> float:
            start = time.perf_counter()
            list(inner.map(one, queries))
            return (time.perf_counter() - start) * 1000.0

        out: dict[str, Summary] = {}
        for name, batch in (("sequential", sequential_batch), ("parallel", parallel_batch)):
            lock = threading.Lock()
            samples: list[float] = []
            left = [warmup + repeats]

            def client() -> None:
                while True:
                    with lock:
                        if left[0] <= 0:
                            return
                        left[0] -= 1
                    value = batch()
                    with lock:
                        samples.append(value)

            threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=TIMEOUT_S * (warmup + repeats + 1))
            out[name] = summarize(samples[warmup:])
        return out
    finally:
        inner.shutdown(wait=True)


_TOKEN_PARAMS = ("code", "component-code", "category")


def _matches_token(resource: dict[str, Any], param: str, tokens: list[str]) -> bool:
    """FHIR token search: `system|code`, `|code` (no system) or `code` (any system), any one of `tokens`."""
    if param == "code":
        concepts = [resource.get("code")]
    elif param == "component-code":
        concepts = [c.get("code") for c in resource.get("component") or () if isinstance(c, dict)]
    else:
        concepts = resource.get("category") or []
        concepts = concepts if isinstance(concepts, list) else [concepts]
    codings = [c for concept in concepts if isinstance(concept, dict) for c in concept.get("coding") or ()
               if isinstance(c, dict)]
    for token in tokens:
        system, bar, code = token.rpartition("|")
        for c in codings:
            if c.get("code") == code and (not bar or (c.get("system") or "") == system):
                return True
    return False


def prefetch_from_resources(templates: dict[str, str], context: dict[str, Any],
                            resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A complete prefetch built without a server (quick mode): a read `Type/id` gets that resource,
    a search `Type?...` a searchset of the resources of that type that match its `code`,
    `component-code` and `category` tokens, as the FHIR server would answer (without them an LVEF
    Observation landed in all three Observation searches, and the quick 5,000-resource body was 2.7
    times the full run's). Other parameters (the patient, `_count`, `_include`) are not applied: use
    it for one patient's record whose resources the includes do not need."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)
    prefetch: dict[str, Any] = {}
    for key, template in templates.items():
        relative = resolve_template(template, context)
        if relative is None:
            continue
        path = relative.split("?", 1)[0]
        if "?" not in relative and path.count("/") == 1:
            rtype, rid = path.split("/")
            prefetch[key] = next((r for r in by_type.get(rtype, []) if r.get("id") == rid), None)
        else:
            filters = [(name, value.split(",")) for name, value in parse_qsl(relative.split("?", 1)[1] if "?" in relative else "")
                       if name in _TOKEN_PARAMS]
            items = [r for r in by_type.get(path, []) if all(_matches_token(r, name, tokens) for name, tokens in filters)]
            prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "total": len(items),
                             "entry": [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r,
                                        "search": {"mode": "match"}} for r in items]}
    return prefetch
