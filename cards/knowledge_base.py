"""Load the guideline knowledge (YAML), validate it (JSON Schema + cross-references), expose it typed.

Why a data file: a clinician reviews one file to see the whole algorithm, and the decision code reads
thresholds and regimen lists from it instead of hiding them in `if` chains. A broken file must stop
the service at start-up with a message naming the bad entry, never half-load.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit
from types import MappingProxyType
from typing import Any, Mapping

import jsonschema
import yaml

DEFAULT_KNOWLEDGE = "her2_mbc.yaml"
SCHEMA_FILE = "knowledge.schema.json"

# Contract ("Every card"): a card cites primary sources only. Hosts of FDA labels, guideline publishers,
# publications and the HL7 specifications; the service's own origin is the only other allowed link.
CITATION_HOSTS = frozenset({
    "dailymed.nlm.nih.gov", "www.accessdata.fda.gov",                       # FDA labels
    "ascopubs.org", "www.nccn.org", "www.esmo.org",                         # guideline publishers
    "doi.org", "pubmed.ncbi.nlm.nih.gov", "www.nejm.org", "www.thelancet.com", "jamanetwork.com",
    "cds-hooks.hl7.org", "hl7.org",                                         # specifications
})


class KnowledgeError(ValueError):
    """The knowledge file is unreadable or invalid; the message names the file and the entry."""


def _hashed_by_id(cls: type) -> type:
    """Hash a knowledge entry by its id (unique within its section: `_check_references`). Equal entries have
    equal ids, so this agrees with the field-by-field equality; the generated hash walked every field, each
    citation included, on each dict or cache look-up (a few hundred per hook call, issue 15)."""
    cls.__hash__ = _id_hash     # type: ignore[assignment]
    return cls


def _id_hash(entry: Any) -> int:
    return hash(entry.id)


@_hashed_by_id
@dataclass(frozen=True)
class Citation:
    """A cited source; `short` is how a card names it (source label, links), `status` its mark (seed, V, P, U)."""

    id: str
    label: str
    status: str
    url: str | None = None
    short: str | None = None

    @property
    def short_label(self) -> str:
        return self.short or self.label


@_hashed_by_id
@dataclass(frozen=True)
class DrugEntry:
    """A drug the regimens name, by RxNorm ingredient; `short` is the abbreviation cards add to the name (T-DXd)."""

    id: str
    rxnorm: str
    name: str
    short: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.short})" if self.short else self.name


@dataclass(frozen=True)
class Component:
    """One drug of a regimen with its dose text: each becomes one draft MedicationRequest."""

    drug: DrugEntry
    dose: str


@_hashed_by_id
@dataclass(frozen=True)
class RegimenEntry:
    id: str
    name: str
    status: str                                  # seed | later-evidence | investigational
    evidence: str
    citations: tuple[Citation, ...]
    components: tuple[Component, ...] = ()
    orderable: bool = True
    not_orderable_reason: str | None = None
    exclude_if_received: tuple[DrugEntry, ...] = ()
    contraindicated_by: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()               # listed only when these findings hold (hr-positive)

    @functools.cached_property      # knowledge data: worked out once per process
    def rxnorm(self) -> frozenset[str]:
        return frozenset(c.drug.rxnorm for c in self.components)


@dataclass(frozen=True)
class TfiPolicy:
    id: str
    months: float
    months_if_pertuzumab: float
    statement: str
    citations: tuple[Citation, ...]
    default: bool = False
    label: str | None = None

    @property
    def display(self) -> str:
        """How a card names the policy (clinician wording, never the configuration id)."""
        return self.label or f"{self.months:g} months"

    def threshold(self, early_regimen_had_pertuzumab: bool) -> float:
        return self.months_if_pertuzumab if early_regimen_had_pertuzumab else self.months


@_hashed_by_id
@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    statement: str
    recommendation: str
    strength: str
    citations: tuple[Citation, ...]
    offers: tuple[str, ...] | None = None       # regimen ids this rule puts on a card (None: not a plan rule)

    @property
    def primary_citation(self) -> Citation:
        """The first cited source with a URL (validated to exist): the card's `source`."""
        return next(c for c in self.citations if c.url)


@dataclass(frozen=True)
class LinePlan:
    id: str
    title: str
    rules: tuple[Rule, ...]
    candidates: tuple[RegimenEntry, ...]


@dataclass(frozen=True)
class SafetyCheck:
    id: str
    topic: str
    rule: Rule
    indicator: str
    condition: str
    wording: str
    params: Mapping[str, float]
    source: Citation | None = None               # the card's source, when not the rule's first cited URL

    def param(self, name: str) -> float:
        try:
            return self.params[name]
        except KeyError:
            raise KnowledgeError(f"safety check {self.id}: parameter {name!r} missing") from None


@dataclass(frozen=True)
class OverrideReason:
    code: str
    display: str
    topics: tuple[str, ...] = ()                 # offered only on these topics' cards (empty: on every card)

    def applies_to(self, topic: str) -> bool:
        return not self.topics or topic in self.topics


