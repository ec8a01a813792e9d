"""Export bundles: the files an auditor receives, and their full verification.

Normative: docs/formats.md §12.

A bundle is a directory::

    petition.json       the exact bytes hashed into leaf 0
    vkey                the log's verifier key string and a newline
    checkpoint          the latest signed checkpoint
    checkpoints/<size>  every published checkpoint, the latest included
    leaves.bin          every leaf, 81 bytes each, in index order
    SHA256SUMS          "<hex>  <path>" per file, like sha256sum's output
    VERIFY.txt          how to verify (English and Khmer)
    policy              optional: the witness policy (C2SP tlog-policy, docs/formats.md §21)

:func:`verify_bundle` runs every check and raises :class:`~crypto.errors.BundleError` whose
``check`` names the one that failed. It reads ``leaves.bin`` once, in chunks, keeping only
the first 8 bytes of every commitment (for distinctness) and O(log n) tree nodes, so a million
leaves need about 100 MB and a few seconds.

A bundle only proves that its log is consistent with itself: whoever holds the log key can
drop a leaf and re-sign every checkpoint. Checkpoints kept elsewhere catch that: each one given
to :func:`verify_bundle` as ``known_checkpoints`` must be a prefix of the bundle's tree, and
:func:`verify_receipt_in_bundle` checks a signer's receipt proof the same way. Witnesses catch
it without anyone keeping a checkpoint: with a witness policy (the auditor's, or else the
bundle's ``policy`` file), the final checkpoint must carry cosignatures that meet its quorum,
and witnesses do not cosign a log that dropped a leaf they had seen.

Files listed in SHA256SUMS beyond the ones above are allowed (hash-checked, not read);
unlisted files, symlinks and special files are refused.
"""

import collections
import functools
import hashlib
import json
import os
import re
import struct
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from samleng.crypto.checkpoint import Checkpoint, parse_checkpoint_body, verify_checkpoint
from samleng.crypto.endorsement import ENDORSEMENTS_FILE, Endorsements, check_endorsements
from samleng.crypto.errors import (
    BundleError,
    CosignatureError,
    EndorsementError,
    NoteSignatureError,
    SplitViewError,
    VerificationError,
)
from samleng.crypto.leaf import (
    ACCEPTED_KINDS,
    C_OFFSET,
    D_OFFSET,
    KIND_OFFSET,
    LEAF_PREFIX,
    LEAF_SIZE,
    ZERO_HASH,
    LeafKind,
    is_signature,
    withdrawal_commitment,
)
from samleng.crypto.merkle import EMPTY_ROOT, CompactTree
from samleng.crypto.note import NoteVerifier, parse_vkey
from samleng.crypto.policy import Policy, Witnessed, check_witnessed, parse_policy
from samleng.crypto.tlogproof import ReceiptCheck, parse_proof, verify_receipt

PETITION_FILE = "petition.json"
VKEY_FILE = "vkey"
CHECKPOINT_FILE = "checkpoint"
CHECKPOINTS_DIR = "checkpoints"
LEAVES_FILE = "leaves.bin"
SUMS_FILE = "SHA256SUMS"
VERIFY_FILE = "VERIFY.txt"
POLICY_FILE = "policy"
REQUIRED_FILES = (PETITION_FILE, VKEY_FILE, CHECKPOINT_FILE, LEAVES_FILE, SUMS_FILE, VERIFY_FILE)

# Caps applied before reading, so a hostile bundle cannot exhaust memory.
MAX_SMALL_FILE_BYTES = 1 << 20
MAX_SUMS_BYTES = 64 << 20
CHUNK_LEAVES = 1 << 14
_READ_BYTES = 1 << 20
_SUMS_LINE = re.compile(r"([0-9a-f]{64})  ([^\n\\]+)")
_SIZE_NAME = re.compile(r"0|[1-9][0-9]{0,18}")
_KNOWN_KINDS = bytes(sorted(ACCEPTED_KINDS))
# petition.json's verification_mode (§11): with "none", no leaf may claim an email
# confirmation (kind 0x02, §5).
VERIFICATION_MODES = ("none", "email")


class BundleCheck(StrEnum):
    """The checks of :func:`verify_bundle`, in order; each failure names exactly one."""

    FILES = "bundle files"
    SUMS = "SHA256SUMS"
    VKEY = "vkey"
    PETITION = "petition.json"
    VKEY_MATCHES_PETITION = "vkey matches petition.json"
    KEY_NAME = "key name is the origin"
    # Only with a witness policy (the auditor's --policy, or the bundle's policy file).
    POLICY = "witness policy"
    CHECKPOINT = "checkpoint signature"
    LATEST_PUBLISHED = "latest checkpoint published"
    HISTORY_SIGNATURES = "historical checkpoint signatures"
    # Only with a witness policy.
    WITNESS_QUORUM = "witness quorum"
    HISTORY_COSIGNATURES = "historical cosignatures"
    # Only with checkpoints kept elsewhere (samleng-audit verify --known-checkpoint).
    KNOWN_SIGNATURES = "known checkpoint signatures"
    LEAVES_LENGTH = "leaves.bin length"
    TREE_SIZE = "tree size"
    LEAF_FORMAT = "leaf format"
    HEADER = "header leaf"
    VERIFICATION_MODE = "verification mode"
    DISTINCT = "distinct commitments"
    ROOT = "root"
    HISTORY_CONSISTENT = "historical checkpoints consistent"
    KNOWN_CONSISTENT = "known checkpoints consistent"
    WITHDRAWALS = "withdrawals"
    ENDORSEMENTS = "endorsements"


@dataclass(frozen=True, kw_only=True)
class WitnessCoverage:
    """What the witness policy found: who cosigned the final checkpoint, and the history."""

    policy_source: str  # "given" (by the auditor) or "bundle" (the bundle's policy file)
    quorum: str  # what the quorum needs, in words
    final: frozenset[str]  # policy names of the witnesses that cosigned the final checkpoint
    history_met: int  # published checkpoints (the final one included) that meet the quorum
    history_total: int
    cosigned: tuple[tuple[str, int], ...]  # per witness of the policy: checkpoints it cosigned


