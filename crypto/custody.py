"""Coalition custody: optional details that only k of a petition's n organisations can open.

Normative: docs/formats.md §10.2. A version 2 record is::

    "samleng-details/v2\\n" || u8(k) || u8(n)                       the 21-byte header
    || for i = 1 .. n:  enc_i (32) || sealed share_i (32) || commitment_i (32)
    || ChaCha20-Poly1305(payload key, 12 zero bytes, padded details (1024 bytes), aad = header)

A fresh 16-byte data key is split k-of-n with Shamir's scheme (pycryptodome's
``Crypto.Protocol.SecretSharing.Shamir`` in the mode compatible with the ``ssss`` tool); share
``i`` is HPKE-sealed to organisation ``i``'s key with ``info`` binding the origin, the receipt
commitment ``c``, ``k``, ``n`` and ``i``; ``commitment_i`` lets whoever combines check each share
without any key. ``payload key = HKDF-SHA256(data key, info = "samleng-details-key/v2\\n" ||
origin || "\\n" || c)``. The record's length depends on ``n`` only: ``1061 + 96 n`` bytes.

A photo pledge (leaf kind 0x04) carries a *photo record* (docs/formats.md §10.3): the same
shares, under the label ``"samleng-photo/v1\n"`` and a size bucket, whose payload is the padded
details, the signer's consent and the photo, padded to the bucket's size::

    "samleng-photo/v1\n" || u8(k) || u8(n) || u8(bucket)            the 20-byte header
    || the n share entries, as above
    || ChaCha20-Poly1305(photo key, 12 zero bytes, block (1024) || u8(consent)
                         || u32be(len(photo)) || photo || zeros up to the bucket, aad = header)

Version 1, the single-key record of docs/formats.md §10.1 (crypto/details.py), stays readable;
:class:`Custody` says which version a petition writes.
"""

import base64
import functools
import hashlib
import secrets
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from Crypto.Protocol.SecretSharing import Shamir
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from samleng.crypto.canonical import encode_origin
from samleng.crypto.details import (
    DETAILS_BLOCK,
    DETAILS_SUITE,
    DETAILS_SUITE_IDS,
    DETAILS_SUITE_NAME,
    pad_details,
    seal_details,
    unpad_details,
)
from samleng.crypto.errors import (
    CustodyFormatError,
    DuplicateShareError,
    RecordFormatError,
    RecordTamperedError,
    ShareDecryptionError,
    ShareMismatchError,
    TooFewSharesError,
)
from samleng.crypto.symmetric import derive_key

RECORD_LABEL = b"samleng-details/v2\n"
SHARE_INFO_LABEL = b"samleng-share/v2\n"
SHARE_COMMITMENT_LABEL = b"samleng-share-commitment/v2\n"
PAYLOAD_KEY_LABEL = b"samleng-details-key/v2\n"
CUSTODY_FORMAT = "samleng-details/v2"
MAX_KEYS = 16
DATA_KEY_BYTES = 16
SHARE_BYTES = 16
HEADER_BYTES = len(RECORD_LABEL) + 2
_ENC_BYTES = 32
_TAG_BYTES = 16
_HASH_BYTES = 32
_KEY_BYTES = 32
SEALED_SHARE_BYTES = _ENC_BYTES + SHARE_BYTES + _TAG_BYTES
SHARE_ENTRY_BYTES = SEALED_SHARE_BYTES + _HASH_BYTES
PAYLOAD_BYTES = DETAILS_BLOCK + _TAG_BYTES
# One key is used for one message only, so a fixed nonce is safe (as in HPKE's first message).
_PAYLOAD_NONCE = bytes(12)

# Photo records (docs/formats.md §10.3).
PHOTO_LABEL = b"samleng-photo/v1\n"
PHOTO_KEY_LABEL = b"samleng-photo-key/v1\n"
PHOTO_HEADER_BYTES = len(PHOTO_LABEL) + 3
# The sizes a photo payload's plaintext is padded to: its size says only which bucket.
PHOTO_BUCKETS = (256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20)
_PHOTO_PREFIX = DETAILS_BLOCK + 1 + 4  # the details block, the consent, the photo's length
MAX_PHOTO_BYTES = PHOTO_BUCKETS[-1] - _PHOTO_PREFIX


