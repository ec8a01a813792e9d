"""Tests for crypto.keywrap: wrapping the per-petition dedup key under the master key."""

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given
from hypothesis import strategies as st

from samleng.crypto.errors import KeyUnwrapError
from samleng.crypto.keywrap import (
    WRAP_AAD_PREFIX,
    new_dedup_key,
    new_master_key,
    new_salt,
    unwrap_key,
    wrap_key,
)

ORIGIN = "petitions.example.org/p/end-impunity"
MASTER = bytes(range(200, 232))
KEY = bytes(range(32))
# Made once by wrap_key(MASTER, KEY, ORIGIN) and pasted here.
PINNED_WRAPPED = bytes.fromhex(
    "f7182c335cc835ae0994d259f2a71bc898b066201b8072cf2dd68f3c777c682a3183a27e33ca0707e2cdfd2a"
    "b8e4fe9e8ffe11c380f008ba1d6b5429"
)


def test_new_secrets_have_the_right_lengths_and_differ() -> None:
    assert len(new_dedup_key()) == 32
    assert len(new_master_key()) == 32
    assert len(new_salt()) == 16
    assert new_dedup_key() != new_dedup_key()
    assert new_salt() != new_salt()


def test_wrap_layout_and_round_trip() -> None:
    wrapped = wrap_key(MASTER, KEY, ORIGIN)
    assert len(wrapped) == 12 + 32 + 16
    assert unwrap_key(MASTER, wrapped, ORIGIN) == KEY
    assert wrap_key(MASTER, KEY, ORIGIN) != wrapped  # fresh nonce every time


def test_pinned_wrapped_key_opens() -> None:
    assert unwrap_key(MASTER, PINNED_WRAPPED, ORIGIN) == KEY


def test_unwrap_matches_an_independent_construction() -> None:
    nonce = bytes(12)
    aad = b"samleng-wrap/v1\n" + ORIGIN.encode("utf-8")
    assert aad.startswith(WRAP_AAD_PREFIX)
    wrapped = nonce + ChaCha20Poly1305(MASTER).encrypt(nonce, KEY, aad)
    assert unwrap_key(MASTER, wrapped, ORIGIN) == KEY
    # And the other way: what wrap_key makes opens with the plain AEAD and that AAD.
    ours = wrap_key(MASTER, KEY, ORIGIN)
    assert ChaCha20Poly1305(MASTER).decrypt(ours[:12], ours[12:], aad) == KEY


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


@pytest.mark.parametrize(
    ("master", "wrapped", "origin"),
    [
        (bytes(32), PINNED_WRAPPED, ORIGIN),
        (MASTER, PINNED_WRAPPED, ORIGIN + "x"),
        (MASTER, PINNED_WRAPPED, "petitions.example.org/p/other"),
        (MASTER, PINNED_WRAPPED[:-1], ORIGIN),
        (MASTER, PINNED_WRAPPED[:28], ORIGIN),
        (MASTER, PINNED_WRAPPED[:12], ORIGIN),
        (MASTER, b"", ORIGIN),
        (MASTER, _flip(PINNED_WRAPPED, 0), ORIGIN),
        (MASTER, _flip(PINNED_WRAPPED, 20), ORIGIN),
        (MASTER, _flip(PINNED_WRAPPED, len(PINNED_WRAPPED) - 1), ORIGIN),
        (MASTER, PINNED_WRAPPED + b"\x00", ORIGIN),
    ],
)
def test_unwrap_fails_closed(master: bytes, wrapped: bytes, origin: str) -> None:
    with pytest.raises(KeyUnwrapError):
        unwrap_key(master, wrapped, origin)


@pytest.mark.parametrize("master", [b"", bytes(16), bytes(31), bytes(33)])
def test_master_key_length_is_checked(master: bytes) -> None:
    with pytest.raises(ValueError):
        wrap_key(master, KEY, ORIGIN)
    with pytest.raises(ValueError):
        unwrap_key(master, PINNED_WRAPPED, ORIGIN)


def test_wrap_refuses_empty_key_and_bad_origin() -> None:
    with pytest.raises(ValueError):
        wrap_key(MASTER, b"", ORIGIN)
    with pytest.raises(ValueError):
        wrap_key(MASTER, KEY, "has space")


_origins = st.from_regex(r"[a-z0-9.-]{1,30}/p/[a-z0-9-]{1,30}", fullmatch=True)


@given(
    master=st.binary(min_size=32, max_size=32),
    key=st.binary(min_size=1, max_size=64),
    origin=_origins,
    other=_origins,
)
def test_wrap_round_trip_and_origin_binding(
    master: bytes, key: bytes, origin: str, other: str
) -> None:
    wrapped = wrap_key(master, key, origin)
    assert unwrap_key(master, wrapped, origin) == key
    if other != origin:
        with pytest.raises(KeyUnwrapError):
            unwrap_key(master, wrapped, other)


@given(
    master=st.binary(min_size=32, max_size=32),
    wrong=st.binary(min_size=32, max_size=32),
    index=st.integers(min_value=0, max_value=59),
)
def test_wrong_master_key_or_tampering_fails(master: bytes, wrong: bytes, index: int) -> None:
    wrapped = wrap_key(master, KEY, ORIGIN)
    if wrong != master:
        with pytest.raises(KeyUnwrapError):
            unwrap_key(wrong, wrapped, ORIGIN)
    with pytest.raises(KeyUnwrapError):
        unwrap_key(master, _flip(wrapped, index), ORIGIN)
