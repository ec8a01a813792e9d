"""The export-details file for the organisers' key holders, and matching it to a bundle.

Version 1 (petitions with one key, docs/formats.md §13.1): one record per signature leaf, in
index order (leaf 1 first): ``u16be(len(ct)) || ct``, where ``ct`` is the sealed details.
Nothing else is in the file: which record belongs to which leaf is given by the order alone,
and every record is checked against its leaf's ``d = SHA-256(ct)`` before it is opened.

Version 2 (coalition custody, docs/formats.md §13.2): a header naming the petition's origin,
its k and n keys and the number of records, then per signature leaf ``u64be(index) || c ||
u32be(len(record)) || record``, so that a key holder can open their shares without the bundle
(HPKE's info binds origin, ``c`` and share index, so a wrong header makes nothing open).
"""

import struct
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from samleng.crypto.canonical import encode_origin
from samleng.crypto.custody import Custody, is_photo_record, open_record
from samleng.crypto.details import details_digest, open_details
from samleng.crypto.errors import CustodyError, DetailsDecryptionError, DetailsFileError
from samleng.crypto.leaf import LEAF_SIZE, LeafKind, decode_leaf, is_signature

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
    """Yield ``(index, c, d)`` for each signature leaf of a leaves.bin stream (leaf 0 skipped)."""
    for index, c, d, _kind in _signature_leaves_with_kinds(leaves):
        yield index, c, d


def _signature_leaves_with_kinds(leaves: BinaryIO) -> Iterator[tuple[int, bytes, bytes, int]]:
    """Yield ``(index, c, d, kind)`` for each signature leaf of a leaves.bin stream.

    The stream must come from a verified bundle; the leaves are decoded strictly all the same.
    """
    index = 0
    while chunk := leaves.read(LEAF_SIZE * _CHUNK_LEAVES):
        for offset in range(0, len(chunk), LEAF_SIZE):
            leaf = decode_leaf(chunk[offset : offset + LEAF_SIZE])
            if is_signature(leaf.kind):  # the header and endorsements have no details
                yield index, leaf.c, leaf.d, leaf.kind
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


# --- Version 2: petitions with coalition custody (docs/formats.md §13.2) -------------------------

DETAILS_FILE_MAGIC = b"samleng-details-file/v2\n"
# Records are about 1-3 KB today; photos (planned) are padded to buckets of a few MB. A bound
# keeps a damaged length from making a reader allocate gigabytes.
MAX_V2_RECORD_BYTES = 64 << 20
_ORIGIN_LENGTH = struct.Struct(">H")
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_MAX_ORIGIN_BYTES = 1024
_COMMITMENT_BYTES = 32


@dataclass(frozen=True, kw_only=True)
class DetailsFileHeader:
    """The header of a version 2 details file: which petition, its keys, how many records."""

    origin: str
    custody: Custody
    count: int

    def encode(self) -> bytes:
        """Return the header's bytes."""
        origin = encode_origin(self.origin)
        if len(origin) > _MAX_ORIGIN_BYTES:
            raise ValueError("the origin is too long for a details file")
        if self.custody.version != 2:
            raise ValueError("a version 2 details file holds version 2 records only")
        return (
            DETAILS_FILE_MAGIC
            + _ORIGIN_LENGTH.pack(len(origin))
            + origin
            + bytes((self.custody.threshold, self.custody.keys))
            + b"".join(self.custody.public_keys)
            + _U64.pack(self.count)
        )


@dataclass(frozen=True, kw_only=True)
class DetailsEntry:
    """One record of a version 2 details file, with the leaf it belongs to."""

    index: int
    commitment: bytes
    record: bytes

    def encode(self) -> bytes:
        """Return ``u64be(index) || c || u32be(len(record)) || record``."""
        if len(self.commitment) != _COMMITMENT_BYTES:
            raise ValueError("a commitment is 32 bytes")
        if len(self.record) > MAX_V2_RECORD_BYTES:
            raise ValueError("a record is longer than a details file may hold")
        return _U64.pack(self.index) + self.commitment + _U32.pack(len(self.record)) + self.record


def _read_exactly(stream: BinaryIO, size: int, what: str) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise DetailsFileError(f"the file ends inside {what}")
    return data


