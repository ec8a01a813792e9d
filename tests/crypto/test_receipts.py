"""Tests for crypto.receipts: receipt secrets, their printed form and commitment."""

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samleng.crypto.errors import ReceiptFormatError
from samleng.crypto.receipts import (
    RECEIPT_BYTES,
    RECEIPT_PREFIX,
    format_receipt,
    new_receipt_secret,
    parse_receipt,
    receipt_commitment,
)

ORIGIN = "petitions.example.org/p/end-impunity"
R = bytes(range(16))
R_TEXT = "AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B4"


def test_new_receipt_secret() -> None:
    assert RECEIPT_BYTES == 16
    assert len(new_receipt_secret()) == 16
    assert new_receipt_secret() != new_receipt_secret()


def test_format_known_answer() -> None:
    assert format_receipt(R) == R_TEXT
    assert R_TEXT.replace("-", "") == base64.b32encode(R).decode().rstrip("=")
    assert format_receipt(bytes(16)) == "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AA"
    assert format_receipt(b"\xff" * 16) == "7777-7777-7777-7777-7777-7777-74"


def test_commitment_known_answer() -> None:
    expected = "c33f557e9467d42a66c9a979d5e88337929334a2108d043ddce8b4acbc075787"
    assert receipt_commitment(ORIGIN, R).hex() == expected
    by_hand = hashlib.sha256(b"samleng-receipt/v1\n" + ORIGIN.encode() + b"\n" + R).digest()
    assert receipt_commitment(ORIGIN, R) == by_hand
    assert RECEIPT_PREFIX == b"samleng-receipt/v1\n"


def test_commitment_depends_on_origin_and_secret() -> None:
    base = receipt_commitment(ORIGIN, R)
    assert receipt_commitment(ORIGIN + "2", R) != base
    assert receipt_commitment(ORIGIN, bytes(16)) != base


@pytest.mark.parametrize("r", [b"", bytes(15), bytes(17)])
def test_wrong_secret_length_is_a_value_error(r: bytes) -> None:
    with pytest.raises(ValueError):
        format_receipt(r)
    with pytest.raises(ValueError):
        receipt_commitment(ORIGIN, r)


@pytest.mark.parametrize(
    "text",
    [
        R_TEXT,
        R_TEXT.lower(),
        R_TEXT.replace("-", ""),
        R_TEXT.replace("-", " "),
        "  aaaq eaye\tauda-ocaj\nbifq--ydio-b4  ",
        R_TEXT.replace("-", "\u00a0"),  # no-break space from a copy-paste
        "AAAQ-EAYE-AUDA-OCAJ-B1FQ-YD1O-84",  # look-alikes 1 -> I, 8 -> B
        "AAAQ-EAYE-AUDA-0CAJ-BIFQ-YDI0-B4",  # look-alike 0 -> O
    ],
)
def test_parse_tolerates_case_spaces_dashes_and_lookalikes(text: str) -> None:
    assert parse_receipt(text) == R


@pytest.mark.parametrize(
    "text",
    [
        "",
        "----",
        R_TEXT[:-1],  # 25 characters
        R_TEXT + "A",  # 27 characters
        R_TEXT + "======",  # padding is not part of the code
        "AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B5",  # non-zero unused trailing bits
        "AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B7",
        "AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B9",  # 9 is not base32
        "AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B_",
        "AAAQ-EAYE-AUDA-OCAJ-BıFQ-YDIO-B4",  # dotless i upper-cases to I: refused
        "AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B\u0664",  # Arabic-Indic digit four
        "AAAQ\x00EAYE-AUDA-OCAJ-BIFQ-YDIO-B4",
        "A" * 201,
        "-" * 201,
        " " * 300 + R_TEXT,  # cap applies before whitespace is stripped
    ],
)
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ReceiptFormatError):
        parse_receipt(text)


def test_parse_accepts_up_to_the_cap() -> None:
    assert parse_receipt(R_TEXT.center(200)) == R


@given(st.binary(min_size=16, max_size=16))
def test_format_parse_round_trip(r: bytes) -> None:
    text = format_receipt(r)
    assert len(text) == 32
    assert [len(group) for group in text.split("-")] == [4, 4, 4, 4, 4, 4, 2]
    assert text == text.upper()
    assert parse_receipt(text) == r


@given(
    r=st.binary(min_size=16, max_size=16),
    lower=st.lists(st.booleans(), min_size=26, max_size=26),
    seps=st.lists(st.sampled_from(["", "", " ", "-", "\t", " - "]), min_size=27, max_size=27),
)
def test_parse_tolerates_any_case_and_separators(
    r: bytes, lower: list[bool], seps: list[str]
) -> None:
    compact = format_receipt(r).replace("-", "")
    chars = [c.lower() if low else c for c, low in zip(compact, lower, strict=True)]
    text = seps[0] + "".join(c + s for c, s in zip(chars, seps[1:], strict=True))
    assert parse_receipt(text) == r


@given(st.text(max_size=60))
def test_parse_never_fails_with_another_error(text: str) -> None:
    try:
        r = parse_receipt(text)
    except ReceiptFormatError:
        return
    assert parse_receipt(format_receipt(r)) == r
