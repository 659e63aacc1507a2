"""Configuration is parsed strictly: a value that is not clearly valid stops start-up with a message
naming the variable; the treatment-free-interval policies come from the knowledge file only."""
from __future__ import annotations

import subprocess
import sys

import pytest

import cards
from cds_service.config import Settings, load_settings


@pytest.mark.parametrize("variable, raw", [
    ("HER2CDS_LIST_POST_SEED_REGIMENS", "ture"),
    ("HER2CDS_LIST_POST_SEED_REGIMENS", "2"),
    ("HER2CDS_LIST_POST_SEED_REGIMENS", "enabled"),
    ("HER2CDS_TFI_POLICY", "seed-6-months"),
    ("HER2CDS_AUTH_MODE", "none"),
    ("HER2CDS_FHIR_MAX_PAGES", "twenty"),
    ("HER2CDS_FHIR_TIMEOUT_SECONDS", "1,5"),
    ("HER2CDS_LOG_LEVEL", "LOUD"),
    ("HER2CDS_RETENTION_DAYS", "0"),
])
def test_an_unknown_value_stops_loading_with_a_message_naming_the_variable(variable, raw):
    with pytest.raises(ValueError) as error:
        load_settings(environ={variable: raw})
    assert variable in str(error.value)


@pytest.mark.parametrize("raw, expected", [
    ("true", True), ("1", True), ("YES", True), ("on", True),
    ("false", False), ("0", False), ("No", False), (" off ", False),
])
def test_booleans_accept_the_usual_spellings(raw, expected):
    assert load_settings(environ={"HER2CDS_LIST_POST_SEED_REGIMENS": raw}).list_post_seed_regimens is expected


def test_the_tfi_policies_and_their_default_come_from_the_knowledge_file():
    knowledge = cards.load_knowledge()
    [default] = [p.id for p in knowledge.tfi_policies.values() if p.default]
    assert Settings().tfi_policy is None                       # no second copy of the default in config
    assert knowledge.tfi_policy(None).id == default
    for policy in knowledge.tfi_policies:
        assert load_settings(environ={"HER2CDS_TFI_POLICY": policy}).tfi_policy == policy


def test_a_typo_in_a_boolean_stops_serve_before_it_starts():
    done = subprocess.run([sys.executable, "-m", "cds_service.cli", "serve", "--port", "1"],
                          env={"HER2CDS_LIST_POST_SEED_REGIMENS": "ture", "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "HER2CDS_LIST_POST_SEED_REGIMENS" in done.stderr and "ture" in done.stderr


def test_defaults_are_safe():
    settings = Settings()
    assert settings.cors_origin_list == []                     # no browser origin unless listed
    assert settings.feedback_db_url == "sqlite:////var/lib/her2-cds/her2cds.sqlite3"   # absolute, documented
