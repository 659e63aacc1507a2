"""The three CDS services, declared as data (HAPI-style "services as data"): routing is by service id.

A service's whole contract is here: its hook, the FHIR queries it needs, and the cards it may answer with
(`cards`: its card topics and whether it checks draft orders; the pipeline hands it to `cards.decide`).
Each service lists the FHIR queries it needs. A query is both a discovery prefetch template and the
request the gather step issues when the client did not prefetch it, so the two can never drift apart.
Every query also carries its failure policy (`required`): a required query that cannot be answered
makes the hook call a 412; an optional one becomes a data gap named on the cards.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Iterable, Mapping
from urllib.parse import quote

from cards import CardScope
from fhir_mappings import observation_search_tokens

CDS_HOOKS_VERSION = "2.0.1"
HOOK_VERSION = "1.0"          # hook library STU1 (patient-view, order-select, order-sign)
SEARCH_PAGE_SIZE = 200        # `_count` on every search: one page covers nearly every real record



@dataclass(frozen=True)
class FhirQuery:
    """One prefetch key: its template, what resource type answers it, and what happens if it cannot."""

    key: str
    template: str                 # relative FHIR URL with CDS Hooks 2.0 tokens only
    resource_type: str            # the type a read returns / the type a search is over
    required: bool                # failure policy: True -> 412, False -> answer with a data gap
    why: str                      # the reason for the policy, shown in the OpenAPI document's hook operations
    records: str = ""             # what a failure leaves unread, as the cards' data gap names it (default: "<type> records")

    @property
    def records_label(self) -> str:
        return self.records or f"{self.resource_type} records"

    @cached_property
    def is_read(self) -> bool:
        """A read (`Type/id`) answers with one resource; everything else is a search (a Bundle). Worked out
        once per query (the gather step asks it several times per key on every hook call)."""
        return "?" not in self.template and self.template.count("/") == 1


@dataclass(frozen=True)
class ServiceDefinition:
    id: str
    hook: str
    title: str
    description: str
    queries: tuple[FhirQuery, ...]
    cards: CardScope                   # the cards this service may answer with

    def discovery(self) -> dict[str, Any]:
        """This service's entry in `GET /cds-services` (2.0 fields + the harmless 3.0 extras)."""
        return {
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "id": self.id,
            "prefetch": {q.key: q.template for q in self.queries},
            "version": CDS_HOOKS_VERSION,
            "hookVersion": HOOK_VERSION,
        }


def _search(resource_type: str, extra: str = "") -> str:
    return f"{resource_type}?patient={{{{context.patientId}}}}{extra}&_count={SEARCH_PAGE_SIZE}"


def _include_medication(resource_type: str) -> str:
    """`_include` of the Medication a `medicationReference` names (Epic sends the drug only that way).

    US Core servers support it; a server that ignores it leaves the references unresolved, and the
    gather step then reads those Medications by id (`medication_refs`)."""
    return f"&_include={resource_type}:medication"


def _observation_codes() -> str:
    """Exactly the Observation codes the mapping reads (receptor status, LVEF, staging): one source of truth."""
    return ",".join(observation_search_tokens())


# The record every service reads. Failure policy, query by query:
PATIENT_RECORD: tuple[FhirQuery, ...] = (
    FhirQuery("patient", "Patient/{{context.patientId}}", "Patient", True,
              "age and sex feed dosing and eligibility; a 404 is 'no such patient' (no data), not a failure"),
    FhirQuery("conditions", _search("Condition"), "Condition", True,
              "breast cancer, metastatic sites, ILD and heart failure history: without them no safe decision"),
    FhirQuery("observations", _search("Observation", f"&code={_observation_codes()}"), "Observation", True,
              "HER2/ER/PR status and LVEF: the regimen choice and the cardiac checks depend on them"),
    FhirQuery("observationComponents", _search("Observation", f"&component-code={_observation_codes()}"),
              "Observation", False,
              "echo reports carry LVEF (and FISH panels the HER2 ratio) as a component, which `code` never "
              "matches; `component-code` is a standard R4 parameter but not a US Core one, so a server that "
              "rejects it leaves a named data gap instead of failing the call",
              records="results held inside panels (Observation components, e.g. LVEF in an echo report)"),
    FhirQuery("labObservations", _search("Observation", "&category=laboratory"), "Observation", False,
              "HER2/ER/PR results that carry only a local code or text (the `code` search above matches LOINC "
              "only), and the result Observations of receptor reports; the mapping reads them by text. US Core "
              "servers SHALL support patient+category; bounded by `_count` and the page cap (a date bound cannot "
              "be written with CDS Hooks 2.0 tokens). A failure leaves a named data gap, never a 412",
              records="laboratory results under local codes or text (e.g. HER2/ER/PR)"),
    FhirQuery("diagnosticReports", _search("DiagnosticReport"), "DiagnosticReport", False,
              "receptor reports (a HER2 FISH sent as a report, its conclusion) that no Observation search finds; "
              "US Core servers SHALL support the patient search. A failure leaves a named data gap",
              records="DiagnosticReports (e.g. a HER2 FISH report)"),
    FhirQuery("medicationRequests", _search("MedicationRequest", _include_medication("MedicationRequest")),
              "MedicationRequest", True,
              "prior lines of therapy and anthracycline exposure: missing them could recommend a repeat "
              "or miss a cardiotoxic combination"),
    FhirQuery("medicationStatements", _search("MedicationStatement", _include_medication("MedicationStatement")),
              "MedicationStatement", True,
              "therapy given elsewhere is often only a MedicationStatement; same safety reason as requests"),
    FhirQuery("medicationAdministrations",
              _search("MedicationAdministration", _include_medication("MedicationAdministration")),
              "MedicationAdministration", False,
              "administrations refine dates of therapy already known from requests/statements; without them "
              "the answer is still safe, so the cards say what could not be read"),
)

