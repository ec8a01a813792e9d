"""Wrapping of per-petition secrets (the dedup key) under the service's master key.

The wrapped form is a sealed box (crypto/symmetric.py) with the AAD
``samleng-wrap/v1\\n || origin``: bound to one petition, so a wrapped key copied to another
petition's row does not open.
"""

import secrets

from samleng.crypto.canonical import encode_origin
from samleng.crypto.errors import KeyUnwrapError, SealedBoxError
from samleng.crypto.symmetric import NONCE_BYTES, TAG_BYTES, seal, unseal

WRAP_AAD_PREFIX = b"samleng-wrap/v1\n"
MASTER_KEY_BYTES = 32
DEDUP_KEY_BYTES = 32
SALT_BYTES = 16


def new_dedup_key() -> bytes:
    """Return a fresh random 32-byte dedup key for one petition."""
    return secrets.token_bytes(DEDUP_KEY_BYTES)


def new_salt() -> bytes:
    """Return a fresh random 16-byte public Argon2 salt for one petition."""
    return secrets.token_bytes(SALT_BYTES)


def new_master_key() -> bytes:
    """Return a fresh random 32-byte master key (for the operator's configuration)."""
    return secrets.token_bytes(MASTER_KEY_BYTES)


def _check_master_key(master_key: bytes) -> None:
    if len(master_key) != MASTER_KEY_BYTES:
        raise ValueError(f"master key must be {MASTER_KEY_BYTES} bytes")


def wrap_key(master_key: bytes, key: bytes, origin: str) -> bytes:
    """Encrypt ``key`` under ``master_key`` for the petition at ``origin``; returns nonce || ct."""
    _check_master_key(master_key)
    if not key:
        raise ValueError("key to wrap is empty")
    return seal(master_key, key, WRAP_AAD_PREFIX + encode_origin(origin))


def unwrap_key(master_key: bytes, wrapped: bytes, origin: str) -> bytes:
    """Decrypt a wrapped key; KeyUnwrapError if the master key, origin or bytes do not match."""
    _check_master_key(master_key)
    if len(wrapped) <= NONCE_BYTES + TAG_BYTES:
        raise KeyUnwrapError("wrapped key is truncated")
    try:
        return unseal(master_key, wrapped, WRAP_AAD_PREFIX + encode_origin(origin))
    except SealedBoxError:
        raise KeyUnwrapError("wrapped key does not open with this master key and origin") from None
