"""Tests for crypto.leaf: the normative 81-byte leaf layout."""

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samleng.crypto.errors import LeafFormatError, VerificationError
from samleng.crypto.leaf import (
    LEAF_PREFIX,
    LEAF_SIZE,
    Leaf,
    LeafKind,
    decode_leaf,
    encode_leaf,
    header_leaf,
    is_signature,
    withdrawal_leaf,
)

C = bytes(range(32))
D = bytes(range(32, 64))


def test_layout_known_answer() -> None:
    assert LEAF_PREFIX == b"samleng-leaf/v1\n" and len(LEAF_PREFIX) == 16
    assert LEAF_SIZE == 81
    leaf = encode_leaf(LeafKind.VERIFIED_SIGNATURE, C, D)
    assert leaf == b"samleng-leaf/v1\n" + b"\x02" + C + D
    assert (
        hashlib.sha256(leaf).hexdigest()
        == hashlib.sha256(bytes.fromhex("73616d6c656e672d6c6561662f76310a02") + C + D).hexdigest()
    )


def test_header_leaf() -> None:
    petition = b'{"origin":"petitions.example.org/p/x"}'
    leaf = header_leaf(petition)
    assert decode_leaf(leaf) == Leaf(
        kind=LeafKind.HEADER, c=hashlib.sha256(petition).digest(), d=bytes(32)
    )


@given(
    kind=st.sampled_from([0, 1, 2]),
    c=st.binary(min_size=32, max_size=32),
    d=st.binary(min_size=32, max_size=32),
)
def test_round_trip(kind: int, c: bytes, d: bytes) -> None:
    leaf = encode_leaf(LeafKind(kind), c, d)
    assert len(leaf) == LEAF_SIZE
    assert decode_leaf(leaf) == Leaf(kind=LeafKind(kind), c=c, d=d)


@pytest.mark.parametrize(
    ("leaf", "message"),
    [
        (encode_leaf(LeafKind.SIGNATURE, C, D)[:-1], "80 bytes"),
        (encode_leaf(LeafKind.SIGNATURE, C, D) + b"\x00", "82 bytes"),
        (b"", "0 bytes"),
        (b"samleng-leaf/v2\n" + b"\x01" + C + D, "prefix"),
        (b"SAMLENG-leaf/v1\n" + b"\x01" + C + D, "prefix"),
        (LEAF_PREFIX + b"\x08" + C + D, "0x08"),
        (LEAF_PREFIX + b"\x07" + C + D, "0x07"),
        (LEAF_PREFIX + b"\xff" + C + D, "0xff"),
    ],
)
def test_decode_rejects(leaf: bytes, message: str) -> None:
    with pytest.raises(LeafFormatError, match=message):
        decode_leaf(leaf)


def test_errors_are_verification_errors() -> None:
    assert issubclass(LeafFormatError, VerificationError)


def test_encode_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        encode_leaf(8, C, D)  # type: ignore[arg-type]  # no such kind
    with pytest.raises(ValueError):
        withdrawal_leaf(C[:31])
    with pytest.raises(ValueError):
        encode_leaf(LeafKind.SIGNATURE, C[:31], D)
    with pytest.raises(ValueError):
        encode_leaf(LeafKind.SIGNATURE, C, D + b"\x00")


def test_is_signature() -> None:
    expected = [False, True, True, False, True, True, False, False]
    assert [is_signature(k) for k in range(8)] == expected
