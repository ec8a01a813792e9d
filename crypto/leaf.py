"""Samleng log leaves: ``"samleng-leaf/v1\\n" || kind || c || d``, 81 bytes.

Normative: docs/formats.md §5.

Leaf 0 is the header (``c = H(petition.json)``, ``d`` zero); every other leaf is a signature
with its receipt commitment ``c`` and details ciphertext hash ``d``, a withdrawal of one
(kind 0x03, ``d`` the signature's ``c``), or an endorsement record (kind 0x06, ``c =
H(record)``, ``d`` zero).
"""

import hashlib
from dataclasses import dataclass
from enum import IntEnum

from samleng.crypto.errors import LeafFormatError

LEAF_PREFIX = b"samleng-leaf/v1\n"
HASH_SIZE = 32
# Where each field starts in a leaf: the kind byte, then c, then d.
KIND_OFFSET = len(LEAF_PREFIX)
C_OFFSET = KIND_OFFSET + 1
D_OFFSET = C_OFFSET + HASH_SIZE
LEAF_SIZE = D_OFFSET + HASH_SIZE  # 81
ZERO_HASH = bytes(HASH_SIZE)


class LeafKind(IntEnum):
    """The kind byte of a leaf."""

    HEADER = 0
    SIGNATURE = 1
    VERIFIED_SIGNATURE = 2
    WITHDRAWAL = 3  # a signer took their signature back (§5): d is that signature's c
    PHOTO = 4  # a photo pledge: a signature whose sealed record holds a photo (§10.3)
    PAPER = 5  # a signature on a paper form, entered by an organiser: counted apart (§5)
    ENDORSEMENT = 6  # an organisation's endorsement, or its withdrawal (§23); never counted


# Kinds this v1 verifier accepts: every other kind is unknown (docs/formats.md §5), and a
# verifier that counted past one could report a wrong count, so it fails closed instead.
ACCEPTED_KINDS = frozenset(LeafKind)
# A withdrawal leaf's c: H(this label || the withdrawn signature's c), so that a signature
# can be withdrawn once only (the log's commitments are distinct).
WITHDRAWAL_LABEL = b"samleng-withdrawal/v1\n"
# The kinds that count as signatures: online (0x01, 0x02, and 0x04 with a photo) and on
# paper (0x05).
SIGNATURE_KINDS = frozenset(
    {LeafKind.SIGNATURE, LeafKind.VERIFIED_SIGNATURE, LeafKind.PHOTO, LeafKind.PAPER}
)


@dataclass(frozen=True, kw_only=True)
class Leaf:
    """A decoded leaf."""

    kind: LeafKind
    c: bytes
    d: bytes


def is_signature(kind: int) -> bool:
    """Return whether leaves of ``kind`` count as signatures (kinds 0x01, 0x02, 0x04, 0x05)."""
    return kind in SIGNATURE_KINDS


def encode_leaf(kind: LeafKind, c: bytes, d: bytes) -> bytes:
    """Return the 81-byte leaf; ValueError for a reserved kind or wrong hash lengths."""
    if kind not in ACCEPTED_KINDS:
        raise ValueError(f"leaf kind {kind!r} is not defined in v1")
    if len(c) != HASH_SIZE or len(d) != HASH_SIZE:
        raise ValueError("c and d must be 32 bytes each")
    return LEAF_PREFIX + bytes([kind]) + c + d


def decode_leaf(leaf: bytes) -> Leaf:
    """Parse a leaf, raising LeafFormatError for a wrong size, prefix or kind.

    docs/formats.md §5 says verifiers reject unknown kinds.
    """
    if len(leaf) != LEAF_SIZE:
        raise LeafFormatError(f"leaf is {len(leaf)} bytes, not {LEAF_SIZE}")
    if not leaf.startswith(LEAF_PREFIX):
        raise LeafFormatError("leaf does not start with the samleng-leaf/v1 prefix")
    kind = leaf[KIND_OFFSET]
    if kind not in ACCEPTED_KINDS:
        raise LeafFormatError(f"leaf kind 0x{kind:02x} is not accepted by this v1 verifier")
    return Leaf(kind=LeafKind(kind), c=leaf[C_OFFSET:D_OFFSET], d=leaf[D_OFFSET:])


def header_leaf(petition_json: bytes) -> bytes:
    """Return leaf 0 of a petition's log: kind header, ``c = H(petition.json)``, ``d`` zero."""
    return encode_leaf(LeafKind.HEADER, hashlib.sha256(petition_json).digest(), ZERO_HASH)


def withdrawal_commitment(signature_c: bytes) -> bytes:
    """The c of the leaf that withdraws the signature whose c is ``signature_c``."""
    if len(signature_c) != HASH_SIZE:
        raise ValueError("a withdrawal names the 32-byte c of a signature")
    return hashlib.sha256(WITHDRAWAL_LABEL + signature_c).digest()


def withdrawal_leaf(signature_c: bytes) -> bytes:
    """The kind 0x03 leaf withdrawing the signature whose c is ``signature_c`` (its d)."""
    return encode_leaf(LeafKind.WITHDRAWAL, withdrawal_commitment(signature_c), signature_c)
