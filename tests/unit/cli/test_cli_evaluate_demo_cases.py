"""Offline, every demo patient gives what sandbox/patients/README.md promises (same judge as the
integration tests, no FHIR server): `her2-cds evaluate` and the hooks share one pipeline."""
from __future__ import annotations

import json

import pytest

from cds_service import cli
from integration.cds_judge import judge
from support import SANDBOX

CASES = [(path, case) for path in sorted((SANDBOX / "cases").glob("*.json"))
         for case in json.loads(path.read_text(encoding="utf-8"))["cases"]]


def _bundle_for(number: str):
    return next((SANDBOX / "patients").glob(f"demo-{number}-*.json"))


@pytest.mark.parametrize(("path", "case"), CASES, ids=[f"{p.stem}/{c['hook']}/{c['name']}" for p, c in CASES])
def test_evaluate_gives_the_documented_outcome(path, case, capsys):
    number = path.stem.split("-")[1]
    argv = ["evaluate", "--bundle", str(_bundle_for(number)), "--hook", case["hook"]]
    if "drafts" in case:
        argv += ["--draft", str(SANDBOX / case["drafts"])]
    assert cli.main(argv) == 0
    assert judge(json.loads(capsys.readouterr().out)["cards"], case["expect"]) == []
