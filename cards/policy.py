"""Clinical policy switches where the sources disagree (clinical reference §5): chosen by configuration."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    """`tfi_policy` names an entry of the knowledge's `tfi_policies`; `list_post_seed_regimens` lists
    later-evidence regimens (e.g. T-DXd + pertuzumab, DESTINY-Breast09) as alternatives, never recommended.
    `plan_at_progression_card`: while the current metastatic line is ongoing with no documented
    progression, patient-view shows no next-regimen card (contract v2) unless this is on; then a
    plan-at-progression card is shown (each chart opening of a stable patient would repeat it)."""

    tfi_policy: str | None = None         # None: the knowledge file's `default: true` policy
    list_post_seed_regimens: bool = True
    plan_at_progression_card: bool = False

    def __post_init__(self) -> None:
        from cards.knowledge_base import load_knowledge   # the policies exist only in the knowledge file
        known = sorted(load_knowledge().tfi_policies)
        if self.tfi_policy is not None and self.tfi_policy not in known:
            raise ValueError(f"tfi_policy must be one of {known}, not {self.tfi_policy!r}")
