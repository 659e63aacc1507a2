"""`her2-cds check-config`: one line per check, exit 1 on any problem (environment, issuers, database, knowledge)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds_service.cli import main

def good_jwks() -> dict:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec
    jwk = json.loads(jwt.get_algorithm_by_name("ES384").to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key()))
    return {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "ES384"}]}


@pytest.fixture
def env(monkeypatch, tmp_path) -> Path:
    """A clean, valid environment: auth off, SQLite in tmp_path."""
    import os
    for name in [v for v in os.environ if v.startswith("HER2CDS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HER2CDS_AUTH_MODE", "off")
    monkeypatch.setenv("HER2CDS_FEEDBACK_DB_URL", f"sqlite:///{tmp_path}/db/her2.sqlite3")
    return tmp_path


def run(capsys, *args: str) -> tuple[int, str]:
    code = main(["check-config", *args])
    return code, capsys.readouterr().out


def test_a_valid_configuration_passes(env, capsys):
    code, out = run(capsys)
    assert code == 0, out
    assert "all checks passed" in out


def test_the_knowledge_draft_orders_are_checked_as_fhir_r4(env, capsys):
    code, out = run(capsys)
    assert "OK    knowledge (packaged): draft orders are FHIR R4 MedicationRequests" in out


def test_an_invalid_setting_fails(env, capsys, monkeypatch):
    monkeypatch.setenv("HER2CDS_TFI_POLICY", "whenever")
    code, out = run(capsys)
    assert code == 1 and "FAIL  environment" in out


def test_an_unknown_her2cds_variable_is_warned_about(env, capsys, monkeypatch):
    monkeypatch.setenv("HER2CDS_AUTH_MOD", "required")
    code, out = run(capsys)
    assert code == 0 and "WARN  environment: HER2CDS_AUTH_MOD" in out


def test_a_missing_trusted_issuers_file_fails(env, capsys, monkeypatch):
    monkeypatch.setenv("HER2CDS_AUTH_MODE", "required")
    monkeypatch.setenv("HER2CDS_PUBLIC_BASE_URL", "https://cds.example.org")
    monkeypatch.setenv("HER2CDS_TRUSTED_ISSUERS_FILE", str(env / "missing.json"))
    code, out = run(capsys)
    assert code == 1 and "FAIL  trusted issuers" in out


def test_a_trusted_issuers_file_with_keys_passes(env, capsys, monkeypatch):
    (env / "jwks.json").write_text(json.dumps(good_jwks()))
    (env / "issuers.json").write_text(json.dumps([{"iss": "https://ehr.test", "jwks_file": "jwks.json"}]))
    monkeypatch.setenv("HER2CDS_AUTH_MODE", "required")
    monkeypatch.setenv("HER2CDS_PUBLIC_BASE_URL", "https://cds.example.org")
    monkeypatch.setenv("HER2CDS_TRUSTED_ISSUERS_FILE", str(env / "issuers.json"))
    code, out = run(capsys)
    assert code == 0, out
    assert "OK    trusted issuers" in out


def test_an_unreachable_database_fails_without_showing_its_password(env, capsys, monkeypatch):
    from sandbox.sekmet import free_port
    monkeypatch.setenv("HER2CDS_FEEDBACK_DB_URL", f"postgresql://her2:hunter2@127.0.0.1:{free_port()}/her2")
    code, out = run(capsys)
    assert code == 1 and "FAIL  database" in out
    assert "hunter2" not in out


def test_a_broken_knowledge_file_fails(env, capsys):
    broken = env / "knowledge.yaml"
    broken.write_text("regimens: [unclosed\n")
    code, out = run(capsys, "--knowledge", str(broken))
    assert code == 1 and "FAIL  knowledge" in out


def test_the_database_check_reaches_a_real_postgresql(env, capsys, monkeypatch, postgres):
    monkeypatch.setenv("HER2CDS_FEEDBACK_DB_URL", postgres.new_database("checkconfig"))
    code, out = run(capsys)
    assert code == 0, out
