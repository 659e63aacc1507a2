"""Referenced Medication resources: which `Medication/<id>` the gathered record names but does not hold,
and reading them from the FHIR server by id, in batches.

Why: Epic's MedicationRequest / MedicationAdministration name the drug only through
`medicationReference` -> `Medication/<id>` held on the server. The prefetch templates `_include`
them, but a client may prefetch without the include and a server may ignore it; whatever is still
unresolved after the searches is read here (`Medication?_id=a,b,c`), within the hook call's deadline.
The Medications found are handed to the mapping as ordinary resources (it resolves the references).

Failure policy: never a 412. A lookup that fails is a named data gap on the cards; a Medication the
server does not have is named once, by the mapping, on the order that references it (so a therapy never
disappears silently and is not named twice). No clinical logic here.

The references looked up are those of the gathered record and of the hook's `draftOrders` (a draft that
names a `Medication/<id>` held only on the server): gather collects, the mapping resolves.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter
from typing import Any, Iterable, Mapping

from cds_service.fhir_client import ClientError4xx, FhirClient, FhirError, NotFound404
from cds_service.services import SEARCH_PAGE_SIZE, FhirQuery
from fhir_mappings.model import RecordIssue

#: Resource types whose `medicationReference` names the drug (R4).
REFERRING_TYPES = frozenset({"MedicationRequest", "MedicationAdministration", "MedicationStatement",
                             "MedicationDispense"})
#: What `unresolved_medication_ids` reads: the referring types and the Medications themselves.
MEDICATION_TYPES = REFERRING_TYPES | {"Medication"}
_TYPE_OF = itemgetter("resourceType")
#: Ids per `Medication?_id=` search: keeps the URL well under the 2 kB many proxies accept.
BATCH_SIZE = 40
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_RELATIVE = re.compile(r"^Medication/([^/?#]+)(?:/_history/[^/?#]+)?$")

#: The key under which this lookup appears in the gather report and in data gaps (not a prefetch key:
#: CDS Hooks 2.0 prefetch tokens cannot name ids found in other resources).
REFERENCED_MEDICATIONS = FhirQuery(
    "referencedMedications", "Medication?_id={ids}", "Medication", False,
    "the drug of an order that names it by reference; unreadable -> the cards say so, the call still answers",
    records="Medication resources named by medication orders")


@dataclass
class MedicationLookup:
    """The outcome of reading the referenced Medications: what was read and what went wrong."""

    wanted: tuple[str, ...]
    resources: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0
    error: str | None = None                       # FhirError.kind of the first failure, if any
    issues: list[RecordIssue] = field(default_factory=list)


def medication_id(reference: Any, fhir_base: str | None) -> str | None:
    """The id of a `Medication` a reference names on the client's FHIR server, else None.

    Contained (`#x`) and `urn:uuid:` references are the mapping's business (they resolve inside the
    record); an absolute URL counts only when it is on `fhir_base` (ids on other servers are not ours
    to look up, and our token must never go there)."""
    if not isinstance(reference, str):
        return None
    ref = reference.strip()
    if fhir_base and ref.lower().startswith(("http://", "https://")):
        base = fhir_base.rstrip("/") + "/"
        if not ref.lower().startswith(base.lower()):
            return None
        ref = ref[len(base):]
    match = _RELATIVE.match(ref)
    if not match or not _FHIR_ID.match(match.group(1)):
        return None
    return match.group(1)


def unresolved_medication_ids(resources: Iterable[Mapping[str, Any]], fhir_base: str | None) -> tuple[str, ...]:
    """Ids of Medications referenced by the record's medication resources but absent from it, in order.

    One pass over `resources` (any iterable: the gather step chains its keys' lists), the Medications
    present noted on the way and left out at the end (why: a second pass over the record cost ~10
    bytecodes per resource on every hook call)."""
    present: set[str] = set()
    referenced: dict[str, None] = {}
    for resource in resources:
        rtype = resource.get("resourceType")
        if rtype == "Medication":
            rid = resource.get("id")
            if isinstance(rid, str):
                present.add(rid)
        elif isinstance(rtype, str) and rtype in REFERRING_TYPES:
            # (a non-string resourceType, e.g. a list in a draft order, was a 500, found by fuzzing)
            reference = resource.get("medicationReference")
            mid = medication_id(reference.get("reference") if isinstance(reference, dict) else None, fhir_base)
            if mid is not None:
                referenced.setdefault(mid)
    return tuple(mid for mid in referenced if mid not in present)


def medication_related(gathered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The resources of `gathered` that `unresolved_medication_ids` reads (`MEDICATION_TYPES`), in order.

    Picked at C speed (why: the Python loop of `unresolved_medication_ids` cost ~25 bytecodes a resource, on
    every resource of every hook call, and most are labs and Conditions). `gathered` holds what the gather
    step keeps, each with a string resourceType."""
    return list(compress(gathered, map(MEDICATION_TYPES.__contains__, map(_TYPE_OF, gathered))))


def draft_order_resources(draft_orders: Any) -> list[dict[str, Any]]:
    """The resources of the hook's `draftOrders` (a Bundle, a bare list or one resource), for their references.

    Only what the references need: the mapping (`fhir_mappings.drafts`) reads the drafts themselves."""
    if isinstance(draft_orders, dict):
        if draft_orders.get("resourceType") == "Bundle" or "entry" in draft_orders:
            entries = draft_orders.get("entry")
            items = [e.get("resource") if isinstance(e, dict) and "resource" in e else e
                     for e in (entries if isinstance(entries, list) else ())]
        else:
            items = [draft_orders]
    elif isinstance(draft_orders, list):
        items = draft_orders
    else:
        items = []
    return [r for r in items if isinstance(r, dict)]


def fetch_medications(client: FhirClient, ids: Iterable[str], *, max_pages: int) -> MedicationLookup:
    """Read `ids` as `Medication?_id=a,b,c` in batches; never raises (failures land on the lookup).

    A server that refuses the `_id` search (4xx) is asked by instance reads instead. Ids the server
    does not hold are simply absent (the mapping names their orders); the client's deadline bounds the
    whole lookup."""
    lookup = MedicationLookup(tuple(dict.fromkeys(ids)))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(lookup.wanted), BATCH_SIZE):
        batch = lookup.wanted[start:start + BATCH_SIZE]
        try:
            try:
                _search_batch(client, batch, found, lookup, max_pages)
            except (ClientError4xx, NotFound404):
                _read_each(client, batch, found, lookup)
        except FhirError as exc:
            lookup.error = exc.kind
            break
    lookup.resources = list(found.values())
    # Ids the server does not hold are not an issue here: the mapping names each order whose reference
    # stays unresolved ("medication reference 'Medication/x' not found", with its date), and a second,
    # count-only line for the same Medication would name it twice on the cards (issue 10).
    return lookup


