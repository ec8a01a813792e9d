"""The export-details file for the organisers' key holder, and opening it against a bundle.

``samleng export-details`` writes one record per signature leaf, in index order (leaf 1
first): ``u16be(len(ct)) || ct``, where ``ct`` is the sealed details (docs/formats.md §13).
Nothing else is in the file: which record belongs to which leaf is given by the order alone,
and every record is checked against its leaf's ``d = SHA-256(ct)`` before it is opened.
"""

import struct
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from samleng.crypto.details import details_digest, open_details
from samleng.crypto.errors import DetailsDecryptionError, DetailsFileError
from samleng.crypto.leaf import LEAF_SIZE, LeafKind, decode_leaf

_LENGTH = struct.Struct(">H")
MAX_RECORD_BYTES = (1 << 16) - 1
_CHUNK_LEAVES = 1 << 14


def encode_details_record(ciphertext: bytes) -> bytes:
    """Return one record of the details file: ``u16be(len(ct)) || ct``."""
    if len(ciphertext) > MAX_RECORD_BYTES:
        raise ValueError("a details ciphertext is longer than a record can hold")
    return _LENGTH.pack(len(ciphertext)) + ciphertext


def read_details_record(stream: BinaryIO) -> bytes | None:
    """Read the next record's ciphertext; None at a clean end of file.

    DetailsFileError when the file ends inside a record (a truncated file).
    """
    prefix = stream.read(_LENGTH.size)
    if not prefix:
        return None
    if len(prefix) < _LENGTH.size:
        raise DetailsFileError("the file ends inside a record's length")
    (length,) = _LENGTH.unpack(prefix)
    ciphertext = stream.read(length)
    if len(ciphertext) < length:
        raise DetailsFileError(f"the file ends inside a record of {length} bytes")
    return ciphertext


def _signature_leaves(leaves: BinaryIO) -> Iterator[tuple[int, bytes, bytes]]:
    """Yield ``(index, c, d)`` for each signature leaf of a leaves.bin stream (leaf 0 skipped).

    The stream must come from a verified bundle; the leaves are decoded strictly all the same.
    """
    index = 0
    while chunk := leaves.read(LEAF_SIZE * _CHUNK_LEAVES):
        for offset in range(0, len(chunk), LEAF_SIZE):
            leaf = decode_leaf(chunk[offset : offset + LEAF_SIZE])
            if leaf.kind != LeafKind.HEADER:
                yield index, leaf.c, leaf.d
            index += 1


@dataclass(frozen=True, kw_only=True)
class OpenedRecord:
    """The outcome for one signature leaf: its details, or the problem that stopped them."""

    index: int
    details: dict[str, str] | None = None
    problem: str | None = None


def open_details_file(
    leaves: BinaryIO,
    details: BinaryIO,
    *,
    origin: str,
    private_key: bytes,
    only: Collection[int] | None = None,
) -> Iterator[OpenedRecord]:
    """Match the details file to the signature leaves in order, check ``d`` and open each.

    Yields one OpenedRecord per signature leaf, in index order; a problem is one of: the
    record is missing (the file is short or truncated), its hash is not the leaf's ``d`` (a
    changed, swapped or foreign record), or it does not open with this key. Records beyond the
    last leaf are reported once, under the index the next leaf would have had. With ``only``,
    every record is still checked against its leaf, but only those leaves are opened and
    yielded (problems are yielded for every leaf).
    """
    failed: str | None = None
    next_index = 1
    for index, c, d in _signature_leaves(leaves):
        next_index = index + 1
        if failed is not None:
            yield OpenedRecord(index=index, problem=failed)
            continue
        try:
            ciphertext = read_details_record(details)
        except DetailsFileError as err:
            yield OpenedRecord(index=index, problem=f"missing: {err}")
            failed = "missing: the details file ended before this leaf"
            continue
        if ciphertext is None:
            failed = "missing: the details file ended before this leaf"
            yield OpenedRecord(index=index, problem=failed)
            continue
        if details_digest(ciphertext) != d:
            yield OpenedRecord(
                index=index, problem="mismatch: the record's SHA-256 is not this leaf's d"
            )
            continue
        if only is not None and index not in only:
            continue
        try:
            opened = open_details(private_key, origin, c, ciphertext)
        except DetailsDecryptionError as err:
            yield OpenedRecord(index=index, problem=f"undecryptable: {err}")
            continue
        yield OpenedRecord(index=index, details=opened)
    if failed is None and details.read(1):
        yield OpenedRecord(
            index=next_index, problem="extra: the details file has records beyond the last leaf"
        )