@dataclass(frozen=True)
class Knowledge:
    version: str
    title: str
    disclaimer: str
    source_path: str
    citations: Mapping[str, Citation]
    drugs: Mapping[str, DrugEntry]
    regimens: Mapping[str, RegimenEntry]
    tfi_policies: Mapping[str, TfiPolicy]
    rules: Mapping[str, Rule]
    line_plans: Mapping[str, LinePlan]
    investigational: tuple[RegimenEntry, ...]
    safety_checks: Mapping[str, SafetyCheck]
    override_reason_system: str
    override_reasons: tuple[OverrideReason, ...]

    def check(self, check_id: str) -> SafetyCheck:
        return self.safety_checks[check_id]

    @functools.cached_property
    def _default_tfi_policy(self) -> TfiPolicy:
        return next(p for p in self.tfi_policies.values() if p.default)

    def override_reasons_for(self, topic: str) -> tuple[OverrideReason, ...]:
        """The override reasons a card of this topic offers, in file order."""
        by_topic, general = self._override_reasons_by_topic
        return by_topic.get(topic, general)

    @functools.cached_property
    def _override_reasons_by_topic(self) -> tuple[Mapping[str, tuple[OverrideReason, ...]], tuple[OverrideReason, ...]]:
        """(the reasons of each topic some reason names, the reasons of every other topic): worked out once per
        knowledge, not per card."""
        named = {t for r in self.override_reasons for t in r.topics}
        by_topic = {t: tuple(r for r in self.override_reasons if r.applies_to(t)) for t in named}
        return MappingProxyType(by_topic), tuple(r for r in self.override_reasons if not r.topics)

    def tfi_policy(self, policy_id: str | None = None) -> TfiPolicy:
        """The named policy; None: the one the knowledge file marks `default: true`."""
        if policy_id is None:
            return self._default_tfi_policy
        try:
            return self.tfi_policies[policy_id]
        except KeyError:
            raise KnowledgeError(f"unknown TFI policy {policy_id!r}; knowledge has {sorted(self.tfi_policies)}") from None


@functools.lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    text = resources.files("cards.knowledge").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return jsonschema.Draft202012Validator(json.loads(text))


def _entry_name(doc: Any, path: list[Any]) -> str:
    """'regimens[3] (tdxd)' for a schema error path, so the reviewer finds the entry."""
    parts: list[str] = []
    node = doc
    for step in path:
        if isinstance(step, int):
            parts[-1] = f"{parts[-1]}[{step}]" if parts else f"[{step}]"
            node = node[step] if isinstance(node, list) and step < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("id"), str):
                parts[-1] += f" ({node['id']})"
        else:
            parts.append(str(step))
            node = node.get(step) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"


def validate_document(doc: Any, name: str = "knowledge") -> None:
    """Raise KnowledgeError naming the first bad entry (schema errors, then cross-references)."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: (list(e.absolute_path), e.message))
    if errors:
        err = errors[0]
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise KnowledgeError(f"{name}: {_entry_name(doc, list(err.absolute_path))}: {err.message}{more}")
    _check_references(doc, name)


def _check_references(doc: dict[str, Any], name: str) -> None:
    def ids(section: str) -> list[str]:
        return [e["id"] for e in doc[section]]

    for section in ("citations", "drugs", "regimens", "tfi_policies", "rules", "line_plans", "safety_checks"):
        seen = ids(section)
        dupes = sorted({i for i in seen if seen.count(i) > 1})
        if dupes:
            raise KnowledgeError(f"{name}: {section}: duplicate id(s) {dupes}")
    citations, drugs, regimens, rules = (set(ids(s)) for s in ("citations", "drugs", "regimens", "rules"))

    def need(kind: str, known: set[str], value: str, where: str) -> None:
        if value not in known:
            raise KnowledgeError(f"{name}: {where}: unknown {kind} {value!r}")

    for section in ("regimens", "tfi_policies", "rules"):
        for i, entry in enumerate(doc[section]):
            for c in entry["citations"]:
                need("citation", citations, c, f"{section}[{i}] ({entry['id']}).citations")
    for i, r in enumerate(doc["regimens"]):
        where = f"regimens[{i}] ({r['id']})"
        for comp in r.get("components", []):
            need("drug", drugs, comp["drug"], f"{where}.components")
        for d in r.get("exclude_if_received", []):
            need("drug", drugs, d, f"{where}.exclude_if_received")
        if r.get("orderable", True) and r["status"] == "investigational":
            raise KnowledgeError(f"{name}: {where}: investigational regimens must be orderable: false")
    cited = {c["id"]: c for c in doc["citations"]}
    for i, c in enumerate(doc["citations"]):
        if "url" in c and not is_citation_url(c["url"]):
            raise KnowledgeError(f"{name}: citations[{i}] ({c['id']}).url: {c['url']!r} is not a primary source "
                                 f"(allowed hosts: {', '.join(sorted(CITATION_HOSTS))})")
    for i, rule in enumerate(doc["rules"]):
        if not any("url" in cited[c] for c in rule["citations"]):
            raise KnowledgeError(f"{name}: rules[{i}] ({rule['id']}): no citation with a URL (cards need source.url)")
    for i, rule in enumerate(doc["rules"]):
        for r in rule.get("offers", []):
            need("regimen", regimens, r, f"rules[{i}] ({rule['id']}).offers")
    for i, plan in enumerate(doc["line_plans"]):
        for r in plan["rules"]:
            need("rule", rules, r, f"line_plans[{i}] ({plan['id']}).rules")
        for c in plan["candidates"]:
            need("regimen", regimens, c, f"line_plans[{i}] ({plan['id']}).candidates")
    for r in doc["investigational"]:
        need("regimen", regimens, r, "investigational")
    for i, check in enumerate(doc["safety_checks"]):
        need("rule", rules, check["rule"], f"safety_checks[{i}] ({check['id']}).rule")
        if "source" in check:
            need("citation", citations, check["source"], f"safety_checks[{i}] ({check['id']}).source")
            if "url" not in cited[check["source"]]:
                raise KnowledgeError(f"{name}: safety_checks[{i}] ({check['id']}).source: citation has no URL")
    defaults = [p["id"] for p in doc["tfi_policies"] if p.get("default")]
    if len(defaults) != 1:
        raise KnowledgeError(f"{name}: tfi_policies: exactly one policy must be default: true (found {defaults})")


def is_citation_url(url: str) -> bool:
    """An https link to one of the contract's citation hosts (a primary source a clinician can open)."""
    parts = urlsplit(url)
    return parts.scheme == "https" and parts.hostname in CITATION_HOSTS


