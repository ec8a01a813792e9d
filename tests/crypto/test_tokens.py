"""Tests for crypto.tokens: Argon2 parameters and dedup tokens."""

import hashlib
import hmac

import pytest
from argon2.low_level import Type, hash_secret_raw
from hypothesis import given
from hypothesis import strategies as st

from samleng.crypto.tokens import DEFAULT_ARGON2, Argon2Params, dedup_token

KEY = bytes(range(32))
SALT = bytes(range(100, 116))
IDENTIFIER = "phone:+85512345678"


def test_default_parameters() -> None:
    assert (DEFAULT_ARGON2.time_cost, DEFAULT_ARGON2.memory_kib, DEFAULT_ARGON2.parallelism) == (
        2,
        19456,
        1,
    )
    assert Argon2Params() == DEFAULT_ARGON2


def test_params_are_frozen_and_keyword_only() -> None:
    with pytest.raises(AttributeError):
        DEFAULT_ARGON2.time_cost = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        Argon2Params(1, 8, 1)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"time_cost": 0},
        {"time_cost": -1},
        {"memory_kib": 0},
        {"memory_kib": 7},
        {"parallelism": 0},
        {"parallelism": 4, "memory_kib": 31},
        {"time_cost": True},
        {"time_cost": 2.0},
        {"memory_kib": "19456"},
    ],
)
def test_params_refuse_invalid(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Argon2Params(**kwargs)  # type: ignore[arg-type]


def test_token_known_answer_cheap(cheap_argon2: Argon2Params) -> None:
    token = dedup_token(KEY, IDENTIFIER, SALT, cheap_argon2)
    assert token.hex() == "9e74ca68434a4c768b22dd158397e88d886cb65084ede0cf0180aa5bf366412d"
    # The same value computed step by step: HMAC-SHA256 as the Argon2id password.
    password = hmac.new(KEY, IDENTIFIER.encode("utf-8"), hashlib.sha256).digest()
    by_hand = hash_secret_raw(password, SALT, 1, 8, 1, 32, Type.ID)
    assert token == by_hand


def test_token_known_answer_default_parameters() -> None:
    token = dedup_token(KEY, IDENTIFIER, SALT, DEFAULT_ARGON2)
    assert token.hex() == "4063c031dd4f516f3d23097566937971eaa58e8cbcbe05204c44ab55f883474d"


def test_token_depends_on_every_input(cheap_argon2: Argon2Params) -> None:
    base = dedup_token(KEY, IDENTIFIER, SALT, cheap_argon2)
    assert len(base) == 32
    assert dedup_token(KEY, IDENTIFIER, SALT, cheap_argon2) == base
    variants = {
        dedup_token(bytes(32), IDENTIFIER, SALT, cheap_argon2),
        dedup_token(KEY, IDENTIFIER, bytes(16), cheap_argon2),
        dedup_token(KEY, "phone:+85512345679", SALT, cheap_argon2),
        dedup_token(KEY, IDENTIFIER, SALT, Argon2Params(time_cost=2, memory_kib=8)),
        dedup_token(KEY, IDENTIFIER, SALT, Argon2Params(time_cost=1, memory_kib=16)),
        hmac.new(KEY, IDENTIFIER.encode(), hashlib.sha256).digest(),
    }
    assert base not in variants
    assert len(variants) == 6


@pytest.mark.parametrize(
    ("key", "identifier", "salt"),
    [
        (bytes(31), IDENTIFIER, SALT),
        (bytes(33), IDENTIFIER, SALT),
        (KEY, IDENTIFIER, bytes(15)),
        (KEY, IDENTIFIER, bytes(32)),
        (KEY, "", SALT),
    ],
)
def test_token_checks_lengths(
    key: bytes, identifier: str, salt: bytes, cheap_argon2: Argon2Params
) -> None:
    with pytest.raises(ValueError):
        dedup_token(key, identifier, salt, cheap_argon2)


@given(
    key_a=st.binary(min_size=32, max_size=32),
    key_b=st.binary(min_size=32, max_size=32),
    salt=st.binary(min_size=16, max_size=16),
    identifier=st.text(min_size=1, max_size=40),
)
def test_same_identifier_on_two_petitions_gives_unrelated_tokens(
    key_a: bytes, key_b: bytes, salt: bytes, identifier: str, cheap_argon2: Argon2Params
) -> None:
    token_a = dedup_token(key_a, identifier, salt, cheap_argon2)
    assert token_a == dedup_token(key_a, identifier, salt, cheap_argon2)
    if key_a != key_b:
        assert token_a != dedup_token(key_b, identifier, salt, cheap_argon2)
