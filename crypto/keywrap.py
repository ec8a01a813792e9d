"""Wrapping of per-petition secrets (the dedup key) under the service's master key.

The wrapped form is ``nonce (12) || ChaCha20-Poly1305 ciphertext``, bound by the AAD
``samleng-wrap/v1\\n || origin`` to one petition, so a wrapped key copied to another
petition's row does not open.
"""

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from samleng.crypto.canonical import encode_origin
from samleng.crypto.errors import KeyUnwrapError

WRAP_AAD_PREFIX = b"samleng-wrap/v1\n"
MASTER_KEY_BYTES = 32
DEDUP_KEY_BYTES = 32
SALT_BYTES = 16
_NONCE_BYTES = 12
_TAG_BYTES = 16


def new_dedup_key() -> bytes:
    """Return a fresh random 32-byte dedup key for one petition."""
    return secrets.token_bytes(DEDUP_KEY_BYTES)


def new_salt() -> bytes:
    """Return a fresh random 16-byte public Argon2 salt for one petition."""
    return secrets.token_bytes(SALT_BYTES)


def new_master_key() -> bytes:
    """Return a fresh random 32-byte master key (for the operator's configuration)."""
    return secrets.token_bytes(MASTER_KEY_BYTES)


def _aead(master_key: bytes) -> ChaCha20Poly1305:
    """Build the AEAD for ``master_key``, refusing a key of the wrong length (ValueError)."""
    if len(master_key) != MASTER_KEY_BYTES:
        raise ValueError(f"master key must be {MASTER_KEY_BYTES} bytes")
    return ChaCha20Poly1305(master_key)


def wrap_key(master_key: bytes, key: bytes, origin: str) -> bytes:
    """Encrypt ``key`` under ``master_key`` for the petition at ``origin``; returns nonce || ct."""
    if not key:
        raise ValueError("key to wrap is empty")
    aad = WRAP_AAD_PREFIX + encode_origin(origin)
    # Random nonces are safe here: a master key wraps one key per petition, far below 2**32.
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + _aead(master_key).encrypt(nonce, key, aad)


def unwrap_key(master_key: bytes, wrapped: bytes, origin: str) -> bytes:
    """Decrypt a wrapped key; KeyUnwrapError if the master key, origin or bytes do not match."""
    aead = _aead(master_key)
    aad = WRAP_AAD_PREFIX + encode_origin(origin)
    if len(wrapped) <= _NONCE_BYTES + _TAG_BYTES:
        raise KeyUnwrapError("wrapped key is truncated")
    try:
        return aead.decrypt(wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:], aad)
    except InvalidTag:
        raise KeyUnwrapError("wrapped key does not open with this master key and origin") from None
