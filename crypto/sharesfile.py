"""Shares files: one organisation's opened shares, carried to where the coalition combines them.

Normative: docs/formats.md §13.3. ASCII text, every line ending in LF::

    samleng-shares/v1
    origin: <the petition's origin>
    threshold: <k>
    keys: <n>
    share: <this organisation's share index i, 1 .. n>
    public-key: <base64 of its 32-byte X25519 public key>
    records: <number of lines below>
    <leaf index> <hex c> <hex 16-byte share>          one line per record, leaf indices rising

Nothing in the file is signed: each share is checked at combine time against the commitment
its record holds (docs/formats.md §10.2), and the record against its leaf's ``d`` when a bundle
is given, so a changed or foreign share is refused by name.
"""

import base64
import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from samleng.crypto.canonical import encode_origin
from samleng.crypto.custody import (
    OpenedPayload,
    Share,
    combine_photo_shares,
    open_share,
    too_few_shares,
)
from samleng.crypto.detailsfile import DetailsEntry, DetailsFileHeader
from samleng.crypto.errors import (
    DetailsDecryptionError,
    DetailsFileError,
    DuplicateShareError,
    ShareMismatchError,
    SharesFileError,
    TooFewSharesError,
    WrongPetitionError,
)

SHARES_FILE_VERSION = "samleng-shares/v1"
_HEADER_FIELDS = ("origin", "threshold", "keys", "share", "public-key", "records")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_LINE = re.compile(r"(0|[1-9][0-9]{0,18}) ([0-9a-f]{64}) ([0-9a-f]{32})")


@dataclass(frozen=True, kw_only=True)
class LeafShare:
    """One line of a shares file: the share of the record of one leaf."""

    leaf: int
    commitment: bytes
    value: bytes


@dataclass(frozen=True, kw_only=True)
class SharesFile:
    """The contents of a shares file."""

    origin: str
    threshold: int
    keys: int
    index: int
    public_key: bytes
    shares: tuple[LeafShare, ...]

    def encode(self) -> bytes:
        """Return the file's bytes."""
        head = [
            SHARES_FILE_VERSION,
            f"origin: {self.origin}",
            f"threshold: {self.threshold}",
            f"keys: {self.keys}",
            f"share: {self.index}",
            f"public-key: {base64.b64encode(self.public_key).decode('ascii')}",
            f"records: {len(self.shares)}",
        ]
        lines = head + [f"{s.leaf} {s.commitment.hex()} {s.value.hex()}" for s in self.shares]
        return "".join(line + "\n" for line in lines).encode("utf-8")


def _decimal(text: str, name: str) -> int:
    if not _DECIMAL.fullmatch(text) or int(text) > (1 << 63) - 1:
        raise SharesFileError(f"'{name}' is not a canonical decimal")
    return int(text)