# The cards each service may answer with (topics: docs/card-contract.md). The next-regimen card is a
# chart-opening card: the order hooks get checks only, about the drafts they carry (and therapy being given).
CHECK_TOPICS = frozenset({
    "pregnancy", "anthracycline-her2-cardiotoxicity", "heart-failure", "ild-pneumonitis", "first-line-restart",
    "tdxd-not-offered", "her2-blockade-gap", "lvef-monitoring", "her2-status-discordant", "her2-status-unknown",
})
CHART_CARDS = CardScope(topics=CHECK_TOPICS | {"her2-next-regimen"}, draft_orders=False)
ORDER_CARDS = CardScope(topics=CHECK_TOPICS, draft_orders=True)

SERVICES: tuple[ServiceDefinition, ...] = (
    ServiceDefinition(
        id="her2-next-regimen-patient-view",
        hook="patient-view",
        title="HER2+ metastatic breast cancer: next treatment",
        description=("Suggests the next line of systemic therapy for HER2-positive metastatic breast cancer "
                     "from the patient's prior treatment, and flags cardiac (LVEF) and ILD safety issues."),
        queries=PATIENT_RECORD,
        cards=CHART_CARDS,
    ),
    ServiceDefinition(
        id="her2-order-select",
        hook="order-select",
        title="HER2+ metastatic breast cancer: order check (select)",
        description=("Checks drafted oncology orders for a HER2-positive metastatic breast cancer patient "
                     "against the next-line guidance and safety rules (anthracycline + HER2 therapy, ILD, LVEF)."),
        queries=PATIENT_RECORD,
        cards=ORDER_CARDS,
    ),
    ServiceDefinition(
        id="her2-order-sign",
        hook="order-sign",
        title="HER2+ metastatic breast cancer: order check (sign)",
        description=("Before signing, checks oncology orders for a HER2-positive metastatic breast cancer "
                     "patient against the next-line guidance and safety rules (anthracycline + HER2 therapy, "
                     "ILD, LVEF)."),
        queries=PATIENT_RECORD,
        cards=ORDER_CARDS,
    ),
)

_BY_HOOK = {s.hook: s for s in SERVICES}
if len(_BY_HOOK) != len(SERVICES):
    raise ValueError("one service per hook (the contract): `her2-cds evaluate --hook` names a service by its hook")


def service_for_hook(hook: str) -> ServiceDefinition:
    """The service declared for `hook` (ValueError for any other hook), for callers that name a hook rather
    than a service: `her2-cds evaluate --hook` and tests. HTTP calls are routed by service id instead."""
    try:
        return _BY_HOOK[hook]
    except KeyError:
        raise ValueError(f"no CDS service for hook {hook!r}; the hooks are {sorted(_BY_HOOK)}") from None


class ServiceRegistry:
    """Services by id, in discovery order."""

    def __init__(self, services: Iterable[ServiceDefinition] = SERVICES) -> None:
        self._by_id: dict[str, ServiceDefinition] = {}
        for service in services:
            if service.id in self._by_id:
                raise ValueError(f"duplicate service id {service.id!r}")
            self._by_id[service.id] = service

    def get(self, service_id: str) -> ServiceDefinition | None:
        return self._by_id.get(service_id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._by_id)

    def discovery(self) -> dict[str, Any]:
        return {"services": [s.discovery() for s in self._by_id.values()]}


_TOKEN = re.compile(r"\{\{(.*?)\}\}")
_USER_TOKENS = {"userPractitionerId": "Practitioner", "userPractitionerRoleId": "PractitionerRole",
                "userPatientId": "Patient", "userRelatedPersonId": "RelatedPerson"}


_UNRESERVED = re.compile(r"[A-Za-z0-9\-._~]*")    # what `quote(x, safe="-._~")` leaves as it is


def fill_template(template: str, context: Mapping[str, Any]) -> str | None:
    """The query with its `{{context.X}}` / user tokens replaced, or None when one cannot be resolved."""
    parts = _template_parts(template)
    filled = [parts[0]]
    for index in range(1, len(parts), 2):
        value = _token_value(parts[index], context)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value == "":
            return None
        text = str(value)
        filled.append(text if _UNRESERVED.fullmatch(text) else quote(text, safe="-._~"))
        filled.append(parts[index + 1])
    return "".join(filled)


@lru_cache(maxsize=64)
def _template_parts(template: str) -> tuple[str, ...]:
    """Literal text and (stripped) token names alternating, literal first and last: the templates are the
    services' own (a fixed set), split once instead of on every call."""
    parts = _TOKEN.split(template)
    return tuple(part if index % 2 == 0 else part.strip() for index, part in enumerate(parts))


def _token_value(token: str, context: Mapping[str, Any]) -> Any:
    if token.startswith("context."):
        return context.get(token[len("context."):])
    if token in _USER_TOKENS:
        rtype, _, rid = str(context.get("userId", "")).partition("/")
        return rid if rtype == _USER_TOKENS[token] else None
    return None
