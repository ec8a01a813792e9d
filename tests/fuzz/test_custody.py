"""Fuzzing the parsers of coalition custody: version 2 records, details files and shares files.

Each is read by the key holders' offline tool from files that travel between machines; damaged
or hostile input must end in the package's own errors (crypto.errors.Error), never another
exception, and a damaged share must never open to details.
"""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from samleng.crypto import errors
from samleng.crypto.custody import Custody, Share, combine_shares, open_share, parse_record
from samleng.crypto.details import generate_details_keypair
from samleng.crypto.detailsfile import (
    DetailsEntry,
    DetailsFileHeader,
    encode_details_file,
    read_details_entries,
    read_details_header,
)
from samleng.crypto.receipts import receipt_commitment
from samleng.crypto.sharesfile import (
    combine_files,
    open_shares,
    parse_shares_file,
)
from tests.fuzz.mutations import bytes_like, examples, mutated

FAST = settings(max_examples=examples(300), deadline=None)
ORIGIN = "petitions.example.org/p/end-impunity"
KEYS = [generate_details_keypair() for _ in range(3)]
CUSTODY = Custody(public_keys=tuple(public for _, public in KEYS), threshold=2)
FIELDS = {"name": "Sok"}
ENTRIES = []
for leaf in (1, 2, 3):
    c = receipt_commitment(ORIGIN, bytes([leaf]) * 16)
    ENTRIES.append((leaf, c, CUSTODY.seal(ORIGIN, c, FIELDS)))
RECORD = ENTRIES[0][2]
C = ENTRIES[0][1]
DETAILS_FILE = encode_details_file(ORIGIN, CUSTODY, ENTRIES)


def _header_and_entries(
    data: bytes,
) -> tuple[DetailsFileHeader, list[tuple[DetailsEntry, str | None]]]:
    stream = io.BytesIO(data)
    header = read_details_header(stream)
    assert header is not None
    return header, [(entry, None) for entry in read_details_entries(stream, header)]


HEADER, PAIRS = _header_and_entries(DETAILS_FILE)
SHARES = [open_shares(HEADER, PAIRS, private_key=private)[0].encode() for private, _public in KEYS]


@FAST
@given(record=bytes_like(RECORD))
def test_parse_record(record: bytes) -> None:
    try:
        parsed = parse_record(record)
    except errors.RecordFormatError:
        return
    assert len(parsed.sealed_shares) == parsed.keys


@settings(max_examples=examples(150), deadline=None)
@given(record=mutated(RECORD, 2), index=st.integers(1, 3))
def test_open_and_combine_a_damaged_record(record: bytes, index: int) -> None:
    try:
        share = open_share(KEYS[index - 1][0], index, ORIGIN, C, record)
        other = open_share(KEYS[index % 3][0], index % 3 + 1, ORIGIN, C, record)
        details = combine_shares([share, other], ORIGIN, C, record)
    except errors.Error:
        return
    assert details == FIELDS  # only an undamaged record opens (or one whose damage is moot)


@settings(max_examples=examples(150), deadline=None)
@given(value=st.binary(min_size=16, max_size=16), index=st.integers(0, 20), good=st.integers(1, 3))
def test_made_up_shares_never_open(value: bytes, index: int, good: int) -> None:
    genuine = open_share(KEYS[good - 1][0], good, ORIGIN, C, RECORD)
    try:
        combine_shares([genuine, Share(index=index, value=value)], ORIGIN, C, RECORD)
    except errors.Error:
        return
    raise AssertionError("a made-up share opened a record")


@FAST
@given(data=bytes_like(DETAILS_FILE[:400]))
def test_read_details_header(data: bytes) -> None:
    try:
        read_details_header(io.BytesIO(data))
    except errors.DetailsFileError:
        pass


@settings(max_examples=examples(150), deadline=None)
@given(data=mutated(DETAILS_FILE, 3))
def test_read_details_entries(data: bytes) -> None:
    stream = io.BytesIO(data)
    try:
        header = read_details_header(stream)
        if header is None:
            return
        for entry in read_details_entries(stream, header):
            assert len(entry.record) == header.custody.record_size
    except errors.DetailsFileError:
        pass


@FAST
@given(data=bytes_like(SHARES[0]))
def test_parse_shares_file(data: bytes) -> None:
    try:
        parsed = parse_shares_file(data)
    except errors.SharesFileError:
        return
    assert parsed.encode() == data


@settings(max_examples=examples(150), deadline=None)
@given(first=mutated(SHARES[0], 2), second=st.sampled_from(SHARES[1:]))
def test_combine_damaged_shares_files(first: bytes, second: bytes) -> None:
    try:
        files = [("a.shares", parse_shares_file(first)), ("b.shares", parse_shares_file(second))]
        opened = list(combine_files(HEADER, files, PAIRS))
    except errors.Error:
        return
    # Whatever a damaged file let through opened to the genuine details, never to others.
    assert all(details == FIELDS for _leaf, details in opened)
