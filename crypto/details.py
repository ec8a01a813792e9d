"""Optional signer details (name, locality, comment, contact), sealed to the petition's key.

Plaintext: ``u16be(len(json)) || canonical JSON || zero bytes``, exactly 1024 bytes, so every
ciphertext has the same length whether or not details were given. Sealed with single-shot
HPKE (RFC 9180, base mode) with ``info = "samleng-details/v1\\n" || origin || "\\n" || c``,
which binds the ciphertext to one petition and one signature's commitment ``c``.
"""

import functools
import hashlib
import json
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from samleng.crypto.canonical import canonical_json, encode_origin
from samleng.crypto.errors import DetailsDecryptionError, DetailsTooLarge

DETAILS_BLOCK = 1024
DETAILS_INFO_PREFIX = b"samleng-details/v1\n"
DETAILS_FIELDS = ("name", "locality", "comment", "contact")
DETAILS_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305)
DETAILS_SUITE_NAME = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305"
DETAILS_SUITE_IDS = {"kem": 0x0020, "kdf": 0x0001, "aead": 0x0003}

_LENGTH_BYTES = 2
DETAILS_MAX_JSON = DETAILS_BLOCK - _LENGTH_BYTES
_ENC_BYTES = 32
_TAG_BYTES = 16
DETAILS_CIPHERTEXT_BYTES = _ENC_BYTES + DETAILS_BLOCK + _TAG_BYTES
_COMMITMENT_BYTES = 32
_X25519_KEY_BYTES = 32


def pad_details(fields: Mapping[str, str]) -> bytes:
    """Encode details as the fixed 1024-byte plaintext block.

    Only fields with a non-empty value are included, so "not given" and "given empty" look
    the same. ValueError for a key outside DETAILS_FIELDS or a non-str value; DetailsTooLarge
    if the canonical JSON exceeds 1022 bytes.
    """
    given: dict[str, str] = {}
    for key, value in fields.items():
        if key not in DETAILS_FIELDS:
            raise ValueError(f"unknown details field {key!r}")
        if not isinstance(value, str):
            raise ValueError(f"details field {key!r} is not a string")
        if value:
            given[key] = value
    body = canonical_json(given)
    if len(body) > DETAILS_MAX_JSON:
        raise DetailsTooLarge(f"details take {len(body)} bytes, at most {DETAILS_MAX_JSON} fit")
    block = len(body).to_bytes(_LENGTH_BYTES, "big") + body
    return block + bytes(DETAILS_BLOCK - len(block))


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """json.loads hook: a repeated key would make two readers see different details."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise DetailsDecryptionError("details JSON repeats a key")
    return result


def unpad_details(block: bytes) -> dict[str, str]:
    """Decode a plaintext block made by pad_details, strictly; DetailsDecryptionError otherwise.

    Anything pad_details would not have produced is refused: wrong length, length prefix out
    of range, non-zero padding, invalid UTF-8, non-canonical JSON, duplicate or unknown keys,
    non-string or empty values.
    """
    if len(block) != DETAILS_BLOCK:
        raise DetailsDecryptionError("details block has the wrong length")
    length = int.from_bytes(block[:_LENGTH_BYTES], "big")
    if length > DETAILS_MAX_JSON:
        raise DetailsDecryptionError("details length prefix is out of range")
    body = block[_LENGTH_BYTES : _LENGTH_BYTES + length]
    if any(block[_LENGTH_BYTES + length :]):
        raise DetailsDecryptionError("details padding is not zero")
    try:
        value = json.loads(body.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DetailsDecryptionError("details are not UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise DetailsDecryptionError("details are not a JSON object")
    for key, item in value.items():
        if key not in DETAILS_FIELDS or not isinstance(item, str) or not item:
            raise DetailsDecryptionError("details contain an unknown or malformed field")
    # Parsed values are plain str (no NaN, no surrogates survive the check below).
    try:
        canonical = canonical_json(value)
    except ValueError:
        raise DetailsDecryptionError("details are not canonical JSON") from None
    if canonical != body:
        raise DetailsDecryptionError("details are not canonical JSON")
    return value


def details_info(origin: str, commitment: bytes) -> bytes:
    """Return the HPKE info string binding details to one petition and one commitment."""
    if len(commitment) != _COMMITMENT_BYTES:
        raise ValueError(f"commitment must be {_COMMITMENT_BYTES} bytes")
    return DETAILS_INFO_PREFIX + encode_origin(origin) + b"\n" + commitment


def seal_details(
    public_key: bytes, origin: str, commitment: bytes, fields: Mapping[str, str]
) -> bytes:
    """Seal details (possibly none) to the raw X25519 ``public_key``; returns enc || ct.

    The result is always DETAILS_CIPHERTEXT_BYTES (1072) long. ValueError for a malformed
    key, origin or commitment; errors of pad_details pass through.
    """
    if len(public_key) != _X25519_KEY_BYTES:
        raise ValueError(f"details public key must be {_X25519_KEY_BYTES} bytes")
    info = details_info(origin, commitment)
    return DETAILS_SUITE.encrypt(pad_details(fields), _recipient(public_key), info)


@functools.lru_cache(maxsize=256)
def _recipient(public_key: bytes) -> X25519PublicKey:
    # Loading the key is a tenth of a seal; a petition seals every signature to the same one.
    return X25519PublicKey.from_public_bytes(public_key)


def open_details(
    private_key: bytes, origin: str, commitment: bytes, ciphertext: bytes
) -> dict[str, str]:
    """Open a sealed details ciphertext with the raw X25519 ``private_key``.

    DetailsDecryptionError for any failure of the ciphertext (wrong key, origin or commitment,
    tampering, wrong length, bad padding); ValueError for a malformed key, origin or commitment.
    """
    if len(private_key) != _X25519_KEY_BYTES:
        raise ValueError(f"details private key must be {_X25519_KEY_BYTES} bytes")
    info = details_info(origin, commitment)
    recipient = X25519PrivateKey.from_private_bytes(private_key)
    if len(ciphertext) != DETAILS_CIPHERTEXT_BYTES:
        raise DetailsDecryptionError("details ciphertext has the wrong length")
    try:
        block = DETAILS_SUITE.decrypt(ciphertext, recipient, info)
    except (InvalidTag, ValueError):
        # ValueError covers an encapsulated key that yields an all-zero shared secret.
        raise DetailsDecryptionError("details do not open with this key and context") from None
    return unpad_details(block)


def details_digest(ciphertext: bytes) -> bytes:
    """Return d = SHA-256(ciphertext), the value put into the signature's leaf."""
    return hashlib.sha256(ciphertext).digest()


def generate_details_keypair() -> tuple[bytes, bytes]:
    """Return a fresh (raw private key, raw public key) X25519 pair for one petition."""
    private = X25519PrivateKey.generate()
    return private.private_bytes_raw(), private.public_key().public_bytes_raw()
