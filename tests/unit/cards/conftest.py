import pytest

import cards


@pytest.fixture(scope="session")
def knowledge():
    return cards.load_knowledge()


@pytest.fixture(scope="session")
def policy():
    return cards.Policy()
