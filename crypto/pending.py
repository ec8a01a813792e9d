"""Pending signatures, sealed to the current sealing epoch's key until they are sealed.

A signature waits between the sign form and the next sealed batch. What it waits as is all a
seized server could link to a signing time (the database's WAL, commit times and stale
tuples keep that), so it waits sealed: single-shot HPKE (the details suite) to the public key
of the sealing epoch that was current when it was signed. Only the sealer holds the epoch's
private key, in a key file of its own, and destroys it once every signature of the epoch is
sealed; from then on no copy of a pending row can be opened or tied to its leaf.

Plaintext: ``kind (1) || has_token (1) || token (32, or 0 bytes) || c (32) || details`` (the
sealed details record, version 1 or 2, or a photo record: its length says which),
``info = "samleng-pending/v1\\n" || origin``. See docs/formats.md §16.
"""

from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from samleng.crypto.canonical import encode_origin
from samleng.crypto.custody import MAX_KEYS, PHOTO_BUCKETS, photo_record_size, record_size
from samleng.crypto.details import DETAILS_CIPHERTEXT_BYTES, DETAILS_SUITE
from samleng.crypto.errors import PendingDecryptionError
from samleng.crypto.leaf import LeafKind, is_signature

PENDING_INFO_PREFIX = b"samleng-pending/v1\n"
# The lengths a sealed details record has: version 1 (one key), version 2 with n keys, or a
# photo record with n keys in one of its size buckets.
DETAILS_RECORD_SIZES = frozenset(
    {
        DETAILS_CIPHERTEXT_BYTES,
        *(record_size(n) for n in range(1, MAX_KEYS + 1)),
        *(
            photo_record_size(n, bucket)
            for n in range(1, MAX_KEYS + 1)
            for bucket in range(len(PHOTO_BUCKETS))
        ),
    }
)
_TOKEN_BYTES = 32
_COMMITMENT_BYTES = 32
_KEY_BYTES = 32


@dataclass(frozen=True, kw_only=True)
class PendingRecord:
    """A signature as the sealer sees it once its epoch key opened it."""

    kind: LeafKind
    token: bytes | None = field(repr=False)
    commitment: bytes
    details_ciphertext: bytes = field(repr=False)


def encode_pending(pending: PendingRecord) -> bytes:
    """The plaintext of a pending signature; ValueError for a malformed one."""
    if len(pending.commitment) != _COMMITMENT_BYTES:
        raise ValueError(f"commitment must be {_COMMITMENT_BYTES} bytes")
    if pending.token is not None and len(pending.token) != _TOKEN_BYTES:
        raise ValueError(f"token must be {_TOKEN_BYTES} bytes")
    if len(pending.details_ciphertext) not in DETAILS_RECORD_SIZES:
        raise ValueError("details must be a sealed record of §10 (version 1, 2 or a photo record)")
    token = b"" if pending.token is None else pending.token
    return (
        bytes([int(pending.kind), pending.token is not None])
        + token
        + pending.commitment
        + pending.details_ciphertext
    )


def decode_pending(plaintext: bytes) -> PendingRecord:
    """Parse what encode_pending made, strictly; PendingDecryptionError otherwise."""
    if len(plaintext) < 2:
        raise PendingDecryptionError("pending signature is too short")
    kind_byte, has_token = plaintext[0], plaintext[1]
    if has_token not in (0, 1):
        raise PendingDecryptionError("pending signature has a malformed token flag")
    token_bytes = _TOKEN_BYTES if has_token else 0
    if len(plaintext) - 2 - token_bytes - _COMMITMENT_BYTES not in DETAILS_RECORD_SIZES:
        raise PendingDecryptionError("pending signature has the wrong length")
    try:
        kind = LeafKind(kind_byte)
    except ValueError:
        raise PendingDecryptionError(f"pending signature has kind 0x{kind_byte:02x}") from None
    if not is_signature(kind):
        raise PendingDecryptionError(
            f"pending signature has kind 0x{kind_byte:02x}, not a signature"
        )
    rest = plaintext[2:]
    return PendingRecord(
        kind=kind,
        token=rest[:token_bytes] if has_token else None,
        commitment=rest[token_bytes : token_bytes + _COMMITMENT_BYTES],
        details_ciphertext=rest[token_bytes + _COMMITMENT_BYTES :],
    )


def pending_info(origin: str) -> bytes:
    """The HPKE info binding a pending signature to one petition."""
    return PENDING_INFO_PREFIX + encode_origin(origin)


def seal_pending_record(public_key: bytes, origin: str, pending: PendingRecord) -> bytes:
    """Seal a pending signature to an epoch's raw X25519 ``public_key``; returns enc || ct."""
    if len(public_key) != _KEY_BYTES:
        raise ValueError(f"epoch public key must be {_KEY_BYTES} bytes")
    recipient = X25519PublicKey.from_public_bytes(public_key)
    return DETAILS_SUITE.encrypt(encode_pending(pending), recipient, pending_info(origin))


# An epoch's private key, loaded (load_epoch_key).
EpochKey = X25519PrivateKey


def load_epoch_key(private_key: bytes) -> EpochKey:
    """An epoch's raw X25519 private key, loaded once for the many records it opens (loading
    derives the public key: a scalar multiplication, as costly as the opening's own)."""
    if len(private_key) != _KEY_BYTES:
        raise ValueError(f"epoch private key must be {_KEY_BYTES} bytes")
    return X25519PrivateKey.from_private_bytes(private_key)


def open_pending_record(private_key: bytes | EpochKey, origin: str, sealed: bytes) -> PendingRecord:
    """Open a sealed pending signature with an epoch's key (raw, or from load_epoch_key);
    PendingDecryptionError if it does not open."""
    recipient = (
        private_key if isinstance(private_key, X25519PrivateKey) else load_epoch_key(private_key)
    )
    try:
        plaintext = DETAILS_SUITE.decrypt(sealed, recipient, pending_info(origin))
    except (InvalidTag, ValueError):
        raise PendingDecryptionError("pending signature does not open with this key") from None
    return decode_pending(plaintext)


def generate_epoch_keypair() -> tuple[bytes, bytes]:
    """A fresh (raw private, raw public) X25519 key pair for one sealing epoch."""
    private = X25519PrivateKey.generate()
    return private.private_bytes_raw(), private.public_key().public_bytes_raw()