@dataclass(frozen=True, kw_only=True)
class BundleReport:
    """The result of a successful verification."""

    origin: str
    size: int
    count: int
    root: bytes
    checkpoints_checked: int
    witnesses: WitnessCoverage | None = None
    # The organisations endorsing the petition (§23), apart from the signers; None for a log
    # without endorsement leaves.
    endorsements: Endorsements | None = None
    # The indices of the leaves that are neither the header nor a signature (withdrawals,
    # endorsements).
    other_leaves: tuple[int, ...] = ()
    # Signatures withdrawn by their signers (kind 0x03); ``count`` is net of them.
    withdrawals: int = 0
    # Signatures on paper forms (kind 0x05), part of ``count`` and, like it, net of
    # withdrawals.
    paper: int = 0
    # Photo pledges (kind 0x04): online signatures with a photo, part of ``count`` and net of
    # withdrawals like it.
    photos: int = 0


def petition_log_facts(petition: Mapping[str, object]) -> tuple[str, str]:
    """Return ``(origin, log verifier key)`` from parsed petition.json.

    The one place that knows these field names: ``"origin"`` and ``"log": {"vkey": ...}``.
    Raises KeyError or TypeError when they are missing or not strings.
    """
    origin = petition["origin"]
    log = petition["log"]
    if not isinstance(log, Mapping):
        raise TypeError("'log' is not an object")
    vkey = log["vkey"]
    if not isinstance(origin, str) or not isinstance(vkey, str):
        raise TypeError("'origin' and 'log.vkey' must be strings")
    return origin, vkey


def petition_verification_mode(petition: Mapping[str, object]) -> str:
    """Return petition.json's ``verification_mode``; ValueError unless "none" or "email".

    A verifier needs it to know which signature kind the log may hold (docs/formats.md §11).
    """
    mode = petition.get("verification_mode")
    if not isinstance(mode, str) or mode not in VERIFICATION_MODES:
        raise ValueError(f'\'verification_mode\' must be "none" or "email", not {mode!r}')
    return mode


def vkey_file(vkey: str) -> bytes:
    """Return the contents of the bundle's ``vkey`` file: the key string and a newline."""
    return vkey.encode("utf-8") + b"\n"


def checkpoint_path(size: int) -> str:
    """Return the bundle path of the published checkpoint of ``size`` leaves."""
    return f"{CHECKPOINTS_DIR}/{size}"