class Consent(IntEnum):
    """What the signer allowed their photo to be used for, sealed with it."""

    PUBLIC_BANNER = 1  # on the banner shown in public
    RECIPIENT_BANNER = 2  # only on the banner delivered to the petition's recipient
    COUNTED_ONLY = 3  # counted, never shown


def photo_record_size(n: int, bucket: int) -> int:
    """Return the length of a photo record with ``n`` keys in size ``bucket``."""
    return PHOTO_HEADER_BYTES + n * SHARE_ENTRY_BYTES + PHOTO_BUCKETS[bucket] + _TAG_BYTES


def photo_bucket(photo_length: int) -> int:
    """Return the smallest bucket a photo of ``photo_length`` bytes fits; ValueError if none."""
    for bucket, size in enumerate(PHOTO_BUCKETS):
        if _PHOTO_PREFIX + photo_length <= size:
            return bucket
    raise ValueError(f"a photo is at most {MAX_PHOTO_BYTES} bytes, not {photo_length}")


def record_size(n: int) -> int:
    """Return the length of every version 2 record of a petition with ``n`` keys."""
    return HEADER_BYTES + n * SHARE_ENTRY_BYTES + PAYLOAD_BYTES


def _check_shape(k: int, n: int) -> None:
    if not 1 <= k <= n <= MAX_KEYS:
        raise ValueError(f"need 1 <= k <= n <= {MAX_KEYS}, not k={k}, n={n}")


def share_info(origin: str, commitment: bytes, k: int, n: int, index: int) -> bytes:
    """Return the HPKE info of share ``index``: it binds origin, leaf, threshold and index."""
    _check_shape(k, n)
    if not 1 <= index <= n:
        raise ValueError(f"share index {index} is not between 1 and {n}")
    if len(commitment) != _HASH_BYTES:
        raise ValueError(f"commitment must be {_HASH_BYTES} bytes")
    return SHARE_INFO_LABEL + encode_origin(origin) + b"\n" + commitment + bytes((k, n, index))


def share_commitment(
    origin: str, commitment: bytes, k: int, n: int, index: int, share: bytes
) -> bytes:
    """Return ``H(label || origin || "\\n" || c || k || n || i || share)``, kept in the record."""
    if len(share) != SHARE_BYTES:
        raise ValueError(f"a share is {SHARE_BYTES} bytes")
    context = share_info(origin, commitment, k, n, index)[len(SHARE_INFO_LABEL) :]
    return hashlib.sha256(SHARE_COMMITMENT_LABEL + context + share).digest()


def payload_key(
    data_key: bytes, origin: str, commitment: bytes, label: bytes = PAYLOAD_KEY_LABEL
) -> bytes:
    """Derive the ChaCha20-Poly1305 key of a record's payload from its 16-byte data key
    (``label``: PAYLOAD_KEY_LABEL for details records, PHOTO_KEY_LABEL for photo records)."""
    if len(data_key) != DATA_KEY_BYTES:
        raise ValueError(f"the data key is {DATA_KEY_BYTES} bytes")
    if len(commitment) != _HASH_BYTES:
        raise ValueError(f"commitment must be {_HASH_BYTES} bytes")
    return derive_key(data_key, label, encode_origin(origin) + b"\n" + commitment)


def split_data_key(data_key: bytes, k: int, n: int) -> list[bytes]:
    """Split a data key k-of-n; return share ``i`` at position ``i - 1``.

    pycryptodome's ``ssss`` mode: the polynomial is ``key + a_1 x + … + a_{k-1} x^{k-1} + x^k``
    over GF(2^128), so ``ssss-combine -t k -x -D`` recombines the shares (for k >= 2).
    """
    _check_shape(k, n)
    return [share for _index, share in Shamir.split(k, n, data_key, ssss=True)]


def combine_data_key(shares: Mapping[int, bytes], k: int) -> bytes:
    """Recombine the data key from exactly ``k`` shares given as ``{index: share}``."""
    if len(shares) != k:
        raise ValueError(f"combine exactly k={k} shares, not {len(shares)}")
    # In ssss mode the x^k term is removed using the number of shares: exactly k, no more.
    return Shamir.combine(sorted(shares.items()), ssss=True)