def parse_shares_file(data: bytes) -> SharesFile:
    """Parse a shares file strictly; SharesFileError (saying what is wrong) otherwise."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SharesFileError("not a shares file (not UTF-8 text)") from None
    if "\r" in text:
        raise SharesFileError("the file has CR characters (Windows line endings); use LF only")
    lines = text.split("\n")
    if lines[0] != SHARES_FILE_VERSION:
        raise SharesFileError(f"the file does not start with '{SHARES_FILE_VERSION}'")
    if lines[-1] != "" or len(lines) < len(_HEADER_FIELDS) + 2:
        raise SharesFileError("the file ends early, or its last line has no line feed")
    values: dict[str, str] = {}
    for name, line in zip(_HEADER_FIELDS, lines[1:], strict=False):
        prefix = f"{name}: "
        if not line.startswith(prefix):
            raise SharesFileError(f"expected the line '{name}: ...'")
        values[name] = line[len(prefix) :]
    try:
        encode_origin(values["origin"])
    except ValueError:
        raise SharesFileError("'origin' is not a valid origin") from None
    try:
        public_key = base64.b64decode(values["public-key"], validate=True)
    except ValueError:  # binascii.Error, or a character that is not ASCII
        raise SharesFileError("'public-key' is not base64") from None
    k, n, index = (_decimal(values[name], name) for name in ("threshold", "keys", "share"))
    count = _decimal(values["records"], "records")
    body = lines[1 + len(_HEADER_FIELDS) : -1]
    if len(body) != count:
        raise SharesFileError(f"the file says {count} records but has {len(body)} lines of them")
    shares = []
    previous = 0
    for number, line in enumerate(body, start=1):
        match = _LINE.fullmatch(line)
        if not match:
            raise SharesFileError(f"record line {number} is not '<leaf> <hex c> <hex share>'")
        leaf = int(match.group(1))
        if leaf <= previous:
            raise SharesFileError(f"record line {number}: leaf {leaf} does not follow {previous}")
        previous = leaf
        shares.append(
            LeafShare(
                leaf=leaf,
                commitment=bytes.fromhex(match.group(2)),
                value=bytes.fromhex(match.group(3)),
            )
        )
    parsed = SharesFile(
        origin=values["origin"],
        threshold=k,
        keys=n,
        index=index,
        public_key=public_key,
        shares=tuple(shares),
    )
    if not 1 <= k <= n or not 1 <= index <= n or len(public_key) != 32:
        raise SharesFileError("threshold, keys, share or public-key are out of range")
    if parsed.encode() != data:
        raise SharesFileError("the file is not in canonical form")
    return parsed


# --- Opening one organisation's shares ----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OpenProblem:
    """A record whose share could not be opened, by leaf index (never with any details)."""

    leaf: int
    problem: str


def key_index(header: DetailsFileHeader, private_key: bytes) -> int:
    """Return the share index of an organisation's key; WrongPetitionError if it is not listed."""
    public_key = X25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes_raw()
    index = header.custody.index_of(public_key)
    if index is None:
        raise WrongPetitionError(
            f"this key is not one of the {header.custody.keys} keys of {header.origin}"
        )
    return index


def open_shares(
    header: DetailsFileHeader,
    entries: Iterable[tuple[DetailsEntry, str | None]],
    *,
    private_key: bytes,
    only: Collection[int] | None = None,
) -> tuple[SharesFile, list[OpenProblem]]:
    """Open this organisation's share of every record (or of the leaves in ``only``).

    ``entries`` are the details file's entries with the problem found matching them to the
    bundle (None without a bundle). Returns the shares file and the problems (records that did
    not match their leaf or whose share did not open); a caller writes the file only if there
    are none. WrongPetitionError when the key is not one of the petition's.
    """
    index = key_index(header, private_key)
    public_key = header.custody.public_keys[index - 1]
    shares: list[LeafShare] = []
    problems: list[OpenProblem] = []
    seen: set[int] = set()
    for entry, problem in entries:
        seen.add(entry.index)
        if problem is not None:
            problems.append(OpenProblem(leaf=entry.index, problem=problem))
            continue
        if only is not None and entry.index not in only:
            continue
        try:
            share = open_share(private_key, index, header.origin, entry.commitment, entry.record)
        except (DetailsDecryptionError, ShareMismatchError) as err:
            problems.append(OpenProblem(leaf=entry.index, problem=f"undecryptable: {err}"))
            continue
        shares.append(LeafShare(leaf=entry.index, commitment=entry.commitment, value=share.value))
    for leaf in sorted(set(only or ()) - seen):
        problems.append(OpenProblem(leaf=leaf, problem="missing: the details file has no record"))
    opened = SharesFile(
        origin=header.origin,
        threshold=header.custody.threshold,
        keys=header.custody.keys,
        index=index,
        public_key=public_key,
        shares=tuple(shares),
    )
    return opened, problems


# --- Combining the shares of several organisations ----------------------------------------------