def _file_digest(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_READ_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _bundle_files(directory: Path) -> list[str]:
    """Return every regular file under ``directory`` as a POSIX relative path, sorted.

    Raises BundleError(FILES) for symlinks and special files: a bundle is plain files only.
    """
    found: list[str] = []
    for root, dirs, files in os.walk(directory, followlinks=False):
        for name in sorted(dirs + files):
            path = Path(root) / name
            relative = path.relative_to(directory).as_posix()
            if path.is_symlink():
                raise BundleError(BundleCheck.FILES, f"{relative} is a symbolic link")
            if name in files:
                if not path.is_file():
                    raise BundleError(BundleCheck.FILES, f"{relative} is not a regular file")
                found.append(relative)
    return sorted(found)


def sha256sums(directory: Path) -> bytes:
    """Return SHA256SUMS for a bundle directory: ``<hex>  <path>\\n`` per file, sorted by path.

    Every regular file is listed except SHA256SUMS itself (for the exporting service).
    """
    lines = [
        f"{_file_digest(directory / name)}  {name}\n"
        for name in _bundle_files(directory)
        if name != SUMS_FILE
    ]
    return "".join(lines).encode("utf-8")


def lay_out_bundle(
    directory: Path,
    *,
    petition_json: bytes,
    vkey: str,
    leaves: Iterable[bytes],
    checkpoints: Iterable[tuple[int, bytes]],
    verify_text: bytes,
    extra: Mapping[str, bytes] | None = None,
) -> None:
    """Write an export bundle (docs/formats.md §12) into the empty folder ``directory``.

    ``leaves`` are written to leaves.bin in order (each item one leaf or many, so a caller
    may stream them); ``checkpoints`` (size, signed note) are read after the leaves, so a
    caller may publish them while it streams. The newest of them is the bundle's
    ``checkpoint``. ``extra`` names further top-level files (a policy, delivery.pdf).
    SHA256SUMS comes last, over everything written.
    """
    (directory / CHECKPOINTS_DIR).mkdir(parents=True)
    (directory / PETITION_FILE).write_bytes(petition_json)
    (directory / VKEY_FILE).write_bytes(vkey_file(vkey))
    (directory / VERIFY_FILE).write_bytes(verify_text)
    with (directory / LEAVES_FILE).open("wb") as out:
        for chunk in leaves:
            out.write(chunk)
    newest: tuple[int, bytes] | None = None
    for size, note in checkpoints:
        (directory / checkpoint_path(size)).write_bytes(note)
        if newest is None or size > newest[0]:
            newest = (size, note)
    if newest is None:
        raise ValueError("a bundle needs at least one checkpoint")
    (directory / CHECKPOINT_FILE).write_bytes(newest[1])
    for name, data in (extra or {}).items():
        if "/" in name or name in REQUIRED_FILES:
            raise ValueError(f"{name!r} is not a further top-level file of a bundle")
        (directory / name).write_bytes(data)
    (directory / SUMS_FILE).write_bytes(sha256sums(directory))


def _read_small(directory: Path, name: str, limit: int = MAX_SMALL_FILE_BYTES) -> bytes:
    """Read a bundle file no larger than ``limit`` bytes."""
    path = directory / name
    if path.stat().st_size > limit:
        raise BundleError(BundleCheck.FILES, f"{name} is larger than {limit} bytes")
    return path.read_bytes()


def _check_files(directory: Path) -> list[str]:
    """Check the required files exist (FILES) and return every file in the bundle."""
    if not directory.is_dir() or directory.is_symlink():
        raise BundleError(BundleCheck.FILES, f"{directory} is not a directory")
    files = _bundle_files(directory)
    for name in REQUIRED_FILES:
        if name not in files:
            raise BundleError(BundleCheck.FILES, f"{name} is missing")
    if not (directory / CHECKPOINTS_DIR).is_dir():
        raise BundleError(BundleCheck.FILES, f"{CHECKPOINTS_DIR}/ is missing")
    return files


def _check_sums(directory: Path, files: list[str]) -> int:
    """Check SHA256SUMS lists every other file exactly once with its hash; return the count."""
    try:
        text = _read_small(directory, SUMS_FILE, MAX_SUMS_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError(BundleCheck.SUMS, "SHA256SUMS is not UTF-8") from None
    if not text.endswith("\n"):
        raise BundleError(BundleCheck.SUMS, "SHA256SUMS does not end with a newline")
    listed: dict[str, str] = {}
    for number, line in enumerate(text[:-1].split("\n"), start=1):
        match = _SUMS_LINE.fullmatch(line)
        if not match:
            raise BundleError(BundleCheck.SUMS, f"line {number} is not '<sha256 hex>  <path>'")
        digest, name = match.groups()
        if name in listed:
            raise BundleError(BundleCheck.SUMS, f"{name} is listed twice")
        listed[name] = digest
    present = set(files) - {SUMS_FILE}
    unlisted = sorted(present - set(listed))
    if unlisted:
        raise BundleError(BundleCheck.SUMS, f"{unlisted[0]} is in the bundle but not in SHA256SUMS")
    absent = sorted(set(listed) - present)
    if absent:
        raise BundleError(BundleCheck.SUMS, f"{absent[0]} is listed but not in the bundle")
    for name in sorted(listed):
        if _file_digest(directory / name) != listed[name]:
            raise BundleError(BundleCheck.SUMS, f"{name} does not match its SHA-256 in SHA256SUMS")
    return len(listed)


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """Build a JSON object, refusing duplicate keys (parsers disagree on which one wins)."""
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def petition_witness_policy(petition: Mapping[str, object]) -> bytes | None:
    """Return the witness policy file petition.json froze (``witness_policy``), or None.

    Raises TypeError when the member is there but not a string.
    """
    policy = petition.get("witness_policy")
    if policy is None:
        return None
    if not isinstance(policy, str):
        raise TypeError("'witness_policy' must be a string")
    return policy.encode("utf-8")


@dataclass(frozen=True, kw_only=True)
class _PetitionFacts:
    data: bytes
    origin: str
    vkey: str
    mode: str
    witness_policy: bytes | None


def _read_petition(directory: Path) -> _PetitionFacts:
    """Return what the verifier reads of petition.json (PETITION)."""
    data = _read_small(directory, PETITION_FILE)
    try:
        petition = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
        if not isinstance(petition, dict):
            raise TypeError("not a JSON object")
        origin, vkey = petition_log_facts(petition)
        mode = petition_verification_mode(petition)
        witness_policy = petition_witness_policy(petition)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise BundleError(
            BundleCheck.PETITION,
            f"petition.json is not a petition with origin, log vkey and verification mode: {err}",
        ) from None
    return _PetitionFacts(
        data=data, origin=origin, vkey=vkey, mode=mode, witness_policy=witness_policy
    )


def _check_frozen_policy(directory: Path, files: Collection[str], frozen: bytes | None) -> None:
    """The bundle's policy file must be the one petition.json froze, if it froze one."""
    if frozen is None:
        return
    if POLICY_FILE not in files:
        raise BundleError(
            BundleCheck.POLICY,
            f"petition.json freezes a witness policy, but the bundle has no {POLICY_FILE} file",
        )
    if _read_small(directory, POLICY_FILE) != frozen:
        raise BundleError(
            BundleCheck.POLICY,
            f"the bundle's {POLICY_FILE} file is not the witness policy petition.json freezes",
        )


def _read_vkey(directory: Path) -> tuple[str, NoteVerifier]:
    """Return the vkey file's key string and parsed verifier (VKEY)."""
    data = _read_small(directory, VKEY_FILE)
    try:
        text = data.decode("utf-8")
        if not text.endswith("\n") or "\n" in text[:-1]:
            raise ValueError("the file must be one line ending in a newline")
        return text[:-1], parse_vkey(text[:-1])
    except (UnicodeDecodeError, ValueError, VerificationError) as err:
        raise BundleError(BundleCheck.VKEY, f"vkey is not a verifier key: {err}") from None


def _verify_checkpoint_file(
    directory: Path, name: str, vkey: str, check: BundleCheck
) -> Checkpoint:
    """Verify one signed checkpoint file of the bundle."""
    note = _read_small(directory, name)
    try:
        return verify_checkpoint(note, vkey)
    except VerificationError as err:
        raise BundleError(check, f"{name}: {err}") from None


def _first_bad_leaf(chunk: bytes, start: int) -> tuple[int, str]:
    """Find the first leaf of a chunk with a wrong prefix or unknown kind (slow path)."""
    for offset in range(0, len(chunk), LEAF_SIZE):
        index = start + offset // LEAF_SIZE
        if not chunk.startswith(LEAF_PREFIX, offset):
            return index, "does not start with samleng-leaf/v1"
        kind = chunk[offset + KIND_OFFSET]
        if kind not in _KNOWN_KINDS:
            return index, f"has kind 0x{kind:02x}, which this v1 verifier does not accept"
    raise AssertionError("no bad leaf in chunk")  # only called after a failed fast check


def _check_chunk_format(chunk: bytes, start: int, count: int) -> None:
    """Check prefix and kind of every leaf in a chunk (LEAF_FORMAT), mostly in C."""
    # Striding over the chunk compares one prefix byte of every leaf per slice, instead of a
    # Python-level comparison per leaf.
    prefix_ok = all(
        chunk[j::LEAF_SIZE] == LEAF_PREFIX[j : j + 1] * count for j in range(len(LEAF_PREFIX))
    )
    if not prefix_ok or chunk[KIND_OFFSET::LEAF_SIZE].translate(None, _KNOWN_KINDS):
        index, reason = _first_bad_leaf(chunk, start)
        raise BundleError(BundleCheck.LEAF_FORMAT, f"leaf {index} {reason}")


def _check_chunk_kinds(kinds: bytes, start: int, verification_mode: str) -> None:
    """Check no leaf claims an email confirmation the petition did not ask for."""
    found = kinds.find(LeafKind.VERIFIED_SIGNATURE) if verification_mode == "none" else -1
    if found >= 0:
        raise BundleError(
            BundleCheck.VERIFICATION_MODE,
            f"leaf {start + found} has kind 0x02 (email-confirmed signature), but "
            'petition.json\'s verification_mode is "none": no signature was confirmed',
        )


@dataclass(frozen=True, kw_only=True)
class _Scanned:
    root: bytes
    count: int  # signature leaves, online and on paper
    paper: int  # of them, on paper (kind 0x05)
    photos: int  # of them, photo pledges (kind 0x04)
    roots: dict[int, bytes]
    endorsements: list[tuple[int, bytes, bytes]]  # (index, c, d) of each kind 0x06 leaf
    withdrawals: list[tuple[int, bytes, bytes]]  # (index, c, d) of each kind 0x03 leaf


def _scan_leaves(
    directory: Path,
    size: int,
    petition_hash: bytes,
    verification_mode: str,
    history: Iterable[int],
    on_progress: Callable[[int, int], None] | None,
) -> _Scanned:
    """Check every leaf; return the root, the count, the root at each ``history`` size, and
    the endorsement leaves.

    Sizes in ``history`` above ``size`` are left out of the roots.
    """
    wanted = set(history)
    tree = CompactTree()
    roots: dict[int, bytes] = {}
    pending = iter(sorted(s for s in wanted if 0 < s <= size))
    next_size = next(pending, None)
    # Distinct commitments: see _Distinct.
    distinct = _Distinct(size)
    count = 0
    index = 0
    endorsements: list[tuple[int, bytes, bytes]] = []
    withdrawals: list[tuple[int, bytes, bytes]] = []
    paper = photos = 0
    sha256 = hashlib.sha256
    with (directory / LEAVES_FILE).open("rb") as f:
        while chunk := f.read(CHUNK_LEAVES * LEAF_SIZE):
            n = len(chunk) // LEAF_SIZE
            if len(chunk) % LEAF_SIZE or index + n > size:
                raise BundleError(BundleCheck.LEAVES_LENGTH, "leaves.bin changed while reading")
            _check_chunk_format(chunk, index, n)
            kinds = chunk[KIND_OFFSET::LEAF_SIZE]
            if index == 0:
                if kinds[0] != LeafKind.HEADER:
                    raise BundleError(BundleCheck.HEADER, "leaf 0 is not the header leaf")
                if chunk[C_OFFSET:D_OFFSET] != petition_hash:
                    raise BundleError(BundleCheck.HEADER, "leaf 0 is not SHA-256(petition.json)")
                if chunk[D_OFFSET:LEAF_SIZE] != ZERO_HASH:
                    raise BundleError(BundleCheck.HEADER, "leaf 0 has a non-zero d")
            later_header = kinds.find(LeafKind.HEADER, 1 if index == 0 else 0)
            if later_header >= 0:
                raise BundleError(
                    BundleCheck.HEADER, f"leaf {index + later_header} is a second header leaf"
                )
            _check_chunk_kinds(kinds, index, verification_mode)
            paper += kinds.count(LeafKind.PAPER)
            photos += kinds.count(LeafKind.PHOTO)
            count += kinds.count(LeafKind.SIGNATURE) + kinds.count(LeafKind.VERIFIED_SIGNATURE)
            endorsements += _leaves_of_kind(chunk, kinds, index, LeafKind.ENDORSEMENT)
            withdrawals += _leaves_of_kind(chunk, kinds, index, LeafKind.WITHDRAWAL)
            distinct.add(_c_prefixes(n).unpack(chunk))
            hashes = [
                sha256(b"\x00" + chunk[o : o + LEAF_SIZE]).digest()
                for o in range(0, len(chunk), LEAF_SIZE)
            ]
            used = 0
            while next_size is not None and next_size <= index + n:
                tree.extend(hashes[used : next_size - index])
                used = next_size - index
                roots[next_size] = tree.root()
                next_size = next(pending, None)
            tree.extend(hashes[used:])
            index += n
            if on_progress is not None:
                on_progress(index, size)
    if index != size:
        raise BundleError(BundleCheck.LEAVES_LENGTH, "leaves.bin changed while reading")
    if distinct.may_repeat:
        repeated = _first_repeated_commitment(directory, distinct.suspect_keys)
        if repeated is not None:
            raise BundleError(
                BundleCheck.DISTINCT, f"leaf {repeated} repeats the commitment c of an earlier leaf"
            )
    if 0 in wanted:
        roots[0] = EMPTY_ROOT
    return _Scanned(
        root=tree.root(),
        count=count + paper + photos,
        paper=paper,
        photos=photos,
        roots=roots,
        endorsements=endorsements,
        withdrawals=withdrawals,
    )


def _leaves_of_kind(
    chunk: bytes, kinds: bytes, start: int, kind: LeafKind
) -> list[tuple[int, bytes, bytes]]:
    """``(index, c, d)`` of each leaf of ``kind`` in a chunk: a few per petition, found one
    by one."""
    found, at = [], kinds.find(kind)
    while at >= 0:
        o = at * LEAF_SIZE
        c, d = chunk[o + C_OFFSET : o + D_OFFSET], chunk[o + D_OFFSET : o + LEAF_SIZE]
        found.append((start + at, c, d))
        at = kinds.find(kind, at + 1)
    return found


def _check_withdrawals(
    directory: Path, withdrawals: list[tuple[int, bytes, bytes]]
) -> collections.Counter[int]:
    """Each withdrawal names, by its d, a signature leaf earlier in the log, and its c is
    H(label || d); no signature is withdrawn twice (WITHDRAWALS). A second pass over
    leaves.bin, made only when the log has withdrawals. Returns how many of the withdrawn
    signatures were of each kind."""
    wanted: dict[bytes, int] = {}
    for index, c, d in withdrawals:
        if c != withdrawal_commitment(d):
            raise BundleError(
                BundleCheck.WITHDRAWALS, f"leaf {index}: its c is not H(label || d) (§5)"
            )
        if d in wanted:
            raise BundleError(
                BundleCheck.WITHDRAWALS, f"leaf {index} withdraws a signature withdrawn already"
            )
        wanted[d] = index
    found: dict[bytes, int] = {}
    kinds: dict[bytes, int] = {}
    index = 0
    with (directory / LEAVES_FILE).open("rb") as f:
        while chunk := f.read(CHUNK_LEAVES * LEAF_SIZE):
            for o in range(0, len(chunk), LEAF_SIZE):
                c = chunk[o + C_OFFSET : o + D_OFFSET]
                if c in wanted and is_signature(chunk[o + KIND_OFFSET]):
                    found[c] = index + o // LEAF_SIZE
                    kinds[c] = chunk[o + KIND_OFFSET]
            index += len(chunk) // LEAF_SIZE
    for d, at in wanted.items():
        if found.get(d, at) >= at:
            raise BundleError(
                BundleCheck.WITHDRAWALS, f"leaf {at} withdraws no signature earlier in the log"
            )
    return collections.Counter(kinds.values())


@functools.lru_cache(maxsize=4)
def _c_prefixes(leaves: int) -> struct.Struct:
    """A struct that unpacks the first 8 bytes of c of each of ``leaves`` leaves as an int."""
    return struct.Struct("<" + f"{C_OFFSET}xQ{LEAF_SIZE - C_OFFSET - 8}x" * leaves)


# Up to this many leaves, commitments are checked for repeats in a set of their 8-byte
# prefixes (C speed; about 70 bytes an entry). Above it, in a bitmap of 2^30 bits (128 MiB,
# whatever the size), at the cost of a Python step per leaf: a set for 10 million leaves
# would take 700 MB (bench/README.md, the 10-million-leaf verify).
SET_LIMIT = 2_000_000
_KEY_BITS = 30
# At most this many whole commitments are held at once when suspects are compared.
_COMPARED_AT_ONCE = 2_000_000


class _Distinct:
    """Whether a log's commitments may repeat, found in one pass in bounded memory.

    A repeat is always caught: two equal commitments have equal prefixes and keys. A prefix
    or key may also repeat by chance (for a million random commitments, prefixes about 3
    times in 10^8; keys of 30 bits, about 50,000 times in 10 million), or in a bundle made to:
    then _first_repeated_commitment compares the whole commitments of the suspects only.
    """

    def __init__(self, size: int) -> None:
        self._small = size <= SET_LIMIT
        self._prefixes: set[int] = set()
        self._bitmap = bytearray(0 if self._small else 1 << (_KEY_BITS - 3))
        self._keys: set[int] = set()  # keys seen twice (large logs)
        self._repeated = False  # a prefix seen twice (small logs)

    def add(self, prefixes: tuple[int, ...]) -> None:
        """Take the 8-byte prefixes of one chunk's commitments."""
        if self._small:
            seen = len(self._prefixes)
            self._prefixes.update(prefixes)
            self._repeated = self._repeated or len(self._prefixes) != seen + len(prefixes)
            return
        bitmap, keys, shift = self._bitmap, self._keys, 64 - _KEY_BITS
        for prefix in prefixes:
            key = prefix >> shift
            byte, bit = key >> 3, 1 << (key & 7)
            if bitmap[byte] & bit:
                keys.add(key)
            else:
                bitmap[byte] |= bit

    @property
    def may_repeat(self) -> bool:
        """Whether some commitments must be compared whole."""
        return self._repeated or bool(self._keys)

    @property
    def suspect_keys(self) -> set[int] | None:
        """The keys whose commitments are compared whole; None: every commitment."""
        return None if self._small else self._keys


def _first_repeated_commitment(directory: Path, keys: set[int] | None = None) -> int | None:
    """Return the index of the first leaf whose whole c repeats an earlier one (slow path),
    comparing the leaves whose key (_Distinct) is in ``keys`` (all leaves if None).

    At most _COMPARED_AT_ONCE whole commitments are held at once: when there are more (in a
    bundle made so, by commitments that share their prefixes), the comparison starts again
    in passes split by a hash keyed afresh in each process (Python's SipHash of bytes), which
    no bundle can be made to defeat.
    """
    leaves = directory / LEAVES_FILE
    passes = 1
    while True:
        first: int | None = None
        for part in range(passes):
            seen: set[bytes] = set()
            for index, c in _suspects(leaves, keys):
                if passes > 1 and hash(c) % passes != part:
                    continue
                if c in seen:
                    first = index if first is None else min(first, index)
                    break
                seen.add(c)
                if len(seen) > _COMPARED_AT_ONCE:
                    break
            else:
                continue
            if len(seen) > _COMPARED_AT_ONCE:
                break  # too many to hold: again, in more passes
        else:
            return first
        passes *= 4


def _suspects(leaves: Path, keys: set[int] | None) -> Iterator[tuple[int, bytes]]:
    """``(index, c)`` of each leaf whose key is in ``keys`` (every leaf if None), in order."""
    index, shift = 0, 64 - _KEY_BITS
    with leaves.open("rb") as f:
        while chunk := f.read(CHUNK_LEAVES * LEAF_SIZE):
            n = len(chunk) // LEAF_SIZE
            if keys is None:
                for at in range(n):
                    offset = at * LEAF_SIZE + C_OFFSET
                    yield index + at, chunk[offset : offset + 32]
            else:
                for at, prefix in enumerate(_c_prefixes(n).unpack(chunk)):
                    if prefix >> shift in keys:
                        offset = at * LEAF_SIZE + C_OFFSET
                        yield index + at, chunk[offset : offset + 32]
            index += n


def _verify_known_checkpoints(
    known_checkpoints: Sequence[tuple[str, bytes]], vkey: str
) -> list[tuple[str, Checkpoint]]:
    """Verify each checkpoint kept elsewhere under the bundle's key (KNOWN_SIGNATURES)."""
    known: list[tuple[str, Checkpoint]] = []
    for name, note in known_checkpoints:
        try:
            known.append((name, verify_checkpoint(note, vkey)))
        except NoteSignatureError as err:
            raise BundleError(
                BundleCheck.KNOWN_SIGNATURES,
                f"{name}: not signed by this bundle's log key ({err}): a checkpoint of another "
                "petition, or this petition's log was replaced by another one",
            ) from None
        except VerificationError as err:
            raise BundleError(
                BundleCheck.KNOWN_SIGNATURES, f"{name}: not a signed checkpoint: {err}"
            ) from None
    return known


def _check_known_consistent(
    known: list[tuple[str, Checkpoint]], size: int, roots: Mapping[int, bytes]
) -> None:
    """Check each kept checkpoint is a prefix of the final tree (KNOWN_CONSISTENT)."""
    for name, checkpoint in known:
        if checkpoint.size > size:
            raise BundleError(
                BundleCheck.KNOWN_CONSISTENT,
                f"{name}: a checkpoint of size {checkpoint.size}, but the bundle ends at size "
                f"{size}: it leaves out signatures the log had signed (an older export, or the "
                "log was rewritten after that checkpoint)",
            )
        if roots[checkpoint.size] != checkpoint.root:
            raise BundleError(
                BundleCheck.KNOWN_CONSISTENT,
                f"{name}: this checkpoint of size {checkpoint.size} is not part of this "
                f"bundle's log: the bundle's first {checkpoint.size} leaves have another root, "
                "so the log was rewritten or forked after it was published",
            )


def _policy_name(source: str) -> str:
    """Name where the policy in effect came from, for messages."""
    return "the policy given" if source == "given" else f"the bundle's {POLICY_FILE} file"


def _policy_summary(policy: Policy, source: str) -> str:
    """Say in one line which policy is in effect."""
    witnesses = ", ".join(w.name for w in policy.witnesses) or "none"
    return f"{_policy_name(source)}; witnesses {witnesses}; quorum: {policy.describe()}"


@dataclass(frozen=True, kw_only=True)
class _Verified:
    """What the full verification found, with what the receipt check needs beyond the report."""

    report: BundleReport
    vkey: str
    roots: dict[int, bytes]


def verify_bundle(
    directory: Path,
    *,
    known_checkpoints: Sequence[tuple[str, bytes]] = (),
    policy: Policy | None = None,
    on_check: Callable[[str], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> BundleReport:
    """Verify an export bundle completely and return what it proves.

    ``known_checkpoints`` are ``(name, signed note)`` pairs kept outside the bundle (by signers,
    journalists, monitors); each must verify under the bundle's key and be a prefix of its tree.
    ``policy`` is the auditor's witness policy; it wins over the bundle's ``policy`` file, and
    with either the final checkpoint must meet the quorum. ``on_check`` receives one line per
    passed check; ``on_progress`` receives ``(leaves read, total)`` while leaves.bin is read.
    Raises BundleError naming the check.
    """
    return _verify(
        directory,
        known_checkpoints=known_checkpoints,
        policy=policy,
        on_check=on_check,
        on_progress=on_progress,
    ).report


def _bundle_policy(directory: Path, given: Policy | None) -> tuple[Policy, str]:
    """Return the policy in effect and where it came from: the auditor's, else the bundle's."""
    if given is not None:
        return given, "given"
    try:
        return parse_policy(_read_small(directory, POLICY_FILE)), "bundle"
    except VerificationError as err:
        raise BundleError(BundleCheck.POLICY, f"{POLICY_FILE}: {err}") from None


def _witnessed(
    directory: Path, name: str, vkey: str, policy: Policy, check: BundleCheck
) -> Witnessed:
    """Verify the cosignatures of one checkpoint file under the policy."""
    try:
        return check_witnessed(_read_small(directory, name), vkey, policy)
    except CosignatureError as err:
        raise BundleError(
            check, f"{name}: {err}: a witness of the policy did not make this cosignature"
        ) from None
    except VerificationError as err:
        raise BundleError(check, f"{name}: {err}") from None


def _check_witnesses(
    directory: Path,
    policy: Policy,
    source: str,
    vkey: str,
    latest: Checkpoint,
    published: list[str],
    passed: Callable[[BundleCheck, str], None],
) -> WitnessCoverage:
    """Require the quorum on the final checkpoint (WITNESS_QUORUM); survey the history."""
    final = _witnessed(directory, CHECKPOINT_FILE, vkey, policy, BundleCheck.WITNESS_QUORUM)
    have = ", ".join(sorted(final.witnesses)) or "no witness of the policy"
    if not final.quorum_met:
        raise BundleError(
            BundleCheck.WITNESS_QUORUM,
            f"the final checkpoint (size {latest.size}) is cosigned by {have}, but the "
            f"policy's quorum needs {policy.describe()}: no quorum of witnesses vouches that "
            "this is the log they saw",
        )
    passed(
        BundleCheck.WITNESS_QUORUM,
        f"the final checkpoint (size {latest.size}) is cosigned by {have}; the quorum needs "
        f"{policy.describe()}",
    )
    met = 0
    counts = dict.fromkeys((w.name for w in policy.witnesses), 0)
    for name in published:
        witnessed = _witnessed(directory, name, vkey, policy, BundleCheck.HISTORY_COSIGNATURES)
        met += witnessed.quorum_met
        for witness in witnessed.witnesses:
            counts[witness] += 1
    each = ", ".join(f"{name} {count}" for name, count in counts.items()) or "no witnesses"
    passed(
        BundleCheck.HISTORY_COSIGNATURES,
        f"{met} of {len(published)} published checkpoints meet the quorum; cosigned by {each}",
    )
    return WitnessCoverage(
        policy_source=source,
        quorum=policy.describe(),
        final=final.witnesses,
        history_met=met,
        history_total=len(published),
        cosigned=tuple(counts.items()),
    )


def _verify(
    directory: Path,
    *,
    known_checkpoints: Sequence[tuple[str, bytes]] = (),
    policy: Policy | None = None,
    prefix_sizes: Iterable[int] = (),
    on_check: Callable[[str], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> _Verified:
    """Run :func:`verify_bundle`; also return the root of each of ``prefix_sizes`` leaves."""

    def passed(check: BundleCheck, detail: str) -> None:
        if on_check is not None:
            on_check(f"ok {check}: {detail}")

    files = _check_files(directory)
    passed(BundleCheck.FILES, f"{', '.join(REQUIRED_FILES)} and {CHECKPOINTS_DIR}/ present")
    listed = _check_sums(directory, files)
    passed(BundleCheck.SUMS, f"all {listed} other files listed and matching")

    vkey, verifier = _read_vkey(directory)
    passed(BundleCheck.VKEY, f"Ed25519 key {verifier.name}+{verifier.key_id.hex()}")
    facts = _read_petition(directory)
    petition_json, origin, petition_vkey, mode = facts.data, facts.origin, facts.vkey, facts.mode
    passed(BundleCheck.PETITION, f"origin {origin}")
    if petition_vkey != vkey:
        raise BundleError(
            BundleCheck.VKEY_MATCHES_PETITION, "the vkey file differs from petition.json's log vkey"
        )
    passed(BundleCheck.VKEY_MATCHES_PETITION, "same key")
    if verifier.name != origin:
        raise BundleError(
            BundleCheck.KEY_NAME, f"key name {verifier.name!r} is not the origin {origin!r}"
        )
    passed(BundleCheck.KEY_NAME, origin)
    _check_frozen_policy(directory, files, facts.witness_policy)
    effective: tuple[Policy, str] | None = None
    if policy is not None or POLICY_FILE in files:
        effective = _bundle_policy(directory, policy)
        if not effective[0].lists_log(vkey):
            raise BundleError(
                BundleCheck.POLICY,
                f"{_policy_name(effective[1])} lists logs, but not this bundle's log key: it "
                "is the policy of another log",
            )
        passed(BundleCheck.POLICY, _policy_summary(*effective))

    latest = _verify_checkpoint_file(directory, CHECKPOINT_FILE, vkey, BundleCheck.CHECKPOINT)
    passed(BundleCheck.CHECKPOINT, f"size {latest.size}, signed by {origin}")
    published = [f for f in files if f.startswith(CHECKPOINTS_DIR + "/")]
    latest_name = checkpoint_path(latest.size)
    if latest_name not in published or _read_small(directory, latest_name) != _read_small(
        directory, CHECKPOINT_FILE
    ):
        raise BundleError(
            BundleCheck.LATEST_PUBLISHED, f"checkpoint is not identical to {latest_name}"
        )
    passed(BundleCheck.LATEST_PUBLISHED, latest_name)
    history: dict[int, Checkpoint] = {}
    for name in published:
        size_name = name[len(CHECKPOINTS_DIR) + 1 :]
        if not _SIZE_NAME.fullmatch(size_name):
            raise BundleError(BundleCheck.HISTORY_SIGNATURES, f"{name} is not named by a size")
        checkpoint = _verify_checkpoint_file(directory, name, vkey, BundleCheck.HISTORY_SIGNATURES)
        if checkpoint.size != int(size_name):
            raise BundleError(
                BundleCheck.HISTORY_SIGNATURES,
                f"{name} holds a checkpoint of size {checkpoint.size}",
            )
        if checkpoint.size > latest.size:
            raise BundleError(
                BundleCheck.HISTORY_SIGNATURES, f"{name} is larger than the latest checkpoint"
            )
        history[checkpoint.size] = checkpoint
    passed(BundleCheck.HISTORY_SIGNATURES, f"{len(history)} checkpoints signed by {origin}")
    coverage = None
    if effective is not None:
        by_size = [checkpoint_path(size) for size in sorted(history)]
        coverage = _check_witnesses(directory, *effective, vkey, latest, by_size, passed)
    known = _verify_known_checkpoints(known_checkpoints, vkey)
    if known:
        passed(BundleCheck.KNOWN_SIGNATURES, f"{len(known)} kept checkpoints signed by {origin}")

    leaves_bytes = (directory / LEAVES_FILE).stat().st_size
    if leaves_bytes % LEAF_SIZE:
        raise BundleError(
            BundleCheck.LEAVES_LENGTH, f"leaves.bin is {leaves_bytes} bytes, not a multiple of 81"
        )
    passed(BundleCheck.LEAVES_LENGTH, f"{leaves_bytes // LEAF_SIZE} leaves of {LEAF_SIZE} bytes")
    if leaves_bytes // LEAF_SIZE != latest.size:
        raise BundleError(
            BundleCheck.TREE_SIZE,
            f"leaves.bin has {leaves_bytes // LEAF_SIZE} leaves, the checkpoint says {latest.size}",
        )
    if latest.size == 0:
        raise BundleError(BundleCheck.TREE_SIZE, "the log is empty: it has no header leaf")
    passed(BundleCheck.TREE_SIZE, f"{latest.size} leaves, as the checkpoint says")

    scanned = _scan_leaves(
        directory,
        latest.size,
        hashlib.sha256(petition_json).digest(),
        mode,
        [*history, *(checkpoint.size for _, checkpoint in known), *prefix_sizes],
        on_progress,
    )
    root, count, roots = scanned.root, scanned.count, scanned.roots
    passed(BundleCheck.LEAF_FORMAT, "every leaf is samleng-leaf/v1 of a known kind")
    passed(BundleCheck.HEADER, "leaf 0 is the header of petition.json, and the only one")
    passed(
        BundleCheck.VERIFICATION_MODE,
        "verification_mode none, no leaf of kind 0x02"
        if mode == "none"
        else "verification_mode email, leaves of kind 0x02 allowed",
    )
    passed(BundleCheck.DISTINCT, f"{latest.size} distinct commitments")
    if root != latest.root:
        raise BundleError(BundleCheck.ROOT, "the leaves do not hash to the checkpoint's root")
    passed(BundleCheck.ROOT, "the leaves hash to the checkpoint's root")
    for size in sorted(history):
        if roots[size] != history[size].root:
            raise BundleError(
                BundleCheck.HISTORY_CONSISTENT,
                f"{checkpoint_path(size)} is not a prefix of the final tree: the first {size} "
                "leaves have another root",
            )
    passed(BundleCheck.HISTORY_CONSISTENT, f"all {len(history)} are prefixes of the final tree")
    _check_known_consistent(known, latest.size, roots)
    if known:
        passed(BundleCheck.KNOWN_CONSISTENT, f"all {len(known)} are prefixes of the final tree")
    withdrawn: collections.Counter[int] = collections.Counter()
    if scanned.withdrawals:
        withdrawn = _check_withdrawals(directory, scanned.withdrawals)
        passed(
            BundleCheck.WITHDRAWALS,
            f"{len(scanned.withdrawals)} withdrawals, each of an earlier signature, once",
        )
    endorsements = _check_endorsements(directory, files, scanned.endorsements, origin)
    if endorsements is not None:
        passed(
            BundleCheck.ENDORSEMENTS,
            f"{len(scanned.endorsements)} records match their leaves: "
            f"{len(endorsements.current)} endorsing, {len(endorsements.withdrawn)} withdrawn",
        )
    report = BundleReport(
        origin=origin,
        size=latest.size,
        count=count - len(scanned.withdrawals),
        withdrawals=len(scanned.withdrawals),
        paper=scanned.paper - withdrawn[LeafKind.PAPER],
        photos=scanned.photos - withdrawn[LeafKind.PHOTO],
        root=root,
        checkpoints_checked=len(history),
        witnesses=coverage,
        endorsements=endorsements,
        other_leaves=tuple(
            sorted(index for index, _c, _d in [*scanned.endorsements, *scanned.withdrawals])
        ),
    )
    return _Verified(report=report, vkey=vkey, roots=roots)


def _check_endorsements(
    directory: Path, files: list[str], leaves: list[tuple[int, bytes, bytes]], origin: str
) -> Endorsements | None:
    """Check endorsements.json against the kind 0x06 leaves (ENDORSEMENTS); None when the log
    has none and the bundle no file, as every bundle from before endorsements."""
    if ENDORSEMENTS_FILE not in files:
        if leaves:
            raise BundleError(
                BundleCheck.ENDORSEMENTS,
                f"the log has {len(leaves)} endorsement leaves, but the bundle has no "
                f"{ENDORSEMENTS_FILE}",
            )
        return None
    try:
        return check_endorsements(_read_small(directory, ENDORSEMENTS_FILE), leaves, origin)
    except EndorsementError as exc:
        raise BundleError(BundleCheck.ENDORSEMENTS, str(exc)) from None


@dataclass(frozen=True, kw_only=True)
class ReceiptInBundle:
    """A receipt proof checked against a verified bundle: its leaf is in the bundle's log.

    ``published`` says whether the receipt's checkpoint is byte for byte one of the bundle's
    ``checkpoints/``; otherwise its root was found equal to the root of the bundle's leaves.
    """

    receipt: ReceiptCheck
    bundle: BundleReport
    published: bool


def _claimed_size(note: bytes) -> int | None:
    """Return the size a checkpoint note states, unverified (None if it states none).

    Used only to choose which prefix root to compute while leaves.bin is read once; every
    decision is taken after the note's signature is verified.
    """
    try:
        return parse_checkpoint_body(note[: note.rfind(b"\n\n") + 1]).size
    except VerificationError:
        return None


def _read_leaf(directory: Path, index: int) -> bytes:
    """Return leaf ``index`` of a verified bundle's leaves.bin."""
    with (directory / LEAVES_FILE).open("rb") as f:
        f.seek(index * LEAF_SIZE)
        return f.read(LEAF_SIZE)


def verify_receipt_in_bundle(
    proof: bytes,
    directory: Path,
    *,
    vkey: str | None = None,
    policy: Policy | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ReceiptInBundle:
    """Verify a signer's receipt proof, and that the bundle's log holds it.

    The bundle is verified first. The receipt's checkpoint must be signed by the bundle's key
    and be a prefix of the bundle's tree: its root must equal the root of the bundle's first
    ``size`` leaves (computed from leaves.bin, which is what a consistency proof would show),
    and the receipt's leaf must be the bundle's leaf at its index. ``vkey``, if given, must be
    the bundle's key. ``policy`` is passed to the bundle's verification (the final checkpoint
    must meet its quorum). Raises BundleError, the receipt's own VerificationError, or
    SplitViewError when the receipt and the bundle cannot both be true.
    """
    note = parse_proof(proof).checkpoint
    claimed = _claimed_size(note)
    verified = _verify(
        directory,
        policy=policy,
        prefix_sizes=[] if claimed is None else [claimed],
        on_progress=on_progress,
    )
    if vkey is not None and vkey != verified.vkey:
        raise SplitViewError(
            "the bundle's log key is not the key given with --vkey: a bundle of another "
            "petition, or this petition's log was replaced by another one"
        )
    try:
        verify_checkpoint(note, verified.vkey)
    except NoteSignatureError:
        raise SplitViewError(
            "this receipt's checkpoint is not signed by this bundle's log key: a receipt of "
            "another petition, or this petition's log was replaced after your receipt"
        ) from None
    check = verify_receipt(proof, verified.vkey)
    final = verified.report.size
    if check.size > final:
        raise SplitViewError(
            f"this receipt's checkpoint of size {check.size} is not part of this bundle's log: "
            f"the bundle ends at size {final}, so it leaves out signatures the log had signed "
            "(if this is the final bundle, the log was rewritten after your receipt)"
        )
    if verified.roots[check.size] != check.root or _read_leaf(directory, check.index) != (
        check.leaf
    ):
        raise SplitViewError(
            f"this receipt's checkpoint of size {check.size} is not part of this bundle's log: "
            "the log was rewritten or forked after your receipt"
        )
    name = checkpoint_path(check.size)
    published = (directory / name).is_file() and _read_small(directory, name) == note
    return ReceiptInBundle(receipt=check, bundle=verified.report, published=published)
