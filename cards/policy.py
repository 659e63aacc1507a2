"""Clinical policy switches where the sources disagree (clinical reference §5): chosen by configuration."""
from __future__ import annotations

from dataclasses import dataclass

TFI_POLICIES = ("seed-12-months", "nccn-6-or-12-months")


@dataclass(frozen=True)
class Policy:
    """`tfi_policy` names an entry of the knowledge's `tfi_policies`; `list_post_seed_regimens` lists
    later-evidence regimens (e.g. T-DXd + pertuzumab, DESTINY-Breast09) as alternatives, never recommended.
    `plan_at_progression_card`: while the current metastatic line is ongoing with no documented
    progression, patient-view shows no next-regimen card (contract v2) unless this is on; then a
    plan-at-progression card is shown (each chart opening of a stable patient would repeat it)."""

    tfi_policy: str = "seed-12-months"
    list_post_seed_regimens: bool = True
    plan_at_progression_card: bool = False

    def __post_init__(self) -> None:
        if self.tfi_policy not in TFI_POLICIES:
            raise ValueError(f"tfi_policy must be one of {TFI_POLICIES}, not {self.tfi_policy!r}")
