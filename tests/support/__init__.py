"""Shared test helpers: where the fixtures are, and how to read them with relative dates resolved."""
from __future__ import annotations

import datetime as dt
import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from cds_service.relative_dates import load_json

REPO = Path(__file__).resolve().parents[2]
SANDBOX = REPO / "sandbox"
SHARED = REPO.parent / "shared"
SCENARIOS = SHARED / "scenarios"
TODAY = dt.datetime.now(dt.timezone.utc).date()
# The card contract the service implements (v2 since the clinical sign-off, issue 16); scenarios whose
# cases.json says a later "contract" are skipped, as the acceptance probe skips them at a lower `--contract`.
CARD_CONTRACT = 2


def ago(days: float | None, today: dt.date = TODAY) -> dt.date | None:
    """The date `days` days before `today` (the test run's date unless given); None (a date a table
    leaves out) stays None."""
    return None if days is None else today - dt.timedelta(days=days)


def require_shared(path: Path = SCENARIOS) -> Path:
    """Skip (not fail) when ../shared is absent: a fresh clone has no such folder."""
    if not path.exists():
        pytest.skip(f"{path} not present (../shared is only beside the repository in CI and dev sessions)")
    return path


def scenario_dirs() -> list[Path]:
    return sorted(p for p in SCENARIOS.glob("S*") if (p / "bundle.json").exists()) if SCENARIOS.exists() else []


def contract_scenario_dirs() -> list[Path]:
    """The scenarios whose expected cards follow the card contract the service implements."""
    return [p for p in scenario_dirs() if _scenario_contract(p) <= CARD_CONTRACT]


def _scenario_contract(directory: Path) -> int:
    return int(json.loads((directory / "cases.json").read_text(encoding="utf-8")).get("contract", 1))


def bundle_resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


def load_scenario(directory: Path, today: dt.date = TODAY) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(resources of bundle.json, cases.json) with relative dates resolved."""
    return bundle_resources(load_json(directory / "bundle.json", today)), load_json(directory / "cases.json", today)


def iter_json(directory: Path, pattern: str = "*.json") -> Iterator[tuple[Path, Any]]:
    for path in sorted(directory.glob(pattern)):
        yield path, json.loads(path.read_text(encoding="utf-8"))


@contextmanager
def captured_logs(caplog: Any, logger_name: str, level: int = logging.DEBUG) -> Iterator[list[logging.LogRecord]]:
    """Records of a service logger; attaches caplog's handler directly because the service logger
    ("her2cds", configured by the app factory in other tests) does not propagate to the root logger."""
    logger = logging.getLogger(logger_name)
    old_level = logger.level
    logger.addHandler(caplog.handler)
    logger.setLevel(level)
    try:
        yield caplog.records
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(old_level)
