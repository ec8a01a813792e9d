"""The k-of-n details record (docs/formats.md §10.2): any k shares open it, fewer never do."""

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samleng.crypto.custody import (
    MAX_KEYS,
    Custody,
    Share,
    combine_data_key,
    combine_shares,
    custody_from_petition,
    open_record,
    open_share,
    parse_record,
    record_size,
    seal_record,
    share_commitment,
    single_key_custody,
    split_data_key,
)
from samleng.crypto.details import (
    DETAILS_CIPHERTEXT_BYTES,
    details_digest,
    generate_details_keypair,
    open_details,
)
from samleng.crypto.errors import (
    CustodyFormatError,
    DetailsTooLarge,
    DuplicateShareError,
    RecordFormatError,
    RecordTamperedError,
    ShareDecryptionError,
    ShareMismatchError,
    TooFewSharesError,
)
from samleng.crypto.receipts import receipt_commitment

ORIGIN = "petitions.example.org/p/end-impunity"
OTHER_ORIGIN = "petitions.example.org/p/other"
C = receipt_commitment(ORIGIN, bytes(range(16)))
OTHER_C = receipt_commitment(ORIGIN, bytes(range(1, 17)))
KEYS = [generate_details_keypair() for _ in range(MAX_KEYS)]
PRIVATE = [private for private, _ in KEYS]
PUBLIC = [public for _, public in KEYS]
FIELDS = {"name": "សុខ ចាន់", "locality": "Phnom Penh", "contact": "sok@example.org"}


def shares_of(record: bytes, indices: list[int], origin: str = ORIGIN, c: bytes = C) -> list[Share]:
    return [open_share(PRIVATE[i - 1], i, origin, c, record) for i in indices]


def test_two_of_three() -> None:
    record = seal_record(PUBLIC[:3], 2, ORIGIN, C, FIELDS)
    assert len(record) == record_size(3) == 21 + 3 * 96 + 1040
    for pair in itertools.combinations([1, 2, 3], 2):
        assert combine_shares(shares_of(record, list(pair)), ORIGIN, C, record) == FIELDS
    assert combine_shares(shares_of(record, [1, 2, 3]), ORIGIN, C, record) == FIELDS
    for single in ([1], [2], [3], []):
        with pytest.raises(TooFewSharesError) as refused:
            combine_shares(shares_of(record, single), ORIGIN, C, record)
        assert refused.value.missing == 2 - len(single)


def test_too_few_names_how_many_are_missing() -> None:
    record = seal_record(PUBLIC[:5], 4, ORIGIN, C, FIELDS)
    with pytest.raises(TooFewSharesError, match=r"4 of the petition's 5 keys; 2 given "
                       r"\(share 2, 5\): 2 more are missing"):  # fmt: skip
        combine_shares(shares_of(record, [5, 2]), ORIGIN, C, record)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n=st.integers(1, MAX_KEYS))
def test_any_k_shares_open_and_fewer_never(data: st.DataObject, n: int) -> None:
    k = data.draw(st.integers(1, n), label="k")
    fields = data.draw(
        st.dictionaries(st.sampled_from(["name", "locality", "comment"]), st.text(max_size=40)),
        label="fields",
    )
    record = seal_record(PUBLIC[:n], k, ORIGIN, C, fields)
    # Fixed size per n, whatever the details (none given included).
    assert len(record) == record_size(n)
    every = list(range(1, n + 1))
    chosen = data.draw(st.lists(st.sampled_from(every), min_size=k, unique=True), label="opened")
    given = {key: value for key, value in fields.items() if value}
    assert combine_shares(shares_of(record, chosen), ORIGIN, C, record) == given
    short = data.draw(st.lists(st.sampled_from(every), max_size=k - 1, unique=True), label="few")
    with pytest.raises(TooFewSharesError):
        combine_shares(shares_of(record, short), ORIGIN, C, record)


def test_size_does_not_show_whether_details_were_given() -> None:
    for n in (1, 2, 16):
        sizes = {len(seal_record(PUBLIC[:n], 1, ORIGIN, C, f)) for f in ({}, FIELDS)}
        assert sizes == {record_size(n)}
    with pytest.raises(DetailsTooLarge):
        seal_record(PUBLIC[:2], 1, ORIGIN, C, {"comment": "x" * 1100})