def _build(doc: dict[str, Any], source: str) -> Knowledge:
    citations = {c["id"]: Citation(c["id"], c["label"], c["status"], c.get("url"), c.get("short"))
                 for c in doc["citations"]}
    drugs = {d["id"]: DrugEntry(d["id"], d["rxnorm"], d["name"], d.get("short")) for d in doc["drugs"]}

    def cites(entry: Mapping[str, Any]) -> tuple[Citation, ...]:
        return tuple(citations[c] for c in entry["citations"])

    regimens = {
        r["id"]: RegimenEntry(
            id=r["id"], name=r["name"], status=r["status"], evidence=r["evidence"], citations=cites(r),
            components=tuple(Component(drugs[c["drug"]], c["dose"]) for c in r.get("components", [])),
            orderable=r.get("orderable", True), not_orderable_reason=r.get("not_orderable_reason"),
            exclude_if_received=tuple(drugs[d] for d in r.get("exclude_if_received", [])),
            contraindicated_by=tuple(r.get("contraindicated_by", [])), requires=tuple(r.get("requires", [])))
        for r in doc["regimens"]}
    rules = {r["id"]: Rule(r["id"], r["title"], r["statement"], r["recommendation"], r["strength"], cites(r),
                           tuple(r["offers"]) if "offers" in r else None)
             for r in doc["rules"]}
    frozen = MappingProxyType
    return Knowledge(
        version=doc["version"], title=doc["title"], disclaimer=doc["disclaimer"], source_path=source,
        citations=frozen(citations), drugs=frozen(drugs), regimens=frozen(regimens),
        tfi_policies=frozen({p["id"]: TfiPolicy(p["id"], float(p["months"]), float(p["months_if_pertuzumab"]),
                                         p["statement"], cites(p), bool(p.get("default", False)), p.get("label"))
                      for p in doc["tfi_policies"]}),
        rules=frozen(rules),
        line_plans=frozen({p["id"]: LinePlan(p["id"], p["title"], tuple(rules[r] for r in p["rules"]),
                                             tuple(regimens[c] for c in p["candidates"])) for p in doc["line_plans"]}),
        investigational=tuple(regimens[r] for r in doc["investigational"]),
        safety_checks=frozen({c["id"]: SafetyCheck(c["id"], c["topic"], rules[c["rule"]], c["indicator"],
                                                   c["condition"], c["wording"], frozen(dict(c.get("params", {}))),
                                                   citations[c["source"]] if "source" in c else None)
                              for c in doc["safety_checks"]}),
        override_reason_system=doc["override_reason_system"],
        override_reasons=tuple(OverrideReason(o["code"], o["display"], tuple(o.get("topics", ())))
                               for o in doc["override_reasons"]),
    )


def parse_knowledge(text: str, name: str = "knowledge") -> Knowledge:
    """Parse and validate knowledge YAML text (used by tests and by `load_knowledge`)."""
    try:
        doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # C loader when built
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"{name}: not valid YAML: {exc}") from exc
    validate_document(doc, name)
    return _build(doc, name)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str) -> Knowledge:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise KnowledgeError(f"{path}: cannot read knowledge file: {exc}") from exc
    return parse_knowledge(text, path)


def load_knowledge(path: str | Path | None = None) -> Knowledge:
    """The packaged knowledge base (or the file at `path`), validated; cached per path."""
    return _load_cached(_default_path() if path is None else str(Path(path).resolve()))


@functools.lru_cache(maxsize=1)
def _default_path() -> str:
    """Resolved once: `load_knowledge()` runs on every hook call."""
    return str(Path(str(resources.files("cards.knowledge").joinpath(DEFAULT_KNOWLEDGE))).resolve())
