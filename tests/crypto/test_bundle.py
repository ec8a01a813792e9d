"""Tests for crypto.bundle: a valid export verifies; each kind of tampering fails its own check."""

import hashlib
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import samleng.crypto.bundle
from samleng.crypto.bundle import (
    BundleCheck,
    BundleReport,
    checkpoint_path,
    petition_log_facts,
    sha256sums,
    verify_bundle,
)
from samleng.crypto.checkpoint import Checkpoint, LogSigner, sign_checkpoint
from samleng.crypto.errors import BundleError, VerificationError
from samleng.crypto.leaf import (
    LEAF_PREFIX,
    LeafKind,
    encode_leaf,
    header_leaf,
    withdrawal_leaf,
)
from samleng.crypto.merkle import CompactTree, leaf_hash, root_hash
from tests.crypto.logfactory import PetitionLog, make_log, reseal

HISTORY = [1, 2, 5, 9]


@pytest.fixture
def log() -> PetitionLog:
    return make_log(20)


@pytest.fixture
def bundle(log: PetitionLog, tmp_path: Path) -> Path:
    return log.write_bundle(tmp_path / "bundle", history=HISTORY)


def fails(directory: Path, check: BundleCheck, message: str = "") -> BundleError:
    """Verify, expecting failure of exactly ``check`` with ``message`` in the text."""
    with pytest.raises(BundleError) as info:
        verify_bundle(directory)
    assert info.value.check == check, str(info.value)
    assert message in str(info.value)
    assert str(info.value).startswith(f"{check}: ")
    return info.value


def test_valid_bundle(log: PetitionLog, bundle: Path) -> None:
    lines: list[str] = []
    report = verify_bundle(bundle, on_check=lines.append)
    expected_count = sum(1 for s in log.signatures if s.kind in (1, 2))
    assert report == BundleReport(
        origin=log.origin,
        size=21,
        count=expected_count,
        root=log.tree.root(),
        checkpoints_checked=len(HISTORY) + 1,
    )
    assert report.count == 20
    # Without checkpoints kept elsewhere or a witness policy, every check but the ones that
    # compare them (tests/crypto/test_witnessed_bundle.py has the policy's).
    known = {BundleCheck.KNOWN_SIGNATURES, BundleCheck.KNOWN_CONSISTENT}
    # A log without endorsement leaves, as every bundle from before them: nothing to check.
    witnessed = {
        BundleCheck.WITHDRAWALS,
        BundleCheck.ENDORSEMENTS,
        BundleCheck.POLICY,
        BundleCheck.WITNESS_QUORUM,
        BundleCheck.HISTORY_COSIGNATURES,
    }
    expected = [f"ok {check}" for check in BundleCheck if check not in known | witnessed]
    assert [line.split(":")[0] for line in lines] == expected
    lines.clear()
    verify_bundle(bundle, known_checkpoints=[("kept", log.checkpoint(7))], on_check=lines.append)
    assert [line.split(":")[0] for line in lines] == [
        f"ok {check}" for check in BundleCheck if check not in witnessed
    ]


def test_header_only_bundle_counts_zero(tmp_path: Path) -> None:
    report = verify_bundle(make_log(0).write_bundle(tmp_path / "b"))
    assert (report.size, report.count, report.checkpoints_checked) == (1, 0, 1)


def test_count_is_signature_kinds_only(tmp_path: Path) -> None:
    log = make_log(0, verification_mode="email")
    for kind in (LeafKind.SIGNATURE, LeafKind.VERIFIED_SIGNATURE, LeafKind.VERIFIED_SIGNATURE):
        log.append_leaf(encode_leaf(kind, os.urandom(32), os.urandom(32)))
    lines: list[str] = []
    assert verify_bundle(log.write_bundle(tmp_path / "b"), on_check=lines.append).count == 3
    assert "ok verification mode: verification_mode email, leaves of kind 0x02 allowed" in lines


