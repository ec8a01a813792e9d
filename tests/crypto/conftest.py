"""Fixtures for the crypto unit tests."""

import pytest

from samleng.crypto.tokens import Argon2Params

# The cheapest parameters Argon2 accepts, so token tests run in microseconds.
CHEAP_ARGON2 = Argon2Params(time_cost=1, memory_kib=8, parallelism=1)


@pytest.fixture(scope="session")
def cheap_argon2() -> Argon2Params:
    """Argon2 parameters that make the KDF cheap for the test suite (session scope, so that
    Hypothesis tests may use it too; the value is frozen)."""
    return CHEAP_ARGON2