@functools.lru_cache(maxsize=64)
def _recipient(public_key: bytes) -> X25519PublicKey:
    # A petition seals every signature to the same few keys.
    return X25519PublicKey.from_public_bytes(public_key)


def seal_record(
    public_keys: Sequence[bytes],
    threshold: int,
    origin: str,
    commitment: bytes,
    fields: Mapping[str, str],
) -> bytes:
    """Seal details (possibly none) so that ``threshold`` of the ``public_keys`` open them.

    Returns the version 2 record, always :func:`record_size` ``(len(public_keys))`` bytes.
    ValueError for a malformed key, origin, commitment or threshold; errors of pad_details
    pass through.
    """
    header = RECORD_LABEL + bytes((threshold, len(public_keys)))
    return _seal(public_keys, threshold, origin, commitment, header, pad_details(fields))


def seal_photo_record(
    public_keys: Sequence[bytes],
    threshold: int,
    origin: str,
    commitment: bytes,
    fields: Mapping[str, str],
    consent: Consent,
    photo: bytes,
) -> bytes:
    """Seal details and a photo (a cleaned JPEG) with the signer's consent, in a photo record
    padded to the smallest bucket that holds them (docs/formats.md §10.3).

    ValueError for a photo over MAX_PHOTO_BYTES or what seal_record refuses.
    """
    bucket = photo_bucket(len(photo))
    header = PHOTO_LABEL + bytes((threshold, len(public_keys), bucket))
    plaintext = (
        pad_details(fields) + bytes((Consent(consent),)) + struct.pack(">I", len(photo)) + photo
    )
    plaintext += bytes(PHOTO_BUCKETS[bucket] - len(plaintext))
    return _seal(
        public_keys, threshold, origin, commitment, header, plaintext, label=PHOTO_KEY_LABEL
    )


def _seal(
    public_keys: Sequence[bytes],
    threshold: int,
    origin: str,
    commitment: bytes,
    header: bytes,
    plaintext: bytes,
    *,
    label: bytes = PAYLOAD_KEY_LABEL,
) -> bytes:
    """``header || share entries || payload``: the shares of a fresh data key, and
    ``plaintext`` under the key derived from it with ``label``, authenticated with the header."""
    n = len(public_keys)
    _check_shape(threshold, n)
    for key in public_keys:
        if len(key) != _KEY_BYTES:
            raise ValueError(f"details public keys are {_KEY_BYTES} bytes")
    data_key = secrets.token_bytes(DATA_KEY_BYTES)
    entries = []
    for index, (key, share) in enumerate(
        zip(public_keys, split_data_key(data_key, threshold, n), strict=True), start=1
    ):
        info = share_info(origin, commitment, threshold, n, index)
        sealed = DETAILS_SUITE.encrypt(share, _recipient(key), info)
        entries.append(sealed + share_commitment(origin, commitment, threshold, n, index, share))
    key = payload_key(data_key, origin, commitment, label)
    payload = ChaCha20Poly1305(key).encrypt(_PAYLOAD_NONCE, plaintext, header)
    return header + b"".join(entries) + payload


@dataclass(frozen=True, kw_only=True)
class SealedRecord:
    """A version 2 record or a photo record taken apart (nothing opened yet)."""

    threshold: int
    keys: int
    sealed_shares: tuple[bytes, ...]
    commitments: tuple[bytes, ...]
    payload: bytes
    # The photo record's size bucket; None for a details record.
    bucket: int | None = None

    @property
    def header(self) -> bytes:
        """Return the header (21 bytes, or 20 for a photo record), the AAD of the payload."""
        if self.bucket is None:
            return RECORD_LABEL + bytes((self.threshold, self.keys))
        return PHOTO_LABEL + bytes((self.threshold, self.keys, self.bucket))


def is_version_2(record: bytes) -> bool:
    """Whether a record starts with the version 2 label (a version 1 record never does)."""
    return record.startswith(RECORD_LABEL)


def is_photo_record(record: bytes) -> bool:
    """Whether a record starts with the photo record's label."""
    return record.startswith(PHOTO_LABEL)


