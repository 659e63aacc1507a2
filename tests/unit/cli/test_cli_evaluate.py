"""`her2-cds evaluate` runs the real pipeline offline on a demo bundle and prints the cards."""
from __future__ import annotations

import json

import pytest

from cds_service import cli
from support import SANDBOX

DEMO_1 = SANDBOX / "patients" / "demo-1-2l-after-tch.json"


def test_evaluate_prints_a_cards_response_as_json(capsys):
    assert cli.main(["evaluate", "--bundle", str(DEMO_1), "--patient", "demo-1-pat"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert any(c["source"]["topic"]["code"] == "her2-next-regimen" for c in out["cards"])


def test_evaluate_takes_the_patient_from_the_bundle_and_renders_markdown(capsys):
    assert cli.main(["evaluate", "--bundle", str(DEMO_1), "--format", "markdown"]) == 0
    assert "## [" in capsys.readouterr().out


def test_evaluate_order_select_with_a_draft_file(capsys):
    bundle = SANDBOX / "patients" / "demo-5-anthracycline-order.json"
    draft = SANDBOX / "drafts" / "demo-5-doxorubicin.json"
    assert cli.main(["evaluate", "--bundle", str(bundle), "--hook", "order-select", "--draft", str(draft)]) == 0
    topics = {c["source"]["topic"]["code"] for c in json.loads(capsys.readouterr().out)["cards"]}
    assert "anthracycline-her2-cardiotoxicity" in topics


def test_order_hooks_need_a_draft(capsys):
    assert cli.main(["evaluate", "--bundle", str(DEMO_1), "--hook", "order-sign"]) == 2
    assert "--draft" in capsys.readouterr().err


def test_a_file_that_is_not_a_bundle_is_refused(tmp_path, capsys):
    path = tmp_path / "patient.json"
    path.write_text(json.dumps({"resourceType": "Patient", "id": "x"}))
    assert cli.main(["evaluate", "--bundle", str(path)]) == 2
    assert "not a FHIR Bundle" in capsys.readouterr().err


def test_a_malformed_today_is_refused():
    with pytest.raises(SystemExit, match="YYYY-MM-DD"):
        cli.main(["evaluate", "--bundle", str(DEMO_1), "--today", "01/02/2026"])