def _search_batch(client: FhirClient, batch: tuple[str, ...], found: dict[str, dict[str, Any]],
                  lookup: MedicationLookup, max_pages: int) -> None:
    url: str | None = f"Medication?_id={','.join(batch)}&_count={min(len(batch), SEARCH_PAGE_SIZE)}"
    pages = 0
    while url and pages < max(1, max_pages):
        page = client.search_page(url, what=REFERENCED_MEDICATIONS.key)
        pages += 1
        _keep(page.bundle.get("entry"), batch, found)
        url = page.next_url
    lookup.pages += pages


def _read_each(client: FhirClient, batch: tuple[str, ...], found: dict[str, dict[str, Any]],
               lookup: MedicationLookup) -> None:
    for mid in batch:
        if mid in found:
            continue
        try:
            resource = client.get(f"Medication/{mid}", what=REFERENCED_MEDICATIONS.key)
        except NotFound404:
            continue
        lookup.pages += 1
        _keep([{"resource": resource}], batch, found)


def _keep(entries: Any, batch: tuple[str, ...], found: dict[str, dict[str, Any]]) -> None:
    """Only Medications we asked for (a server that ignores `_id` must not flood the record)."""
    for entry in entries or ():
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "Medication" \
                and resource.get("id") in batch:
            found.setdefault(resource["id"], resource)