def parse_record(record: bytes) -> SealedRecord:
    """Take a version 2 record or a photo record apart strictly; RecordFormatError otherwise."""
    photo = is_photo_record(record)
    if not photo and not is_version_2(record):
        raise RecordFormatError(
            "the record starts with neither samleng-details/v2 nor samleng-photo/v1"
        )
    label, header_bytes = (
        (PHOTO_LABEL, PHOTO_HEADER_BYTES) if photo else (RECORD_LABEL, HEADER_BYTES)
    )
    if len(record) < header_bytes:
        raise RecordFormatError("the record ends inside its header")
    k, n = record[len(label)], record[len(label) + 1]
    if not 1 <= k <= n <= MAX_KEYS:
        raise RecordFormatError(f"the record's k={k}, n={n} are out of range")
    bucket = None
    if photo:
        bucket = record[len(label) + 2]
        if bucket >= len(PHOTO_BUCKETS):
            raise RecordFormatError(f"the photo record's bucket {bucket} is not one of §10.3")
    size = record_size(n) if bucket is None else photo_record_size(n, bucket)
    if len(record) != size:
        what = "record" if bucket is None else f"photo record in bucket {bucket}"
        raise RecordFormatError(f"a {what} for {n} keys is {size} bytes, this one {len(record)}")
    sealed, commitments = [], []
    for i in range(n):
        start = header_bytes + i * SHARE_ENTRY_BYTES
        sealed.append(record[start : start + SEALED_SHARE_BYTES])
        commitments.append(record[start + SEALED_SHARE_BYTES : start + SHARE_ENTRY_BYTES])
    return SealedRecord(
        threshold=k,
        keys=n,
        sealed_shares=tuple(sealed),
        commitments=tuple(commitments),
        payload=record[header_bytes + n * SHARE_ENTRY_BYTES :],
        bucket=bucket,
    )


@dataclass(frozen=True, kw_only=True)
class Share:
    """One organisation's share of one record's data key."""

    index: int
    value: bytes


def open_share(
    private_key: bytes, index: int, origin: str, commitment: bytes, record: bytes
) -> Share:
    """Open share ``index`` of a record with that organisation's raw X25519 private key.

    The share is checked against the record's commitment to it. ShareDecryptionError when it
    does not open (wrong key, index, origin or leaf, or a changed record); ShareMismatchError
    when it opens but is not the value the record commits to; RecordFormatError for a
    malformed record.
    """
    if len(private_key) != _KEY_BYTES:
        raise ValueError(f"details private keys are {_KEY_BYTES} bytes")
    parsed = parse_record(record)
    if not 1 <= index <= parsed.keys:
        raise ShareDecryptionError(f"the record has no share {index} (it has {parsed.keys})")
    info = share_info(origin, commitment, parsed.threshold, parsed.keys, index)
    recipient = X25519PrivateKey.from_private_bytes(private_key)
    try:
        value = DETAILS_SUITE.decrypt(parsed.sealed_shares[index - 1], recipient, info)
    except (InvalidTag, ValueError):
        # ValueError covers an encapsulated key that yields an all-zero shared secret.
        raise ShareDecryptionError(
            f"share {index} does not open with this key for this petition and leaf"
        ) from None
    share = Share(index=index, value=value)
    check_share(share, origin, commitment, parsed)
    return share


def check_share(share: Share, origin: str, commitment: bytes, record: SealedRecord) -> None:
    """Refuse a share the record does not commit to (ShareMismatchError)."""
    if not 1 <= share.index <= record.keys or len(share.value) != SHARE_BYTES:
        raise ShareMismatchError(f"share {share.index} is not a share of this record")
    expected = record.commitments[share.index - 1]
    found = share_commitment(
        origin, commitment, record.threshold, record.keys, share.index, share.value
    )
    if found != expected:
        raise ShareMismatchError(
            f"share {share.index} is not the share this record commits to: it was changed, "
            "or it belongs to another record or petition"
        )


def combine_shares(
    shares: Iterable[Share], origin: str, commitment: bytes, record: bytes
) -> dict[str, str]:
    """Check every share against the record, recombine the data key and open the details
    (of a photo record too: its details alone).

    DuplicateShareError for two shares with one index; TooFewSharesError for fewer than k;
    ShareMismatchError for a share the record does not commit to; RecordTamperedError if the
    details do not open with the recombined key; RecordFormatError, DetailsDecryptionError for
    a malformed record or padding.
    """
    return combine_photo_shares(shares, origin, commitment, record).details


