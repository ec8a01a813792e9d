"""Sealing under a secret key, and deriving keys from one: the two symmetric primitives that
every secret of the service at rest or in a link is made with.

A sealed box is ``nonce (12 random bytes) || ChaCha20-Poly1305(key, nonce, plaintext, aad)``,
where the AAD begins with a label naming the format and version (``samleng-wrap/v1\\n``) and
goes on with what binds the box to one place (a petition's origin, an account): a box copied
elsewhere does not open. Random nonces are safe for what the callers seal: far fewer than
2**32 boxes per key.

A derived key is ``HKDF-SHA256(secret, salt = none, info = label || purpose)``, 32 bytes.
"""

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from samleng.crypto.errors import SealedBoxError

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """``nonce || ciphertext`` of ``plaintext`` under the 32-byte ``key``, bound to ``aad``."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, box: bytes, aad: bytes) -> bytes:
    """The plaintext of a :func:`seal` box; SealedBoxError if it is cut short or does not open
    with this key and AAD (then nothing of it is returned)."""
    if len(box) < NONCE_BYTES + TAG_BYTES:
        raise SealedBoxError("the sealed box is cut short")
    try:
        return ChaCha20Poly1305(key).decrypt(box[:NONCE_BYTES], box[NONCE_BYTES:], aad)
    except InvalidTag:
        raise SealedBoxError("the sealed box does not open with this key") from None


def derive_key(secret: bytes, label: bytes, purpose: bytes = b"", length: int = KEY_BYTES) -> bytes:
    """The key for ``purpose`` derived from ``secret`` under the format's ``label``."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label + purpose)
    return hkdf.derive(secret)
