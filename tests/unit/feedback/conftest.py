"""Fixtures for the feedback tests: a SQLite file database and the feedback app on it."""
from __future__ import annotations

from pathlib import Path

import flask
import pytest

from cds_service.storage import Database
from feedback_helpers import feedback_app


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'var' / 'feedback.sqlite3'}"


@pytest.fixture
def db(db_url: str) -> Database:
    database = Database(db_url)
    database.create_all()
    yield database
    database.dispose()


@pytest.fixture
def client(db: Database) -> flask.testing.FlaskClient:
    return feedback_app(db).test_client()