@dataclass(frozen=True, kw_only=True)
class OpenedPayload:
    """What a record holds: the details, and for a photo record the consent and the photo."""

    details: dict[str, str]
    consent: Consent | None = None
    photo: bytes | None = field(default=None, repr=False)


def combine_photo_shares(
    shares: Iterable[Share], origin: str, commitment: bytes, record: bytes
) -> OpenedPayload:
    """combine_shares, returning all a record holds (the photo and consent of a photo record).

    RecordFormatError for a photo payload whose consent, length or padding is not §10.3's.
    """
    parsed = parse_record(record)
    given: dict[int, bytes] = {}
    for share in shares:
        if share.index in given:
            raise DuplicateShareError(f"share {share.index} is given twice")
        check_share(share, origin, commitment, parsed)
        given[share.index] = share.value
    if len(given) < parsed.threshold:
        raise too_few_shares(parsed.threshold, parsed.keys, sorted(given))
    # Every share given was checked above; any k of them give the same key.
    chosen = dict(sorted(given.items())[: parsed.threshold])
    data_key = combine_data_key(chosen, parsed.threshold)
    label = PAYLOAD_KEY_LABEL if parsed.bucket is None else PHOTO_KEY_LABEL
    key = payload_key(data_key, origin, commitment, label)
    try:
        plaintext = ChaCha20Poly1305(key).decrypt(_PAYLOAD_NONCE, parsed.payload, parsed.header)
    except InvalidTag:
        raise RecordTamperedError(
            "the shares check out but the details do not open with their key: the record's "
            "ciphertext was changed"
        ) from None
    details = unpad_details(plaintext[:DETAILS_BLOCK])
    if parsed.bucket is None:
        return OpenedPayload(details=details)
    return _photo_payload(details, plaintext)


def _photo_payload(details: dict[str, str], plaintext: bytes) -> OpenedPayload:
    """Parse what follows the details block in a photo payload, strictly."""
    consent_byte = plaintext[DETAILS_BLOCK]
    try:
        consent = Consent(consent_byte)
    except ValueError:
        raise RecordFormatError(
            f"the photo record's consent {consent_byte} is not 1, 2 or 3"
        ) from None
    (length,) = struct.unpack_from(">I", plaintext, DETAILS_BLOCK + 1)
    if _PHOTO_PREFIX + length > len(plaintext):
        raise RecordFormatError("the photo record's photo length runs past its bucket")
    if any(plaintext[_PHOTO_PREFIX + length :]):
        raise RecordFormatError("the photo record's padding is not all zero")
    photo = plaintext[_PHOTO_PREFIX : _PHOTO_PREFIX + length]
    return OpenedPayload(details=details, consent=consent, photo=photo)


def too_few_shares(k: int, n: int, indices: Sequence[int]) -> TooFewSharesError:
    """Return the error for shares ``indices`` when ``k`` of ``n`` are needed."""
    missing = k - len(indices)
    have = ", ".join(str(i) for i in indices) or "none"
    return TooFewSharesError(
        f"these details need shares from {k} of the petition's {n} keys; {len(indices)} "
        f"given (share {have}): {missing} more {'is' if missing == 1 else 'are'} missing",
        needed=k,
        given=len(indices),
    )


def open_record(
    private_key: bytes, index: int, origin: str, commitment: bytes, record: bytes
) -> dict[str, str]:
    """Open a record of a k = 1 petition with one organisation's key; TooFewSharesError if k > 1."""
    return open_photo_record(private_key, index, origin, commitment, record).details


def open_photo_record(
    private_key: bytes, index: int, origin: str, commitment: bytes, record: bytes
) -> OpenedPayload:
    """open_record, returning all the record holds (a photo record's photo and consent)."""
    share = open_share(private_key, index, origin, commitment, record)
    return combine_photo_shares([share], origin, commitment, record)


