"""What the decide step concludes, before any card JSON exists (pure values, easy to test)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import NamedTuple

from cards.knowledge_base import Citation, RegimenEntry, Rule
from fhir_mappings.model import DraftOrder


class FactRow(NamedTuple):
    """One row of a card's facts table (its basis): what was read, when, and from which resources.

    A named tuple, not a frozen dataclass: as immutable and compared field by field, but made for less than
    half the work (a frozen dataclass sets each field through `object.__setattr__`), and a call builds a dozen
    rows per card set; the row is its own key where the detail shows each fact once."""

    label: str
    value: str
    date: dt.date | None = None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Excluded:
    """A candidate regimen the card does not offer, and the reason it shows (received, contraindicated...)."""

    regimen: RegimenEntry
    reason: str


@dataclass(frozen=True)
class Proposal:
    """A suggestion: optionally remove drafts, optionally order a regimen (one draft MR per drug)."""

    label: str
    regimen: RegimenEntry | None = None
    remove: tuple[DraftOrder, ...] = ()
    recommended: bool = False


@dataclass(frozen=True)
class Decision:
    topic: str
    indicator: str
    summary: str
    rules: tuple[Rule, ...]
    findings: tuple[str, ...] = ()               # why the card fires, one sentence each
    facts: tuple[FactRow, ...] = ()
    notes: tuple[str, ...] = ()                  # guideline notes (HR status, HER2 blockade, framing)
    proposals: tuple[Proposal, ...] = ()
    excluded: tuple[Excluded, ...] = ()
    named_only: tuple[RegimenEntry, ...] = ()    # listed in the text, no order proposed
    about_drafts: bool = False                   # warns about a drafted order -> overrideReasons
    check_ids: tuple[str, ...] = field(default=())
    source: Citation | None = None               # overrides the first rule's cited source
