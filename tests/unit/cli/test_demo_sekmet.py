"""The sekmet-fhir launcher's pure parts: where the venv lives, what config it writes."""
from __future__ import annotations

import socket
from pathlib import Path

from sandbox import sekmet


def test_the_venv_defaults_to_the_user_cache(monkeypatch):
    monkeypatch.delenv(sekmet.VENV_ENV, raising=False)
    assert sekmet.default_venv_dir() == Path.home() / ".cache" / "her2-cds" / "sekmet-0.1.1"


def test_the_venv_location_can_be_overridden(monkeypatch, tmp_path):
    monkeypatch.setenv(sekmet.VENV_ENV, str(tmp_path / "v"))
    assert sekmet.default_venv_dir() == tmp_path / "v"


def test_an_existing_venv_is_used_without_installing(tmp_path, monkeypatch):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "sekmet").write_text("")
    monkeypatch.setattr(sekmet.subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("installed")))
    assert sekmet.ensure_sekmet(tmp_path) == tmp_path


def test_the_config_binds_loopback_with_the_simulator_off(tmp_path):
    server = sekmet.SekmetServer(port=18999, venv=tmp_path)
    text = server._write_config(tmp_path).read_text()
    for line in ("host: 127.0.0.1", "port: 18999", "base_url: http://127.0.0.1:18999/fhir", "simulator: {enabled: false}",
                 "validation: {inbound: warn}", "log_inbound: false", f"data_dir: {tmp_path / 'data'}"):
        assert line in text
    assert server.base_url == "http://127.0.0.1:18999/fhir"


def test_free_port_is_bindable_on_loopback():
    port = sekmet.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