def read_details_header(stream: BinaryIO) -> DetailsFileHeader | None:
    """Read a version 2 header; None (the stream rewound) for a version 1 file.

    A version 1 file starts with the length of a 1072-byte record (hex 0430), never with the
    version 2 label. DetailsFileError for a malformed header.
    """
    start = stream.tell()
    if stream.read(len(DETAILS_FILE_MAGIC)) != DETAILS_FILE_MAGIC:
        stream.seek(start)
        return None
    (length,) = _ORIGIN_LENGTH.unpack(_read_exactly(stream, _ORIGIN_LENGTH.size, "the header"))
    if length > _MAX_ORIGIN_BYTES:
        raise DetailsFileError("the header's origin is too long")
    try:
        origin = _read_exactly(stream, length, "the header").decode("utf-8")
        encode_origin(origin)
    except (UnicodeDecodeError, ValueError):
        raise DetailsFileError("the header's origin is not a valid origin") from None
    k, n = _read_exactly(stream, 2, "the header")
    keys = _read_exactly(stream, 32 * n, "the header's keys")
    try:
        custody = Custody(
            public_keys=tuple(keys[i : i + 32] for i in range(0, len(keys), 32)), threshold=k
        )
    except ValueError as err:
        raise DetailsFileError(f"the header's keys: {err}") from None
    (count,) = _U64.unpack(_read_exactly(stream, _U64.size, "the header"))
    return DetailsFileHeader(origin=origin, custody=custody, count=count)


def read_details_entries(stream: BinaryIO, header: DetailsFileHeader) -> Iterator[DetailsEntry]:
    """Yield the header's ``count`` entries, strictly: increasing leaf indices from 1, records
    of the petition's length, nothing after the last. DetailsFileError names the problem."""
    previous = 0
    size = header.custody.record_size
    photo_sizes = header.custody.photo_record_sizes
    for number in range(1, header.count + 1):
        what = f"entry {number} of {header.count}"
        (index,) = _U64.unpack(_read_exactly(stream, _U64.size, what))
        commitment = _read_exactly(stream, _COMMITMENT_BYTES, what)
        (length,) = _U32.unpack(_read_exactly(stream, _U32.size, what))
        if index <= previous:
            raise DetailsFileError(f"{what} is for leaf {index}, after leaf {previous}")
        if length != size and length not in photo_sizes:
            raise DetailsFileError(
                f"{what} (leaf {index}) holds {length} bytes; this petition's records are {size} "
                "(or, for a photo pledge, the size of one of its buckets)"
            )
        record = _read_exactly(stream, length, what)
        previous = index
        yield DetailsEntry(index=index, commitment=commitment, record=record)
    if stream.read(1):
        raise DetailsFileError(f"the file goes on after its {header.count} entries")


def matched_entries(
    entries: Iterable[DetailsEntry], leaves: BinaryIO
) -> Iterator[tuple[DetailsEntry, str | None]]:
    """Pair each entry with the next signature leaf of a (verified) leaves.bin.

    Yields ``(entry, problem)``: problem None when the entry's leaf index and ``c`` are the
    leaf's and ``d = H(record)``; otherwise what differs. DetailsFileError when the file and
    the log do not hold the same number of signature leaves.
    """
    signatures = _signature_leaves_with_kinds(leaves)
    for entry in entries:
        leaf = next(signatures, None)
        if leaf is None:
            raise DetailsFileError(f"the file has a record for leaf {entry.index}, beyond the log")
        index, c, d, kind = leaf
        if entry.index != index:
            raise DetailsFileError(
                f"the file's record for leaf {entry.index} stands where the log has leaf {index}"
            )
        if entry.commitment != c:
            yield entry, "mismatch: the record is filed under another commitment than this leaf's c"
        elif details_digest(entry.record) != d:
            yield entry, "mismatch: the record's SHA-256 is not this leaf's d"
        elif (kind == LeafKind.PHOTO) != is_photo_record(entry.record):
            # Only a photo pledge's leaf may carry a photo, and it must (§10.3).
            yield entry, "mismatch: the leaf's kind and its record's (photo or not) differ"
        else:
            yield entry, None
    leaf = next(signatures, None)
    if leaf is not None:
        raise DetailsFileError(f"the file ends before the log's leaf {leaf[0]}")


def encode_details_file(
    origin: str, custody: Custody, entries: Sequence[tuple[int, bytes, bytes]]
) -> bytes:
    """Return a whole version 2 details file from ``(leaf index, c, record)`` triples."""
    header = DetailsFileHeader(origin=origin, custody=custody, count=len(entries))
    return header.encode() + b"".join(
        DetailsEntry(index=index, commitment=c, record=record).encode()
        for index, c, record in entries
    )


def open_details_entries(
    header: DetailsFileHeader,
    entries: Iterable[tuple[DetailsEntry, str | None]],
    *,
    private_key: bytes,
    index: int,
    only: Collection[int] | None = None,
) -> Iterator[OpenedRecord]:
    """Open version 2 records with one key, for petitions whose threshold is 1.

    ``entries`` come with the problem found matching them to the bundle. Yields one
    OpenedRecord per entry (only those in ``only``, and every problem), as open_details_file.
    """
    for entry, problem in entries:
        if problem is not None:
            yield OpenedRecord(index=entry.index, problem=problem)
            continue
        if only is not None and entry.index not in only:
            continue
        try:
            opened = open_record(private_key, index, header.origin, entry.commitment, entry.record)
        except (DetailsDecryptionError, CustodyError) as err:
            yield OpenedRecord(index=entry.index, problem=f"undecryptable: {err}")
            continue
        yield OpenedRecord(index=entry.index, details=opened)