def test_a_share_is_bound_to_its_petition_leaf_and_index() -> None:
    record = seal_record(PUBLIC[:3], 2, ORIGIN, C, FIELDS)
    with pytest.raises(ShareDecryptionError):
        open_share(PRIVATE[0], 1, OTHER_ORIGIN, C, record)
    with pytest.raises(ShareDecryptionError):
        open_share(PRIVATE[0], 1, ORIGIN, OTHER_C, record)
    with pytest.raises(ShareDecryptionError):
        open_share(PRIVATE[0], 2, ORIGIN, C, record)  # organisation 1's key, share 2
    with pytest.raises(ShareDecryptionError):
        open_share(PRIVATE[5], 1, ORIGIN, C, record)  # a key that is not the petition's


def test_a_changed_share_is_named() -> None:
    record = seal_record(PUBLIC[:3], 2, ORIGIN, C, FIELDS)
    one, two = shares_of(record, [1, 2])
    changed = Share(index=2, value=bytes([two.value[0] ^ 1]) + two.value[1:])
    with pytest.raises(ShareMismatchError, match="share 2 is not the share this record"):
        combine_shares([one, changed], ORIGIN, C, record)
    # A share of another record (same organisation, another leaf) is refused the same way.
    other = seal_record(PUBLIC[:3], 2, ORIGIN, OTHER_C, FIELDS)
    foreign = open_share(PRIVATE[1], 2, ORIGIN, OTHER_C, other)
    with pytest.raises(ShareMismatchError):
        combine_shares([one, foreign], ORIGIN, C, record)
    # Shares of this record combined under another petition's origin do not check out either.
    with pytest.raises(ShareMismatchError):
        combine_shares([one, two], OTHER_ORIGIN, C, record)


def test_duplicate_share_indices() -> None:
    record = seal_record(PUBLIC[:3], 2, ORIGIN, C, FIELDS)
    one = shares_of(record, [1])[0]
    with pytest.raises(DuplicateShareError, match="share 1 is given twice"):
        combine_shares([one, one], ORIGIN, C, record)


def test_a_changed_payload_is_named() -> None:
    record = bytearray(seal_record(PUBLIC[:3], 2, ORIGIN, C, FIELDS))
    shares = shares_of(bytes(record), [1, 3])
    record[-1] ^= 1
    with pytest.raises(RecordTamperedError):
        combine_shares(shares, ORIGIN, C, bytes(record))


def test_a_changed_header_is_refused() -> None:
    record = seal_record(PUBLIC[:3], 2, ORIGIN, C, FIELDS)
    shares = shares_of(record, [1, 2])
    lowered = record[:19] + bytes([1]) + record[20:]  # claims k = 1
    # The commitments bind k: the shares of a 2-of-3 record are not shares of a 1-of-3 one.
    with pytest.raises(ShareMismatchError):
        combine_shares(shares, ORIGIN, C, lowered)
    with pytest.raises(ShareDecryptionError):
        open_share(PRIVATE[0], 1, ORIGIN, C, lowered)
    for bad in (record[:-1], record + b"\0", b"samleng-details/v1\n" + record[19:], record[:20]):
        with pytest.raises(RecordFormatError):
            parse_record(bad)
    with pytest.raises(RecordFormatError, match="out of range"):
        parse_record(record[:19] + bytes([3, 2]) + record[21:])


def test_k_equal_one_opens_with_any_single_key() -> None:
    record = seal_record(PUBLIC[:3], 1, ORIGIN, C, FIELDS)
    for index in (1, 2, 3):
        assert open_record(PRIVATE[index - 1], index, ORIGIN, C, record) == FIELDS
    two = seal_record(PUBLIC[:3], 2, ORIGIN, C, FIELDS)
    with pytest.raises(TooFewSharesError):
        open_record(PRIVATE[0], 1, ORIGIN, C, two)


