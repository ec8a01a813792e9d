"""Tests for crypto.identifiers: email and phone normalisation."""

import unicodedata

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from samleng.crypto.errors import InvalidEmail, InvalidIdentifier, InvalidPhone
from samleng.service.signing.identifiers import (
    DEFAULT_REGION,
    IDENTIFIER_MODES,
    normalize_email,
    normalize_identifier,
    normalize_phone,
)

KHMER_DIGITS = "០១២៣៤៥៦៧៨៩"
TO_KHMER = str.maketrans("0123456789", KHMER_DIGITS)


def test_constants() -> None:
    assert IDENTIFIER_MODES == ("email", "phone", "none")
    assert DEFAULT_REGION == "KH"
    assert issubclass(InvalidEmail, InvalidIdentifier)
    assert issubclass(InvalidPhone, InvalidIdentifier)


# --- phone -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "+855 12 345 678",
        "012345678",
        "+85512345678",
        "012 345 678",
        "012-345-678",
        "(012) 345.678",
        " 012345678\n",
        "012\u00a0345\u00a0678",  # no-break spaces
        "០១២៣៤៥៦៧៨",  # Khmer digits, as typed on a Khmer keyboard
        "+៨៥៥ ១២ ៣៤៥ ៦៧៨",
        "០12 ៣៤៥ 678",  # mixed scripts
        "０１２３４５６７８",  # fullwidth digits
    ],
)
def test_cambodian_forms_dedupe(raw: str) -> None:
    assert normalize_phone(raw) == "phone:+85512345678"
    assert normalize_phone(raw, "KH") == "phone:+85512345678"


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 650 253 0000", "KH", "phone:+16502530000"),  # diaspora signer, international form
        ("(650) 253-0000", "US", "phone:+16502530000"),
        ("+33 6 12 34 56 78", "KH", "phone:+33612345678"),
        ("097 123 4567", "KH", "phone:+855971234567"),
    ],
)
def test_phone_other_forms(raw: str, region: str, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "+",
        "0",
        "0123",  # too short
        "+999 1234 5678",  # no such country code
        "6502530000",  # a valid US number, but read as Cambodian it is not valid
        "012345678 ext 5",  # extensions are refused, not dropped
        "012345678;ext=5",
        "012345678#5",
        "1-800-FLOWERS",  # vanity letters are refused, not translated
        "012\x00345678",
        "012\n345678",
        "012\t345678",
        "012\u200b345678",  # zero-width space
        "012345678\u202e",  # right-to-left override
        "0" * 65,  # over the length cap
        " " * 60 + "012345678",  # cap applies before stripping
        "²012345678",  # superscript digit is not a decimal digit
    ],
)
def test_phone_refused(raw: str) -> None:
    with pytest.raises(InvalidPhone) as info:
        normalize_phone(raw)
    # Messages are fixed text: the number never ends up in a message or a chained traceback.
    if raw.strip():
        assert raw.strip() not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_phone_unknown_region_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        normalize_phone("012345678", "XX")


@given(
    subscriber=st.from_regex(r"0[1-9][0-9]{7,8}", fullmatch=True),
    khmer=st.booleans(),
)
def test_phone_is_idempotent_and_script_blind(subscriber: str, khmer: bool) -> None:
    try:
        result = normalize_phone(subscriber)
    except InvalidPhone:
        assume(False)
        return
    assert result.startswith("phone:+855")
    assert normalize_phone(result.removeprefix("phone:")) == result
    assert normalize_phone(subscriber.translate(TO_KHMER) if khmer else subscriber) == result


@given(st.text(max_size=70))
def test_phone_fails_only_with_invalid_phone(raw: str) -> None:
    try:
        result = normalize_phone(raw)
    except InvalidPhone:
        return
    assert result.startswith("phone:+")
    assert result[7:].isascii() and result[7:].isdigit()


# --- email -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("A.B+x@gmail.com", "email:ab@gmail.com"),
        ("ab@gmail.com", "email:ab@gmail.com"),
        ("ab@googlemail.com", "email:ab@gmail.com"),
        ("a.b@GoogleMail.COM", "email:ab@gmail.com"),
        ("Sok.Chan+petition+x@Example.ORG", "email:sok.chan@example.org"),
        ("  sok@example.org ", "email:sok@example.org"),
        ("Ünïcode@Example.COM", "email:ünïcode@example.com"),
        ("用户@例子.广告", "email:用户@例子.广告"),
        ("a@xn--fiqs8s.cn", "email:a@中国.cn"),  # punycode domain shown as Unicode
        ("a@中国.cn", "email:a@中国.cn"),
        ("se\u0301@example.com", "email:sé@example.com"),  # NFD local part becomes NFC
        ("sok@ខ្មែរ.example", "email:sok@ខ្មែរ.example"),
    ],
)
def test_email_normalises(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected
    assert unicodedata.is_normalized("NFC", expected)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "plain",
        "@example.com",
        "a@",
        "a@b",  # no dot in the domain
        "a@@example.com",
        "a b@example.com",
        '"a b"@example.com',  # quoted local parts are refused
        "a@[192.0.2.1]",  # domain literals are refused
        "a@localhost",
        "a@example.onion",  # special-use domain
        "+tag@example.com",  # only a tag: nothing identifies the person
        "+@example.com",
        "+a.b@gmail.com",
        "a.+x@example.com",  # stripping the tag would leave "a." which is not an address
        ".a@example.com",
        "a..b@gmail.com",
        "a@example.com\x00",
        "a\n@example.com",
        "a@exa\u200bmple.com",
        "a@" + "b" * 250 + ".com",  # over 254 octets, under the cap
        "a" * 300 + "@" + "b" * 30 + ".com",  # over the 320 cap
        " " * 310 + "a@example.com",  # cap applies before stripping
    ],
)
def test_email_refused(raw: str) -> None:
    with pytest.raises(InvalidEmail) as info:
        normalize_email(raw)
    if raw.strip():
        assert raw.strip() not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


@given(st.emails())
def test_email_is_idempotent(raw: str) -> None:
    try:
        result = normalize_email(raw)
    except InvalidEmail:
        assume(False)
        return
    assert result.startswith("email:")
    assert result == result.lower()
    address = result.removeprefix("email:")
    assert "+" not in address.split("@")[0]
    assert normalize_email(address) == result


@given(st.text(max_size=80))
def test_email_fails_only_with_invalid_email(raw: str) -> None:
    try:
        result = normalize_email(raw)
    except InvalidEmail:
        return
    assert result.startswith("email:") and "@" in result


# --- dispatch ----------------------------------------------------------------------------


def test_normalize_identifier_dispatches() -> None:
    assert normalize_identifier("email", "A.B+x@gmail.com") == "email:ab@gmail.com"
    assert normalize_identifier("phone", "012345678") == "phone:+85512345678"
    assert normalize_identifier("phone", "(650) 253-0000", region="US") == "phone:+16502530000"
    with pytest.raises(InvalidPhone):
        normalize_identifier("phone", "(650) 253-0000")
    with pytest.raises(InvalidEmail):
        normalize_identifier("email", "012345678")


@pytest.mark.parametrize("mode", ["none", "", "EMAIL", "sms", "Phone"])
def test_normalize_identifier_refuses_mode(mode: str) -> None:
    with pytest.raises(ValueError):
        normalize_identifier(mode, "012345678")