def test_many_chunks_and_checkpoints(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Chunks of 7 leaves put checkpoint sizes and duplicate checks across chunk boundaries.
    monkeypatch.setattr(samleng.crypto.bundle, "CHUNK_LEAVES", 7)
    log = make_log(60)
    directory = log.write_bundle(tmp_path / "b", history=list(range(0, 61)))
    progress: list[tuple[int, int]] = []
    report = verify_bundle(
        directory, on_progress=lambda done, total: progress.append((done, total))
    )
    assert report.checkpoints_checked == 62
    assert progress[0] == (7, 61) and progress[-1] == (61, 61) and len(progress) == 9


def test_duplicate_across_chunks_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(samleng.crypto.bundle, "CHUNK_LEAVES", 7)
    log = make_log(20)
    log.append_leaf(log.leaves[3])
    fails(log.write_bundle(tmp_path / "b"), BundleCheck.DISTINCT, "leaf 21 repeats")


# --- tampering with a signed, valid bundle ------------------------------------------------


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_flipped_leaf_byte(bundle: Path) -> None:
    flip(bundle / "leaves.bin", 81 * 5 + 40)
    fails(bundle, BundleCheck.SUMS, "leaves.bin does not match")
    reseal(bundle)
    fails(bundle, BundleCheck.ROOT, "do not hash to the checkpoint's root")


def test_flipped_prefix_byte(bundle: Path) -> None:
    flip(bundle / "leaves.bin", 81 * 5 + 3)
    reseal(bundle)
    fails(bundle, BundleCheck.LEAF_FORMAT, "leaf 5 does not start with samleng-leaf/v1")


def test_dropped_leaf(bundle: Path) -> None:
    leaves = bundle / "leaves.bin"
    data = leaves.read_bytes()
    leaves.write_bytes(data[: 81 * 7] + data[81 * 8 :])
    reseal(bundle)
    fails(bundle, BundleCheck.TREE_SIZE, "leaves.bin has 20 leaves, the checkpoint says 21")


def test_swapped_leaves(bundle: Path) -> None:
    leaves = bundle / "leaves.bin"
    data = leaves.read_bytes()
    a, b = data[81 * 3 : 81 * 4], data[81 * 12 : 81 * 13]
    leaves.write_bytes(data[: 81 * 3] + b + data[81 * 4 : 81 * 12] + a + data[81 * 13 :])
    reseal(bundle)
    fails(bundle, BundleCheck.ROOT)


def test_partial_leaf(bundle: Path) -> None:
    with (bundle / "leaves.bin").open("ab") as f:
        f.write(b"\x00" * 10)
    reseal(bundle)
    fails(bundle, BundleCheck.LEAVES_LENGTH, "not a multiple of 81")


def test_edited_petition(bundle: Path) -> None:
    path = bundle / "petition.json"
    path.write_bytes(path.read_bytes().replace(b"End impunity", b"End impunitY"))
    reseal(bundle)
    fails(bundle, BundleCheck.HEADER, "leaf 0 is not SHA-256(petition.json)")


def test_checkpoint_signed_by_another_key(log: PetitionLog, bundle: Path) -> None:
    impostor = LogSigner(origin=log.origin, seed=bytes(32))
    forged = sign_checkpoint(
        Checkpoint(origin=log.origin, size=log.size, root=log.tree.root()), impostor
    )
    (bundle / "checkpoint").write_bytes(forged)
    (bundle / checkpoint_path(log.size)).write_bytes(forged)
    reseal(bundle)
    fails(bundle, BundleCheck.CHECKPOINT, "checkpoint: note is not signed by any trusted key")


def test_historical_checkpoint_not_extended(log: PetitionLog, bundle: Path) -> None:
    # The log signed a tree of size 5 that the final tree does not extend (a fork).
    fork = [log.tree.subtree(0, i) for i in range(4)]
    fork.append(leaf_hash(encode_leaf(LeafKind.SIGNATURE, bytes(32), bytes(32))))
    forked = sign_checkpoint(
        Checkpoint(origin=log.origin, size=5, root=root_hash(fork)), log.signer
    )
    (bundle / checkpoint_path(5)).write_bytes(forked)
    reseal(bundle)
    fails(bundle, BundleCheck.HISTORY_CONSISTENT, "checkpoints/5 is not a prefix")


def test_historical_checkpoint_larger_than_latest(log: PetitionLog, bundle: Path) -> None:
    later = make_log(25)  # same seed, same key: a future state of the same log
    (bundle / checkpoint_path(26)).write_bytes(later.checkpoint())
    reseal(bundle)
    fails(bundle, BundleCheck.HISTORY_SIGNATURES, "larger than the latest")


@pytest.mark.parametrize("name", ["007", "x", "-1", "5.0"])
def test_historical_checkpoint_badly_named(log: PetitionLog, bundle: Path, name: str) -> None:
    (bundle / "checkpoints" / name).write_bytes(log.checkpoint(7))
    reseal(bundle)
    fails(bundle, BundleCheck.HISTORY_SIGNATURES, "not named by a size")


def test_historical_checkpoint_under_wrong_size(log: PetitionLog, bundle: Path) -> None:
    (bundle / checkpoint_path(6)).write_bytes(log.checkpoint(7))
    reseal(bundle)
    fails(bundle, BundleCheck.HISTORY_SIGNATURES, "holds a checkpoint of size 7")


def test_historical_checkpoint_by_another_key(log: PetitionLog, bundle: Path) -> None:
    impostor = LogSigner(origin=log.origin, seed=bytes(32))
    note = sign_checkpoint(Checkpoint(origin=log.origin, size=5, root=log.tree.root(5)), impostor)
    (bundle / checkpoint_path(5)).write_bytes(note)
    reseal(bundle)
    fails(bundle, BundleCheck.HISTORY_SIGNATURES, "checkpoints/5")


def test_latest_not_published(log: PetitionLog, bundle: Path) -> None:
    (bundle / checkpoint_path(log.size)).unlink()
    reseal(bundle)
    fails(bundle, BundleCheck.LATEST_PUBLISHED, "checkpoints/21")


def test_latest_is_an_older_checkpoint(log: PetitionLog, bundle: Path) -> None:
    # A bundle whose "latest" checkpoint is older than its leaves: the sizes disagree.
    (bundle / "checkpoint").write_bytes(log.checkpoint(9))
    reseal(bundle)
    fails(bundle, BundleCheck.HISTORY_SIGNATURES, "checkpoints/21 is larger than the latest")


# --- logs that were signed but break the rules ---------------------------------------------


def test_duplicate_commitment(tmp_path: Path) -> None:
    log = make_log(5)
    log.append_leaf(encode_leaf(LeafKind.SIGNATURE, log.leaves[2][17:49], bytes(32)))
    fails(log.write_bundle(tmp_path / "b"), BundleCheck.DISTINCT, "leaf 6 repeats the commitment")


def test_commitments_sharing_a_prefix_are_distinct(tmp_path: Path) -> None:
    # Distinctness is checked on 8-byte prefixes first; a shared prefix alone is no duplicate.
    log = make_log(5)
    c = log.leaves[2][17:25] + bytes(reversed(log.leaves[2][25:49]))
    log.append_leaf(encode_leaf(LeafKind.SIGNATURE, c, bytes(32)))
    assert verify_bundle(log.write_bundle(tmp_path / "b")).count == 6


def _bundle_of(tmp_path: Path, commitments: list[bytes], name: str) -> Path:
    log = make_log(0)
    for c in commitments:
        log.append_leaf(encode_leaf(LeafKind.SIGNATURE, c, bytes(32)))
    return log.write_bundle(tmp_path / name)


def _first_repeat(commitments: list[bytes]) -> int | None:
    seen: set[bytes] = set()
    for at, c in enumerate(commitments, start=1):  # leaf 0 is the header
        if c in seen:
            return at
        seen.add(c)
    return None


@settings(max_examples=30, deadline=None)
@given(
    picks=st.lists(st.integers(0, 11), min_size=1, max_size=24),
    large=st.booleans(),
    passes=st.sampled_from([1, 3]),
)
def test_repeats_are_found_by_both_checks(
    picks: list[int], large: bool, passes: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The set of prefixes (small logs) and the bitmap of keys (large logs, here forced) find
    the same first repeat as a plain comparison; twelve commitments share their first 8 bytes
    (all suspects), and the whole ones are compared all at once or 3 at a time (in passes)."""
    stem = os.urandom(8)
    pool = [stem + bytes([i]) * 24 for i in range(12)]
    commitments = [pool[i] for i in picks]
    tmp_path = tmp_path_factory.mktemp("repeats")
    bundle = _bundle_of(tmp_path, commitments, "b")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(samleng.crypto.bundle, "SET_LIMIT", 0 if large else 10**9)
        patch.setattr(samleng.crypto.bundle, "_COMPARED_AT_ONCE", 3 if passes == 3 else 10**9)
        first = _first_repeat(commitments)
        if first is None:
            assert verify_bundle(bundle).count == len(commitments)
        else:
            fails(bundle, BundleCheck.DISTINCT, f"leaf {first} repeats the commitment")


def test_photo_pledges_count_and_are_reported_apart(tmp_path: Path) -> None:
    log = make_log(3)
    photo = os.urandom(32)
    log.append_leaf(encode_leaf(LeafKind.PHOTO, photo, os.urandom(32)))
    log.append_leaf(encode_leaf(LeafKind.PHOTO, os.urandom(32), os.urandom(32)))
    _paper_leaf(log)
    report = verify_bundle(log.write_bundle(tmp_path / "b"))
    assert (report.count, report.photos, report.paper) == (6, 2, 1)
    log.append_leaf(withdrawal_leaf(photo))
    report = verify_bundle(log.write_bundle(tmp_path / "c"))
    assert (report.count, report.photos, report.paper, report.withdrawals) == (5, 1, 1, 1)


def test_unknown_kind_08(tmp_path: Path) -> None:
    log = make_log(5)
    log.append_leaf(LEAF_PREFIX + b"\x08" + os.urandom(64))
    fails(log.write_bundle(tmp_path / "b"), BundleCheck.LEAF_FORMAT, "leaf 6 has kind 0x08")


def _paper_leaf(log: PetitionLog) -> bytes:
    """Append one paper signature (kind 0x05) and return its c."""
    c = os.urandom(32)
    log.append_leaf(encode_leaf(LeafKind.PAPER, c, os.urandom(32)))
    return c


def test_paper_signatures_count_and_are_reported_apart(tmp_path: Path) -> None:
    log = make_log(5)
    _paper_leaf(log)
    log.sign(2)
    _paper_leaf(log)
    report = verify_bundle(log.write_bundle(tmp_path / "b"))
    assert (report.count, report.paper, report.withdrawals) == (9, 2, 0)


def test_a_withdrawn_paper_signature_leaves_the_paper_part(tmp_path: Path) -> None:
    log = make_log(3)
    paper = _paper_leaf(log)
    _paper_leaf(log)
    log.append_leaf(withdrawal_leaf(paper))
    log.append_leaf(withdrawal_leaf(log.leaves[1][17:49]))  # an online one too
    report = verify_bundle(log.write_bundle(tmp_path / "b"))
    assert (report.count, report.paper, report.withdrawals) == (3, 1, 2)


def test_a_withdrawal_must_name_an_earlier_signature(tmp_path: Path) -> None:
    log = make_log(5)
    log.append_leaf(LEAF_PREFIX + b"\x03" + os.urandom(64))
    fails(log.write_bundle(tmp_path / "b"), BundleCheck.WITHDRAWALS, "leaf 6: its c is not")


def test_unknown_kind(tmp_path: Path) -> None:
    log = make_log(5)
    log.append_leaf(LEAF_PREFIX + b"\x7f" + os.urandom(64))
    log.sign(2)
    fails(log.write_bundle(tmp_path / "b"), BundleCheck.LEAF_FORMAT, "leaf 6 has kind 0x7f")


def test_second_header(tmp_path: Path) -> None:
    log = make_log(5)
    log.append_leaf(header_leaf(b"{}"))
    fails(log.write_bundle(tmp_path / "b"), BundleCheck.HEADER, "leaf 6 is a second header")


def test_first_leaf_not_header(tmp_path: Path) -> None:
    log = make_log(3)
    log.leaves, old = [], log.leaves
    log.tree = type(log.tree)()
    for leaf in old[1:]:
        log.append_leaf(leaf)
    fails(log.write_bundle(tmp_path / "b"), BundleCheck.HEADER, "leaf 0 is not the header")


def test_verified_leaf_in_a_petition_without_verification(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # petition.json says "verification_mode": "none", so no signature was email-confirmed; a
    # leaf claiming otherwise (kind 0x02) contradicts the petition the signers saw.
    monkeypatch.setattr(samleng.crypto.bundle, "CHUNK_LEAVES", 4)
    log = make_log(9)
    log.append_leaf(encode_leaf(LeafKind.VERIFIED_SIGNATURE, os.urandom(32), os.urandom(32)))
    log.sign(3)
    fails(
        log.write_bundle(tmp_path / "b"),
        BundleCheck.VERIFICATION_MODE,
        "leaf 10 has kind 0x02 (email-confirmed signature), but petition.json's "
        'verification_mode is "none": no signature was confirmed',
    )


def test_both_kinds_in_an_email_verified_petition(tmp_path: Path) -> None:
    # The rule is one-way (docs/formats.md §5): the service writes only kind 0x02 there, and a
    # kind 0x01 leaf claims less than petition.json does, not more.
    log = make_log(4, verification_mode="email")
    log.append_leaf(encode_leaf(LeafKind.SIGNATURE, os.urandom(32), os.urandom(32)))
    log.append_leaf(encode_leaf(LeafKind.VERIFIED_SIGNATURE, os.urandom(32), os.urandom(32)))
    lines: list[str] = []
    assert verify_bundle(log.write_bundle(tmp_path / "b"), on_check=lines.append).count == 6
    assert "ok verification mode: verification_mode email, leaves of kind 0x02 allowed" in lines


def test_no_verified_leaf_in_a_petition_without_verification(tmp_path: Path) -> None:
    lines: list[str] = []
    verify_bundle(make_log(4).write_bundle(tmp_path / "b"), on_check=lines.append)
    assert "ok verification mode: verification_mode none, no leaf of kind 0x02" in lines


@pytest.mark.parametrize("mode", [None, "", "EMAIL", "phone", 1, ["none"]])
def test_verification_mode_missing_or_unknown(tmp_path: Path, mode: object) -> None:
    log = make_log(3)
    petition = json.loads(log.petition_json)
    if mode is None:
        del petition["verification_mode"]
    else:
        petition["verification_mode"] = mode
    log.petition_json = json.dumps(petition).encode()
    log.leaves[0] = header_leaf(log.petition_json)
    log.tree = type(log.tree)([leaf_hash(leaf) for leaf in log.leaves])
    fails(log.write_bundle(tmp_path / "b"), BundleCheck.PETITION, "verification_mode")


def test_header_with_nonzero_d(tmp_path: Path) -> None:
    log = make_log(0)
    log.leaves, log.tree = [], type(log.tree)()
    c = hashlib.sha256(log.petition_json).digest()
    log.append_leaf(LEAF_PREFIX + b"\x00" + c + b"\x01" * 32)
    fails(log.write_bundle(tmp_path / "b"), BundleCheck.HEADER, "non-zero d")


def test_empty_log(tmp_path: Path) -> None:
    log = make_log(0)
    log.leaves, log.tree = [], type(log.tree)()
    fails(log.write_bundle(tmp_path / "b"), BundleCheck.TREE_SIZE, "no header leaf")


# --- keys, petition.json, files ------------------------------------------------------------


def test_vkey_file_garbage(bundle: Path) -> None:
    (bundle / "vkey").write_bytes(b"not a key\n")
    reseal(bundle)
    fails(bundle, BundleCheck.VKEY)


@pytest.mark.parametrize("suffix", [b"", b"\n\n", b"\r\n"])
def test_vkey_file_must_be_one_line(log: PetitionLog, bundle: Path, suffix: bytes) -> None:
    (bundle / "vkey").write_bytes(log.signer.vkey.encode() + suffix)
    reseal(bundle)
    fails(bundle, BundleCheck.VKEY)


def test_vkey_file_of_another_key(log: PetitionLog, bundle: Path) -> None:
    other = LogSigner(origin=log.origin, seed=bytes(32))
    (bundle / "vkey").write_bytes(other.vkey.encode() + b"\n")
    reseal(bundle)
    fails(bundle, BundleCheck.VKEY_MATCHES_PETITION, "differs from petition.json")


def test_key_named_after_another_origin(tmp_path: Path) -> None:
    # petition.json says origin A but names a log key called B; B signs everything correctly.
    log = make_log(3, origin="petitions.example.org/p/b")
    log.petition_json = log.petition_json.replace(
        b'"origin":"petitions.example.org/p/b"', b'"origin":"petitions.example.org/p/a"'
    )
    log.leaves[0] = header_leaf(log.petition_json)
    log.tree = type(log.tree)([leaf_hash(leaf) for leaf in log.leaves])
    fails(log.write_bundle(tmp_path / "b"), BundleCheck.KEY_NAME, "is not the origin")


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b'{"origin":"x","verification_mode":"none"}',
        b'{"origin":"x","log":"k","verification_mode":"none"}',
        b'{"origin":1,"log":{"vkey":"k"},"verification_mode":"none"}',
        b'{"origin":"x","log":{"vkey":"k"},"origin":"y","verification_mode":"none"}',  # twice
        b"\xff",
    ],
)
def test_petition_json_unreadable(bundle: Path, content: bytes) -> None:
    (bundle / "petition.json").write_bytes(content)
    reseal(bundle)
    fails(bundle, BundleCheck.PETITION)


def test_petition_fields_in_one_place(log: PetitionLog) -> None:
    facts = petition_log_facts(json.loads(log.petition_json))
    assert facts == (log.origin, log.signer.vkey)


def test_sums_mismatch(bundle: Path) -> None:
    (bundle / "VERIFY.txt").write_bytes(b"changed\n")
    fails(bundle, BundleCheck.SUMS, "VERIFY.txt does not match its SHA-256")


def test_sums_unlisted_file(bundle: Path) -> None:
    (bundle / "extra.txt").write_bytes(b"hello\n")
    fails(bundle, BundleCheck.SUMS, "extra.txt is in the bundle but not in SHA256SUMS")


def test_sums_listed_extra_file_is_allowed(bundle: Path) -> None:
    (bundle / "delivery.pdf").write_bytes(b"%PDF")
    reseal(bundle)
    assert verify_bundle(bundle).count == 20


def test_sums_listed_missing_file(bundle: Path) -> None:
    sums = bundle / "SHA256SUMS"
    sums.write_bytes(sums.read_bytes() + b"0" * 64 + b"  ghost.txt\n")
    fails(bundle, BundleCheck.SUMS, "ghost.txt is listed but not in the bundle")


def test_sums_path_escape(bundle: Path) -> None:
    sums = bundle / "SHA256SUMS"
    sums.write_bytes(sums.read_bytes() + b"0" * 64 + b"  ../outside\n")
    fails(bundle, BundleCheck.SUMS, "../outside is listed but not in the bundle")


@pytest.mark.parametrize(
    "line",
    [b"abc  petition.json\n", b"0" * 64 + b" *petition.json\n", b"0" * 64 + b" petition.json\n"],
)
def test_sums_malformed(bundle: Path, line: bytes) -> None:
    (bundle / "SHA256SUMS").write_bytes(line)
    fails(bundle, BundleCheck.SUMS, "line 1")


def test_sums_duplicate(bundle: Path) -> None:
    sums = bundle / "SHA256SUMS"
    first = sums.read_bytes().split(b"\n")[0] + b"\n"
    sums.write_bytes(sums.read_bytes() + first)
    fails(bundle, BundleCheck.SUMS, "listed twice")


def test_sums_format_matches_sha256sum(bundle: Path) -> None:
    lines = sha256sums(bundle).decode().splitlines()
    names = [line.split("  ", 1)[1] for line in lines]
    assert names == sorted(names) and "SHA256SUMS" not in names and "checkpoints/5" in names
    digest = hashlib.sha256((bundle / "leaves.bin").read_bytes()).hexdigest()
    assert f"{digest}  leaves.bin" in lines


@pytest.mark.parametrize(
    "name", ["petition.json", "vkey", "checkpoint", "leaves.bin", "SHA256SUMS", "VERIFY.txt"]
)
def test_missing_file(bundle: Path, name: str) -> None:
    (bundle / name).unlink()
    fails(bundle, BundleCheck.FILES, f"{name} is missing")


def test_symlink_refused(bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "outside").write_bytes(b"x")
    (bundle / "link").symlink_to(tmp_path / "outside")
    fails(bundle, BundleCheck.FILES, "link is a symbolic link")


def test_not_a_directory(tmp_path: Path) -> None:
    fails(tmp_path / "nothing", BundleCheck.FILES, "is not a directory")


def test_bundle_errors_are_verification_errors() -> None:
    assert issubclass(BundleError, VerificationError)


def test_each_check_has_its_own_message() -> None:
    assert len({check.value for check in BundleCheck}) == len(BundleCheck)


# --- scale ---------------------------------------------------------------------------------


def write_large_bundle(directory: Path, signatures: int, history: list[int]) -> tuple[int, bytes]:
    """Write a bundle of ``signatures`` + 1 leaves quickly; return the count and the root.

    Commitments are hashes of the leaf number (distinct, like real ones) rather than real
    receipt commitments, and roots come from one CompactTree pass, to keep this fast.
    """
    log = make_log(0)
    prefix = LEAF_PREFIX + bytes([LeafKind.SIGNATURE])
    leaves = [log.leaves[0]] + [
        prefix + hashlib.sha256(i.to_bytes(8, "big")).digest() + bytes(32)
        for i in range(signatures)
    ]
    hashes = [leaf_hash(leaf) for leaf in leaves]
    directory.mkdir()
    (directory / "checkpoints").mkdir()
    tree, done = CompactTree(), 0
    for size in sorted({*history, len(leaves)}):
        tree.extend(hashes[done:size])
        done = size
        note = sign_checkpoint(
            Checkpoint(origin=log.origin, size=size, root=tree.root()), log.signer
        )
        (directory / checkpoint_path(size)).write_bytes(note)
    (directory / "checkpoint").write_bytes(note)
    (directory / "petition.json").write_bytes(log.petition_json)
    (directory / "vkey").write_bytes(log.signer.vkey.encode() + b"\n")
    (directory / "leaves.bin").write_bytes(b"".join(leaves))
    (directory / "VERIFY.txt").write_bytes(b"verify\n")
    reseal(directory)
    return signatures, tree.root()


@pytest.mark.slow
def test_hundred_thousand_leaves(tmp_path: Path) -> None:
    count, root = write_large_bundle(tmp_path / "b", 100_000, [1, 65_536, 99_999])
    report = verify_bundle(tmp_path / "b")
    assert (report.count, report.root, report.checkpoints_checked) == (count, root, 4)
