"""Photo records (docs/formats.md §10.3): details, consent and photo sealed k of n, padded to a
size bucket; the details file and the pending format carry them; a photo leaf must carry one."""

import io
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samleng.crypto.custody import (
    MAX_PHOTO_BYTES,
    PHOTO_BUCKETS,
    PHOTO_KEY_LABEL,
    PHOTO_LABEL,
    Consent,
    Custody,
    _seal,
    combine_photo_shares,
    combine_shares,
    is_photo_record,
    open_photo_record,
    parse_record,
    photo_bucket,
    photo_record_size,
    seal_photo_record,
    seal_record,
)
from samleng.crypto.details import details_digest, pad_details
from samleng.crypto.detailsfile import (
    encode_details_file,
    matched_entries,
    read_details_entries,
    read_details_header,
)
from samleng.crypto.errors import (
    DetailsFileError,
    RecordFormatError,
    RecordTamperedError,
    TooFewSharesError,
)
from samleng.crypto.leaf import LeafKind, encode_leaf
from samleng.crypto.pending import PendingRecord, decode_pending, encode_pending
from tests.crypto.test_custody import FIELDS, ORIGIN, PRIVATE, PUBLIC, C, shares_of

PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"


def test_two_of_three_open_the_photo_and_its_consent() -> None:
    record = seal_photo_record(PUBLIC[:3], 2, ORIGIN, C, FIELDS, Consent.RECIPIENT_BANNER, PHOTO)
    assert is_photo_record(record) and record.startswith(PHOTO_LABEL + bytes((2, 3, 0)))
    assert len(record) == photo_record_size(3, 0) == 20 + 3 * 96 + (256 << 10) + 16
    for pair in ([1, 2], [3, 1], [2, 3]):
        opened = combine_photo_shares(shares_of(record, pair), ORIGIN, C, record)
        assert (opened.details, opened.consent, opened.photo) == (
            FIELDS,
            Consent.RECIPIENT_BANNER,
            PHOTO,
        )
    # The details alone, as decrypt and shares combine write them to the CSV.
    assert combine_shares(shares_of(record, [1, 3]), ORIGIN, C, record) == FIELDS
    with pytest.raises(TooFewSharesError, match="1 more is missing"):
        combine_photo_shares(shares_of(record, [2]), ORIGIN, C, record)


@settings(max_examples=25, deadline=None)
@given(
    length=st.sampled_from([0, 1, (256 << 10) - 1029, (256 << 10) - 1028, 700_000, 3_000_000]),
    consent=st.sampled_from(list(Consent)),
    k=st.integers(1, 3),
)
def test_any_photo_round_trips_in_the_smallest_bucket(
    length: int, consent: Consent, k: int
) -> None:
    photo = bytes([7]) * length
    record = seal_photo_record(PUBLIC[:3], k, ORIGIN, C, {}, consent, photo)
    bucket = photo_bucket(length)
    assert len(record) == photo_record_size(3, bucket)
    assert bucket == min(b for b, size in enumerate(PHOTO_BUCKETS) if 1029 + length <= size)
    opened = open_photo_record(PRIVATE[0], 1, ORIGIN, C, record) if k == 1 else None
    if opened is not None:
        assert (opened.details, opened.consent, opened.photo) == ({}, consent, photo)


def test_the_size_cap() -> None:
    assert MAX_PHOTO_BYTES == (4 << 20) - 1029
    seal_photo_record(PUBLIC[:1], 1, ORIGIN, C, {}, Consent.COUNTED_ONLY, bytes(MAX_PHOTO_BYTES))
    with pytest.raises(ValueError, match="at most"):
        seal_photo_record(
            PUBLIC[:1], 1, ORIGIN, C, {}, Consent.COUNTED_ONLY, bytes(MAX_PHOTO_BYTES + 1)
        )
    with pytest.raises(ValueError, match="version 2"):
        Custody(public_keys=(PUBLIC[0],), threshold=1, version=1).seal_photo(
            ORIGIN, C, {}, Consent.PUBLIC_BANNER, PHOTO
        )


