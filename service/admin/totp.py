"""Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP), and their secrets at rest.

Short enough to read in full, so no dependency: HMAC-SHA1, 30-second steps, 6 digits, what
every authenticator app speaks. Checked against the RFC 6238 test vectors. A code is
accepted one step early or late (clock drift) and never twice (the last step is stored).
Secrets are kept wrapped under a key derived from the master key, so a database dump alone
cannot produce codes.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import struct
from urllib.parse import quote

from samleng.crypto.errors import SealedBoxError
from samleng.crypto.symmetric import seal, unseal
from samleng.service.platform.keys import derive_key

STEP_SECONDS = 30
DIGITS = 6
SECRET_BYTES = 20  # 160 bits, RFC 4226's recommendation for HMAC-SHA1
DRIFT_STEPS = 1
_WRAP_AAD = b"samleng-totp/v1\n"


def hotp(secret: bytes, counter: int, *, digits: int = DIGITS, digest: str = "sha1") -> str:
    """The RFC 4226 one-time password for ``counter`` (dynamic truncation, zero-padded)."""
    mac = hmac.new(secret, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def time_step(unix_time: float) -> int:
    """The RFC 6238 time step ``T`` of a Unix time (T0 = 0)."""
    return int(unix_time) // STEP_SECONDS


def totp(secret: bytes, unix_time: float, *, digits: int = DIGITS, digest: str = "sha1") -> str:
    """The RFC 6238 code at ``unix_time``."""
    return hotp(secret, time_step(unix_time), digits=digits, digest=digest)


def matching_step(secret: bytes, code: str, unix_time: float, last_step: int | None) -> int | None:
    """The time step whose code equals ``code`` within the drift window and after
    ``last_step``; None when there is none (wrong, expired, or already used)."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    now = time_step(unix_time)
    found = None
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        # Compare every candidate, so the time taken does not depend on which one matched.
        if hmac.compare_digest(hotp(secret, step), code) and found is None:
            found = step
    if found is None or (last_step is not None and found <= last_step):
        return None
    return found


def new_secret() -> bytes:
    """A fresh random TOTP secret."""
    return secrets.token_bytes(SECRET_BYTES)


def secret_text(secret: bytes) -> str:
    """The secret as authenticator apps take it typed in: base32, no padding, in groups of 4."""
    text = base64.b32encode(secret).decode().rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def parse_secret_text(text: str) -> bytes:
    """The secret back from :func:`secret_text`; ValueError if it is not one."""
    compact = text.replace(" ", "").upper()
    padded = compact + "=" * (-len(compact) % 8)
    try:
        secret = base64.b32decode(padded)
    except ValueError:
        raise ValueError("not a TOTP secret") from None
    if len(secret) != SECRET_BYTES:
        raise ValueError("not a TOTP secret")
    return secret


def provisioning_uri(secret: bytes, account_name: str, issuer: str) -> str:
    """The ``otpauth://`` URI that authenticator apps import."""
    label = quote(f"{issuer}:{account_name}", safe=":")
    compact = base64.b32encode(secret).decode().rstrip("=")
    return f"otpauth://totp/{label}?secret={compact}&issuer={quote(issuer)}&digits={DIGITS}"


def wrap_secret(master_key: bytes, secret: bytes, account_id: int) -> bytes:
    """The secret sealed (crypto/symmetric.py) under the master key's TOTP key, bound to one
    account."""
    aad = _WRAP_AAD + str(account_id).encode()
    return seal(derive_key(master_key, "totp-wrap"), secret, aad)


def unwrap_secret(master_key: bytes, wrapped: bytes, account_id: int) -> bytes:
    """The secret of :func:`wrap_secret`; ValueError if it does not open for this account."""
    aad = _WRAP_AAD + str(account_id).encode()
    try:
        return unseal(derive_key(master_key, "totp-wrap"), wrapped, aad)
    except SealedBoxError:
        raise ValueError("the TOTP secret does not open with this master key") from None
