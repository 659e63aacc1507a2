import sys
from pathlib import Path

# Make `tests.support`-style helpers importable as `support` from every test module.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest  # noqa: E402

from support.postgres_server import PostgresForTests, PostgresUnavailable, in_ci, start_for_tests  # noqa: E402


@pytest.fixture(scope="session")
def postgres() -> PostgresForTests:
    """A real PostgreSQL server for the session (started on first use, stopped at the end).

    Locally, a machine without PostgreSQL skips these tests with the reason; in CI (CI=true) that is
    a failure, so the PostgreSQL tests can never silently stop running there."""
    try:
        server = start_for_tests()
    except PostgresUnavailable as exc:
        if in_ci():
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        if server.server is not None:
            server.server.stop()