def _record_with(plaintext_tail: bytes, bucket: int = 0) -> bytes:
    """A photo record whose payload after the details block is ``plaintext_tail`` (then
    zeros), sealed properly: for payloads that only a careless or hostile writer makes."""
    header = PHOTO_LABEL + bytes((1, 1, bucket))
    plaintext = pad_details({}) + plaintext_tail
    plaintext += bytes(PHOTO_BUCKETS[bucket] - len(plaintext))
    return _seal(PUBLIC[:1], 1, ORIGIN, C, header, plaintext, label=PHOTO_KEY_LABEL)


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (b"\x00" + struct.pack(">I", 4) + b"abcd", "consent 0"),
        (b"\x04" + struct.pack(">I", 4) + b"abcd", "consent 4"),
        (b"\x01" + struct.pack(">I", 300_000), "runs past its bucket"),
        (b"\x01" + struct.pack(">I", 2) + b"abcd", "padding is not all zero"),
    ],
)
def test_malformed_payloads_are_refused_by_name(tail: bytes, message: str) -> None:
    record = _record_with(tail)
    with pytest.raises(RecordFormatError, match=message):
        open_photo_record(PRIVATE[0], 1, ORIGIN, C, record)


def test_a_changed_header_or_payload_does_not_open() -> None:
    record = seal_photo_record(PUBLIC[:2], 1, ORIGIN, C, FIELDS, Consent.PUBLIC_BANNER, PHOTO)
    bucket = bytearray(record)
    bucket[len(PHOTO_LABEL) + 2] = 1  # another bucket: the length no longer fits it
    with pytest.raises(RecordFormatError, match="bucket 1"):
        parse_record(bytes(bucket))
    bucket[len(PHOTO_LABEL) + 2] = 9
    with pytest.raises(RecordFormatError, match="bucket 9"):
        parse_record(bytes(bucket))
    flipped = bytearray(record)
    flipped[-100] ^= 1
    with pytest.raises(RecordTamperedError):
        open_photo_record(PRIVATE[0], 1, ORIGIN, C, bytes(flipped))
    # A details record's payload key is not a photo record's: relabelling does not open.
    relabelled = b"samleng-details/v2\n" + record[len(PHOTO_LABEL) :]
    with pytest.raises(RecordFormatError):
        parse_record(relabelled)


def test_pending_records_carry_photo_records() -> None:
    record = seal_photo_record(PUBLIC[:3], 2, ORIGIN, C, {}, Consent.PUBLIC_BANNER, PHOTO)
    pending = PendingRecord(
        kind=LeafKind.PHOTO, token=bytes(32), commitment=C, details_ciphertext=record
    )
    assert decode_pending(encode_pending(pending)) == pending
    with pytest.raises(ValueError):
        encode_pending(
            PendingRecord(
                kind=LeafKind.PHOTO, token=None, commitment=C, details_ciphertext=record[:-1]
            )
        )


def _leaves(*pairs: tuple[LeafKind, bytes]) -> io.BytesIO:
    header = b"samleng-leaf/v1\n\x00" + bytes(64)
    return io.BytesIO(
        header + b"".join(encode_leaf(kind, C, details_digest(r)) for kind, r in pairs)
    )


def test_the_details_file_holds_photo_records_on_photo_leaves_only() -> None:
    custody = Custody(public_keys=tuple(PUBLIC[:3]), threshold=2)
    photo = seal_photo_record(PUBLIC[:3], 2, ORIGIN, C, {}, Consent.PUBLIC_BANNER, PHOTO)
    plain = seal_record(PUBLIC[:3], 2, ORIGIN, C, FIELDS)
    data = encode_details_file(ORIGIN, custody, [(1, C, photo)])

    def matched(kind: LeafKind) -> list[str | None]:
        stream = io.BytesIO(data)
        header = read_details_header(stream)
        assert header is not None
        entries = read_details_entries(stream, header)
        return [problem for _entry, problem in matched_entries(entries, _leaves((kind, photo)))]

    assert matched(LeafKind.PHOTO) == [None]
    assert matched(LeafKind.SIGNATURE) == [
        "mismatch: the leaf's kind and its record's (photo or not) differ"
    ]
    # A record of another length than the petition's or one of its buckets is refused.
    cut = encode_details_file(ORIGIN, custody, [(1, C, plain + b"\x00")])
    stream = io.BytesIO(cut)
    header = read_details_header(stream)
    assert header is not None
    with pytest.raises(DetailsFileError, match="size of one of its buckets"):
        list(read_details_entries(stream, header))
