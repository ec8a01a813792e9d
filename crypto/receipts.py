"""Receipt secrets: the 16 bytes a signer keeps, their printed form and their commitment.

The commitment ``c = SHA-256("samleng-receipt/v1\\n" || origin || "\\n" || r)`` goes into the
signer's leaf; only someone holding ``r`` can later show which leaf is theirs.
"""

import base64
import binascii
import hashlib
import re
import secrets

from samleng.crypto.canonical import encode_origin
from samleng.crypto.errors import ReceiptFormatError

RECEIPT_PREFIX = b"samleng-receipt/v1\n"
RECEIPT_BYTES = 16
# 16 bytes = 128 bits = 26 base32 characters (the last one carries 3 bits and 2 zero bits).
_RECEIPT_CHARS = 26
_GROUP = 4
# Cap applied before any parsing, to avoid DoS through pathological input.
MAX_RECEIPT_INPUT_CHARS = 200
# 0, 1 and 8 are not in the RFC 4648 alphabet, so reading them as O, I and B is unambiguous.
_LOOKALIKES = str.maketrans({"0": "O", "1": "I", "8": "B"})
_BASE32_RE = re.compile(r"[A-Z2-7]+")


def new_receipt_secret() -> bytes:
    """Return a fresh random 16-byte receipt secret."""
    return secrets.token_bytes(RECEIPT_BYTES)


def _check_secret(r: bytes) -> None:
    """Refuse a receipt secret of the wrong length (ValueError: a programming error)."""
    if len(r) != RECEIPT_BYTES:
        raise ValueError(f"receipt secret must be {RECEIPT_BYTES} bytes")


def format_receipt(r: bytes) -> str:
    """Show ``r`` as upper-case unpadded base32 in dash-separated groups of four characters."""
    _check_secret(r)
    text = base64.b32encode(r).decode("ascii").rstrip("=")
    return "-".join(text[i : i + _GROUP] for i in range(0, len(text), _GROUP))


def parse_receipt(text: str) -> bytes:
    """Read a receipt code back into its 16 bytes, or raise ReceiptFormatError.

    Case, whitespace and dashes are ignored, and the look-alikes 0, 1 and 8 are read as O, I
    and B. The code must be exactly 26 base32 characters in canonical form (the two unused
    trailing bits zero), so each secret has exactly one accepted spelling up to those rules.
    """
    if len(text) > MAX_RECEIPT_INPUT_CHARS:
        raise ReceiptFormatError("This receipt code is too long.")
    compact = "".join(ch for ch in text if not ch.isspace() and ch != "-")
    # Checked before upper(), which maps some non-ASCII letters (dotless i) onto ASCII ones.
    if not compact.isascii():
        raise ReceiptFormatError("A receipt code contains only letters A-Z and digits 2-7.")
    compact = compact.upper().translate(_LOOKALIKES)
    if len(compact) != _RECEIPT_CHARS:
        raise ReceiptFormatError("A receipt code has exactly 26 letters and digits.")
    if not _BASE32_RE.fullmatch(compact):
        raise ReceiptFormatError("A receipt code contains only letters A-Z and digits 2-7.")
    try:
        r = base64.b32decode(compact + "=" * 6)
    except binascii.Error:
        raise ReceiptFormatError("This is not a valid receipt code.") from None
    if len(r) != RECEIPT_BYTES or base64.b32encode(r).decode("ascii").rstrip("=") != compact:
        raise ReceiptFormatError("This is not a valid receipt code.")
    return r


def receipt_commitment(origin: str, r: bytes) -> bytes:
    """Return the 32-byte commitment to receipt secret ``r`` for the petition at ``origin``."""
    _check_secret(r)
    return hashlib.sha256(RECEIPT_PREFIX + encode_origin(origin) + b"\n" + r).digest()