def test_shamir_any_k_of_n() -> None:
    rng = random.Random(5)
    for k, n in [(1, 1), (1, 4), (2, 3), (3, 5), (16, 16)]:
        key = rng.randbytes(16)
        shares = split_data_key(key, k, n)
        assert len(shares) == n and len(set(shares)) == n
        chosen = rng.sample(range(1, n + 1), k)
        assert combine_data_key({i: shares[i - 1] for i in chosen}, k) == key
    with pytest.raises(ValueError):
        split_data_key(bytes(16), 3, 2)
    with pytest.raises(ValueError):
        split_data_key(bytes(16), 1, 17)


def test_commitment_binds_every_value() -> None:
    base = share_commitment(ORIGIN, C, 2, 3, 1, bytes(16))
    changed = [
        share_commitment(OTHER_ORIGIN, C, 2, 3, 1, bytes(16)),
        share_commitment(ORIGIN, OTHER_C, 2, 3, 1, bytes(16)),
        share_commitment(ORIGIN, C, 3, 3, 1, bytes(16)),
        share_commitment(ORIGIN, C, 2, 4, 1, bytes(16)),
        share_commitment(ORIGIN, C, 2, 3, 2, bytes(16)),
        share_commitment(ORIGIN, C, 2, 3, 1, bytes(15) + b"\1"),
    ]
    assert base not in changed and len(set(changed)) == len(changed)


def test_custody_seals_both_versions() -> None:
    single = single_key_custody(PUBLIC[0])
    old = single.seal(ORIGIN, C, FIELDS)
    assert len(old) == DETAILS_CIPHERTEXT_BYTES == single.record_size
    assert open_details(PRIVATE[0], ORIGIN, C, old) == FIELDS
    coalition = Custody(public_keys=tuple(PUBLIC[:3]), threshold=2)
    new = coalition.seal(ORIGIN, C, FIELDS)
    assert len(new) == coalition.record_size
    assert details_digest(new) != details_digest(old)
    assert coalition.index_of(PUBLIC[2]) == 3 and coalition.index_of(PUBLIC[5]) is None


@pytest.mark.parametrize(
    ("keys", "k", "version"),
    [((), 1, 2), (tuple(PUBLIC[:2]), 3, 2), (tuple(PUBLIC[:2]), 0, 2),
     ((PUBLIC[0], PUBLIC[0]), 1, 2), ((PUBLIC[0][:31],), 1, 2), (tuple(PUBLIC[:2]), 1, 1),
     ((PUBLIC[0],), 1, 3), (tuple(PUBLIC) + (bytes(32),), 1, 2)],
)  # fmt: skip
def test_custody_refuses_impossible_shapes(keys: tuple[bytes, ...], k: int, version: int) -> None:
    with pytest.raises(ValueError):
        Custody(public_keys=keys, threshold=k, version=version)


def test_custody_round_trips_through_petition_json() -> None:
    for custody in (
        single_key_custody(PUBLIC[0]),
        Custody(public_keys=tuple(PUBLIC[:3]), threshold=2),
        Custody(public_keys=(PUBLIC[0],), threshold=1),
    ):
        assert custody_from_petition(custody.petition_member()) == custody
    member = Custody(public_keys=tuple(PUBLIC[:3]), threshold=2).petition_member()
    assert member["format"] == "samleng-details/v2" and member["threshold"] == 2


@pytest.mark.parametrize(
    "details",
    [None, [], {}, {"public_key": "eA=="}, {"public_key": "é"}, {"format": "samleng-details/v3"},
     {"format": "samleng-details/v2", "public_keys": [], "threshold": 1},
     {"format": "samleng-details/v2", "public_keys": ["x"], "threshold": 1},
     {"format": "samleng-details/v2", "public_keys": "abc", "threshold": 1},
     {"format": "samleng-details/v2", "threshold": True,
      "public_keys": ["eaYx7t4b+cmPEgMs3q3Q56B5OY/HhriMyEbsia+FpRo="]}],
)  # fmt: skip
def test_custody_from_a_bad_petition_json(details: object) -> None:
    with pytest.raises(CustodyFormatError):
        custody_from_petition(details)
