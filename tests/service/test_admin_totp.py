"""TOTP (RFC 6238) against the RFC's own test vectors, and the secrets' round trips."""

from __future__ import annotations

import pytest

from samleng.service.admin import totp

SHA1_SECRET = b"12345678901234567890"
SHA256_SECRET = b"12345678901234567890123456789012"
SHA512_SECRET = SHA1_SECRET * 3 + b"1234"

# RFC 6238, Appendix B: (time, SHA1, SHA256, SHA512), 8 digits.
RFC6238 = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]

# RFC 4226, Appendix D: HOTP of the same SHA1 secret, counters 0-9.
RFC4226 = ["755224", "287082", "359152", "969429", "338314",
           "254676", "287922", "162583", "399871", "520489"]  # fmt: skip


@pytest.mark.parametrize(("unix_time", "sha1", "sha256", "sha512"), RFC6238)
def test_rfc6238_vectors(unix_time: int, sha1: str, sha256: str, sha512: str) -> None:
    assert totp.totp(SHA1_SECRET, unix_time, digits=8) == sha1
    assert totp.totp(SHA256_SECRET, unix_time, digits=8, digest="sha256") == sha256
    assert totp.totp(SHA512_SECRET, unix_time, digits=8, digest="sha512") == sha512


def test_rfc4226_vectors() -> None:
    assert [totp.hotp(SHA1_SECRET, i) for i in range(10)] == RFC4226


def test_drift_window_and_replay() -> None:
    secret = totp.new_secret()
    now = 1_700_000_000.0
    step = totp.time_step(now)
    for offset in (-1, 0, 1):
        code = totp.hotp(secret, step + offset)
        assert totp.matching_step(secret, code, now, None) == step + offset
    assert totp.matching_step(secret, totp.hotp(secret, step + 2), now, None) is None
    assert totp.matching_step(secret, totp.hotp(secret, step - 2), now, None) is None
    # Once step s was used, s and earlier are refused.
    assert totp.matching_step(secret, totp.hotp(secret, step), now, step) is None
    assert totp.matching_step(secret, totp.hotp(secret, step + 1), now, step) == step + 1


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 34 5x"])
def test_malformed_codes(code: str) -> None:
    assert totp.matching_step(totp.new_secret(), code, 1_700_000_000.0, None) is None


def test_secret_text_and_uri() -> None:
    secret = totp.new_secret()
    text = totp.secret_text(secret)
    assert totp.parse_secret_text(text) == secret
    assert totp.parse_secret_text(text.lower().replace(" ", "")) == secret
    with pytest.raises(ValueError):
        totp.parse_secret_text("not base32!")
    uri = totp.provisioning_uri(secret, "sokha", "Samleng")
    assert uri.startswith("otpauth://totp/Samleng:sokha?secret=")
    assert "issuer=Samleng" in uri


def test_wrapped_secret_is_bound_to_its_account() -> None:
    master = bytes(range(32))
    secret = totp.new_secret()
    wrapped = totp.wrap_secret(master, secret, 7)
    assert secret not in wrapped
    assert totp.unwrap_secret(master, wrapped, 7) == secret
    with pytest.raises(ValueError):
        totp.unwrap_secret(master, wrapped, 8)
    with pytest.raises(ValueError):
        totp.unwrap_secret(bytes(32), wrapped, 7)
