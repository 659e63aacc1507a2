"""Fixtures for the feedback tests: the feedback app on the `db` of tests/unit/conftest.py."""
from __future__ import annotations

import flask
import pytest

from cds_service.storage import Database
from feedback_helpers import feedback_app


@pytest.fixture
def client(db: Database) -> flask.testing.FlaskClient:
    return feedback_app(db).test_client()