# --- What a petition declares -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Custody:
    """Who can open a petition's details: ``threshold`` of ``public_keys``, and how records are
    sealed (``version`` 2; version 1 is the single-key record of petitions made before)."""

    public_keys: tuple[bytes, ...]
    threshold: int
    version: int = 2

    def __post_init__(self) -> None:
        _check_shape(self.threshold, len(self.public_keys))
        if any(len(key) != _KEY_BYTES for key in self.public_keys):
            raise ValueError(f"details public keys are {_KEY_BYTES} bytes")
        if len(set(self.public_keys)) != len(self.public_keys):
            raise ValueError("a details public key is listed twice")
        if self.version not in (1, 2):
            raise ValueError("the details record version is 1 or 2")
        if self.version == 1 and (self.threshold, len(self.public_keys)) != (1, 1):
            raise ValueError("version 1 records have one key and k = 1")

    @property
    def keys(self) -> int:
        """Return n, the number of keys."""
        return len(self.public_keys)

    @property
    def record_size(self) -> int:
        """Return the length of every sealed record of this petition."""
        return 32 + DETAILS_BLOCK + _TAG_BYTES if self.version == 1 else record_size(self.keys)

    def index_of(self, public_key: bytes) -> int | None:
        """Return the share index (1-based) of a public key, or None if it is not listed."""
        try:
            return self.public_keys.index(public_key) + 1
        except ValueError:
            return None

    def seal(self, origin: str, commitment: bytes, fields: Mapping[str, str]) -> bytes:
        """Seal one signature's details the way this petition does (version 1 or 2)."""
        if self.version == 1:
            return seal_details(self.public_keys[0], origin, commitment, fields)
        return seal_record(self.public_keys, self.threshold, origin, commitment, fields)

    def seal_photo(
        self,
        origin: str,
        commitment: bytes,
        fields: Mapping[str, str],
        consent: Consent,
        photo: bytes,
    ) -> bytes:
        """Seal a photo pledge's details and photo (a photo record, version 2 custody only)."""
        if self.version != 2:
            raise ValueError("photo records need a petition with version 2 custody")
        return seal_photo_record(
            self.public_keys, self.threshold, origin, commitment, fields, consent, photo
        )

    @property
    def photo_record_sizes(self) -> frozenset[int]:
        """Return the lengths a photo record of this petition may have, one per bucket."""
        return frozenset(photo_record_size(self.keys, b) for b in range(len(PHOTO_BUCKETS)))

    def petition_member(self) -> dict[str, object]:
        """Return the ``details`` member of petition.json for this custody (docs/formats.md §11)."""
        suite: dict[str, object] = {"name": DETAILS_SUITE_NAME, **DETAILS_SUITE_IDS}
        if self.version == 1:
            return {"public_key": _b64(self.public_keys[0]), "suite": suite}
        return {
            "format": CUSTODY_FORMAT,
            "public_keys": [_b64(key) for key in self.public_keys],
            "suite": suite,
            "threshold": self.threshold,
        }


def single_key_custody(public_key: bytes) -> Custody:
    """Return the custody of a petition made before coalition custody (version 1 records)."""
    return Custody(public_keys=(public_key,), threshold=1, version=1)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _key(value: object) -> bytes:
    if not isinstance(value, str):
        raise CustodyFormatError("a details public key is not a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, or a character that is not ASCII
        raise CustodyFormatError("a details public key is not base64") from None
    if len(raw) != _KEY_BYTES or _b64(raw) != value:
        raise CustodyFormatError("a details public key is not canonical base64 of 32 bytes")
    return raw


def custody_from_petition(details: object) -> Custody:
    """Read the ``details`` member of a petition.json: version 1 or 2 (CustodyFormatError)."""
    if not isinstance(details, dict):
        raise CustodyFormatError("petition.json has no details object")
    try:
        if "format" not in details:
            return single_key_custody(_key(details.get("public_key")))
        if details["format"] != CUSTODY_FORMAT:
            raise CustodyFormatError(f"unknown details format {details['format']!r}")
        keys = details.get("public_keys")
        threshold = details.get("threshold")
        if not isinstance(keys, list) or type(threshold) is not int:
            raise CustodyFormatError("details needs a list public_keys and an integer threshold")
        return Custody(public_keys=tuple(_key(key) for key in keys), threshold=threshold)
    except ValueError as err:
        raise CustodyFormatError(f"petition.json's details: {err}") from None
