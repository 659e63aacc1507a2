"""Fixtures more than one unit-test folder uses: the service's database on a SQLite file."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from cds_service.storage import Database


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A SQLite file in a folder that does not exist yet (the service creates it)."""
    return f"sqlite:///{tmp_path / 'var' / 'her2cds.sqlite3'}"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """The feedback, issued-card and JWT replay tables, created, on `db_url`."""
    database = Database(db_url)
    database.create_all()
    yield database
    database.dispose()