def check_shares_files(header: DetailsFileHeader, files: Sequence[tuple[str, SharesFile]]) -> None:
    """Check shares files against a details file before anything is combined.

    WrongPetitionError for a file of another petition or set of keys; DuplicateShareError
    for two files of one organisation; TooFewSharesError when fewer than k organisations'
    files are given, or a leaf is covered by fewer than k of them (naming how many are missing).
    """
    custody = header.custody
    by_index: dict[int, str] = {}
    for name, shares in files:
        if shares.origin != header.origin:
            raise WrongPetitionError(
                f"{name} holds shares of {shares.origin}, but the details file is of "
                f"{header.origin}"
            )
        if (
            shares.threshold != custody.threshold
            or shares.keys != custody.keys
            or shares.public_key != custody.public_keys[shares.index - 1]
        ):
            raise WrongPetitionError(
                f"{name} was opened for other keys than this details file's (share "
                f"{shares.index}, {shares.threshold} of {shares.keys}): it is of another "
                "petition with the same origin, or was changed"
            )
        if shares.index in by_index:
            raise DuplicateShareError(
                f"{by_index[shares.index]} and {name} both hold share {shares.index}: give each "
                "organisation's shares file once"
            )
        by_index[shares.index] = name
    if len(by_index) < custody.threshold:
        raise too_few_shares(custody.threshold, custody.keys, sorted(by_index))
    leaves: dict[int, list[int]] = {}
    for _name, shares in files:
        for line in shares.shares:
            leaves.setdefault(line.leaf, []).append(shares.index)
    for leaf in sorted(leaves):
        if len(leaves[leaf]) < custody.threshold:
            short = too_few_shares(custody.threshold, custody.keys, sorted(leaves[leaf]))
            raise TooFewSharesError(
                f"leaf {leaf}: {short} (the shares files were opened with different --only lists)",
                needed=short.needed,
                given=short.given,
            )


def combine_files(
    header: DetailsFileHeader,
    files: Sequence[tuple[str, SharesFile]],
    entries: Iterable[tuple[DetailsEntry, str | None]],
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(leaf, details)`` for every leaf the shares files cover, in leaf order, as
    :func:`combine_payloads` (a photo record's details without its photo)."""
    for leaf, opened in combine_payloads(header, files, entries):
        yield leaf, opened.details


def combine_payloads(
    header: DetailsFileHeader,
    files: Sequence[tuple[str, SharesFile]],
    entries: Iterable[tuple[DetailsEntry, str | None]],
) -> Iterator[tuple[int, OpenedPayload]]:
    """Yield ``(leaf, what its record holds)`` for every leaf the shares files cover, in leaf
    order: the details, and for a photo pledge its photo and consent.

    Fails closed, raising on the first problem: those of :func:`check_shares_files`; any
    record that does not match its leaf, covered or not (DetailsFileError); a share for a leaf
    the details file lacks, filed under another commitment, or that its record does not commit
    to (ShareMismatchError, naming the file), a changed record (RecordTamperedError).
    """
    check_shares_files(header, files)
    wanted: dict[int, list[tuple[str, int, LeafShare]]] = {}
    for name, shares in files:
        for line in shares.shares:
            wanted.setdefault(line.leaf, []).append((name, shares.index, line))
    for entry, problem in entries:
        # Every record is checked against its leaf, also those no share covers: a details file
        # that does not match the bundle is not used at all.
        if problem is not None:
            raise DetailsFileError(f"leaf {entry.index}: {problem}")
        given = wanted.pop(entry.index, None)
        if given is None:
            continue
        for name, _index, line in given:
            if line.commitment != entry.commitment:
                raise ShareMismatchError(
                    f"{name}: the share of leaf {entry.index} is for another commitment than "
                    "the details file's record: it was opened from another details file"
                )
        try:
            opened = combine_photo_shares(
                [Share(index=index, value=line.value) for _name, index, line in given],
                header.origin,
                entry.commitment,
                entry.record,
            )
        except ShareMismatchError as err:
            culprit = _culprit(given, err)
            raise ShareMismatchError(f"{culprit}leaf {entry.index}: {err}") from None
        yield entry.index, opened
    if wanted:
        leaf = min(wanted)
        raise ShareMismatchError(
            f"{wanted[leaf][0][0]} holds a share for leaf {leaf}, which the details file has "
            "no record for"
        )


def _culprit(given: Sequence[tuple[str, int, LeafShare]], err: ShareMismatchError) -> str:
    """Name the file whose share the error is about ("share N ..." starts its message)."""
    for name, index, _line in given:
        if str(err).startswith(f"share {index} "):
            return f"{name}: "
    return ""
