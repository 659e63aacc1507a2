"""`her2-cds` argument wiring: each command reaches its function with the documented defaults."""
from __future__ import annotations

from pathlib import Path

import pytest

from cds_service import cli


@pytest.mark.parametrize(("argv", "func", "expected"), [
    (["serve"], cli.cmd_serve, {"host": None, "port": None, "workers": None}),
    (["serve", "--host", "0.0.0.0", "--port", "9000", "--workers", "4"], cli.cmd_serve,
     {"host": "0.0.0.0", "port": 9000, "workers": 4}),
    (["demo"], cli.cmd_demo, {"port": 8080, "fhir_port": None}),
    (["demo", "--port", "9001", "--fhir-port", "9002"], cli.cmd_demo, {"port": 9001, "fhir_port": 9002}),
    (["evaluate", "--bundle", "b.json", "--patient", "p1"], cli.cmd_evaluate,
     {"bundle": Path("b.json"), "patient": "p1", "hook": "patient-view", "draft": None, "today": None, "format": "json"}),
    (["evaluate", "--bundle", "b.json", "--hook", "order-sign", "--draft", "a.json", "--draft", "b.json",
      "--today", "2026-01-02", "--format", "markdown"], cli.cmd_evaluate,
     {"hook": "order-sign", "draft": [Path("a.json"), Path("b.json")], "today": "2026-01-02", "format": "markdown"}),
    (["load-sandbox", "--fhir", "http://h/fhir"], cli.cmd_load_sandbox, {"fhir": "http://h/fhir", "dir": None, "timeout": 30.0}),
    (["feedback-report"], cli.cmd_feedback_report, {"db": None}),
    (["feedback-report", "--db", "sqlite:///x.db"], cli.cmd_feedback_report, {"db": "sqlite:///x.db"}),
    (["knowledge"], cli.cmd_knowledge, {}),
])
def test_each_command_is_wired_to_its_function_with_its_defaults(argv, func, expected):
    args = cli.build_parser().parse_args(argv)
    assert args.func is func
    assert {k: getattr(args, k) for k in expected} == expected


@pytest.mark.parametrize("argv", [[], ["evaluate"], ["evaluate", "--bundle", "b", "--hook", "encounter-start"],
                                  ["load-sandbox"], ["nonsense"]])
def test_invalid_command_lines_exit_with_usage(argv):
    with pytest.raises(SystemExit) as excinfo:
        cli.build_parser().parse_args(argv)
    assert excinfo.value.code == 2


def test_serve_flags_override_the_environment(monkeypatch):
    seen = {}
    monkeypatch.setattr("cds_service.serve.run", lambda host, port, workers, log_level, **kw: seen.update(host=host, port=port, workers=workers))
    monkeypatch.setenv("HER2CDS_PUBLIC_BASE_URL", "https://cds.example.org")
    monkeypatch.setenv("HER2CDS_HOST", "10.0.0.1")
    monkeypatch.setenv("HER2CDS_PORT", "7000")
    monkeypatch.setenv("HER2CDS_WORKERS", "3")
    assert cli.main(["serve", "--port", "7100"]) == 0
    assert seen == {"host": "10.0.0.1", "port": 7100, "workers": 3}


def test_serve_binds_loopback_by_default(monkeypatch):
    seen = {}
    monkeypatch.setattr("cds_service.serve.run", lambda host, port, workers, log_level, **kw: seen.update(host=host, port=port))
    monkeypatch.setenv("HER2CDS_PUBLIC_BASE_URL", "https://cds.example.org")
    for name in ("HER2CDS_HOST", "HER2CDS_PORT", "HER2CDS_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    cli.main(["serve"])
    assert seen == {"host": "127.0.0.1", "port": 8080}


@pytest.mark.parametrize("env, args, message", [
    ({"HER2CDS_AUTH_MODE": "required"}, [], "HER2CDS_PUBLIC_BASE_URL is required"),
    ({"HER2CDS_AUTH_MODE": "off"}, ["--host", "0.0.0.0"], "needs a loopback HER2CDS_HOST"),
    ({"HER2CDS_AUTH_MODE": "off", "HER2CDS_HOST": "10.0.0.1"}, [], "needs a loopback HER2CDS_HOST"),
    ({"HER2CDS_AUTH_MODE": "optional"}, [], "HER2CDS_AUTH_MODE must be one of"),
], ids=["required-without-public-base-url", "off-on-all-interfaces", "off-on-a-lan-address", "optional-mode"])
def test_serve_refuses_to_start_insecurely(monkeypatch, capsys, env, args, message):
    started = []
    monkeypatch.setattr("cds_service.serve.run", lambda *a, **kw: started.append(a))
    for name in ("HER2CDS_HOST", "HER2CDS_PUBLIC_BASE_URL", "HER2CDS_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["serve", *args]) == 2
    assert started == [] and message in capsys.readouterr().err


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_serve_with_auth_off_starts_on_a_loopback_address(monkeypatch, host):
    seen = {}
    monkeypatch.setattr("cds_service.serve.run", lambda host, port, workers, log_level, **kw: seen.update(host=host))
    monkeypatch.setenv("HER2CDS_AUTH_MODE", "off")
    monkeypatch.delenv("HER2CDS_HOST", raising=False)
    assert cli.main(["serve", "--host", host]) == 0 and seen == {"host": host}


def test_gunicorn_uses_threaded_workers_so_slow_clients_hold_a_thread_not_a_worker():
    from cds_service.serve import gunicorn_options
    options = gunicorn_options("127.0.0.1", 8123, 2, threads=8)
    assert options["worker_class"] == "cds_service.gunicorn_worker.FreeThreadAcceptingWorker"
    assert options["threads"] == 8


def test_gunicorn_options_bind_exactly_the_given_address():
    from cds_service.serve import gunicorn_options
    options = gunicorn_options("127.0.0.1", 8123, 0)
    assert options["bind"] == "127.0.0.1:8123" and options["workers"] == 1


def test_order_hook_context_carries_the_drafts_and_order_select_selects_them_all():
    drafts = [{"resourceType": "MedicationRequest", "id": "d1"}, {"resourceType": "MedicationRequest", "id": "d2"}]
    select = cli.build_context("order-select", "p1", drafts)
    sign = cli.build_context("order-sign", "p1", drafts)
    assert [e["resource"]["id"] for e in select["draftOrders"]["entry"]] == ["d1", "d2"]
    assert select["selections"] == ["MedicationRequest/d1", "MedicationRequest/d2"]
    assert "selections" not in sign and sign["draftOrders"]["type"] == "collection"
    assert "draftOrders" not in cli.build_context("patient-view", "p1", drafts)


def test_markdown_rendering_marks_the_recommended_regimen():
    card = {"summary": "Next regimen: T-DXd", "indicator": "info", "detail": "Basis: ...",
            "source": {"label": "her2-cds", "topic": {"code": "her2-next-regimen"}},
            "suggestions": [{"label": "T-DXd", "isRecommended": True, "actions": [
                {"type": "create", "resource": {"medicationCodeableConcept": {"text": "fam-trastuzumab deruxtecan"}}}]},
                {"label": "T-DM1", "actions": []}]}
    text = cli.cards_markdown([card])
    assert "## [info] Next regimen: T-DXd" in text
    assert "- T-DXd **(recommended)** — fam-trastuzumab deruxtecan" in text
    assert "- T-DM1\n" in text + "\n"
    assert cli.cards_markdown([]) == "_No cards._\n"
