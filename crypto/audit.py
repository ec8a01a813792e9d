"""``samleng-audit``: the offline command line for auditors, recipients and signers.

Subcommands:

``verify DIR [--known-checkpoint FILE ...] [--policy FILE]``
    Verify an export bundle. One line per check on stdout, progress on stderr; the last line
    of stdout on success is exactly ``count N``. Exit status 0, or 1 with ``error: ...``.
    Each checkpoint kept elsewhere must be signed by the bundle's key and be a prefix of its log.
    With a witness policy (``--policy``, or else the bundle's ``policy`` file) the final
    checkpoint must carry cosignatures meeting its quorum; the history's coverage is reported.
``receipt FILE --vkey V`` or ``receipt FILE --bundle DIR`` (either with ``--policy FILE``)
    Verify a signer's receipt proof (a tlog-proof file) against the log's verifier key, given
    as the key string or as a file containing it; with ``--bundle``, also verify the bundle and
    that its log still holds the receipt's checkpoint and leaf (a split view fails). With
    ``--policy``, the receipt's checkpoint (with ``--vkey``) or the bundle's final checkpoint
    (with ``--bundle``) must meet the policy's witness quorum.

``keygen --out PREFIX``
    Make the organisers' details key pair: ``PREFIX.pub`` (for ``samleng petition create
    --details-key``) and ``PREFIX.key``, the private key sealed with a passphrase (mode 0600).
``decrypt --key KEYFILE --bundle DIR DETAILS_FILE [--out CSV] [--only FILE]``
    Verify the bundle, check every record of the export-details file against its leaf's
    ``d`` and open it (or only the leaves listed in FILE, e.g. a sample); write a CSV (index,
    name, locality, comment, contact). For single-key petitions, and coalition petitions whose
    threshold is 1. Problems are reported by leaf index on stderr, never with any details;
    exit status 1 if any.
``shares open --key KEYFILE DETAILS_FILE --out FILE [--only FILE] [--bundle DIR]``
    Coalition custody (k of n keys): open this organisation's share of every record of a
    version 2 details file (or of the leaves listed with --only) and write them to a new
    shares file (mode 0600). Asks the passphrase once. Any record that does not open is named
    by leaf index and nothing is written.
``shares combine FILE... --details DETAILS_FILE --out CSV [--bundle DIR]``
    Check the shares files against the details file (and the bundle), recombine each record's
    key from k organisations' shares and write the CSV. Fewer than k shares, a share of another
    petition, or a changed share: a named error, and nothing is written.
``photos extract FILE... --details DETAILS_FILE --out DIR [--bundle DIR]``
    The same with the photo pledges: write each photo as DIR/<leaf index>.jpg and
    DIR/photos.csv (leaf index, the signer's consent, file). DIR appears only once complete.
``sample --bundle DIR --seed "HASH VALUE" -k N [--fake-fraction F]``
    Draw the sample audit's leaf indices from the final checkpoint and the seed (stdout, one
    per line) and say on stderr how likely the sample is to catch that fraction of fakes. The
    seed must start with the SHA-256 of the final checkpoint (docs/formats.md §14).

Every command reads and writes local files only: it is meant for an offline machine.
"""

import argparse
import base64
import collections
import contextlib
import csv
import getpass
import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, BinaryIO

from samleng.crypto.banner import AUDIENCES, BannerSpec, choose, lay_out, read_photos
from samleng.crypto.bundle import (
    CHECKPOINT_FILE,
    LEAVES_FILE,
    MAX_SMALL_FILE_BYTES,
    PETITION_FILE,
    BundleReport,
    verify_bundle,
    verify_receipt_in_bundle,
)
from samleng.crypto.checkpoint import Checkpoint
from samleng.crypto.custody import Consent, Custody, OpenedPayload, custody_from_petition
from samleng.crypto.details import DETAILS_FIELDS
from samleng.crypto.detailsfile import (
    DetailsEntry,
    DetailsFileHeader,
    OpenedRecord,
    matched_entries,
    open_details_entries,
    open_details_file,
    read_details_entries,
    read_details_header,
)
from samleng.crypto.endorsement import Endorsements
from samleng.crypto.errors import (
    CustodyFormatError,
    Error,
    KeyFileError,
    SharesFileError,
    VerificationError,
    WrongPetitionError,
)
from samleng.crypto.faces import blur_faces
from samleng.crypto.keyfile import (
    KEYFILE_ARGON2,
    check_passphrase,
    generate_key_files,
    open_private_key,
    parse_key_file,
)
from samleng.crypto.leaf import LEAF_SIZE, LeafKind, decode_leaf
from samleng.crypto.policy import Policy, parse_policy, require_quorum
from samleng.crypto.sample import (
    check_seed,
    detection_probability,
    fabricated_count,
    sample_indices,
)
from samleng.crypto.sharesfile import (
    SharesFile,
    check_shares_files,
    combine_payloads,
    open_shares,
    parse_shares_file,
)
from samleng.crypto.tlogproof import parse_proof, verify_receipt

# Receipt proofs are a few kilobytes; this bounds what a mistaken path can make us read.
_MAX_RECEIPT_BYTES = 2 << 20
_MAX_VKEY_FILE_BYTES = 4096
_MAX_PASSPHRASE_FILE_BYTES = 4096
_MAX_KEY_FILE_BYTES = 4096
_MAX_INDEX_FILE_BYTES = 16 << 20
# A shares file line is about 120 bytes: this is room for several million signatures.
_MAX_SHARES_FILE_BYTES = 1 << 30
_MAX_POLICY_FILE_BYTES = 64 << 10
# A spreadsheet treats a cell starting with one of these as a formula; signers' text must not
# run as one on the organisers' machine (OWASP "CSV injection"), so such cells get a quote.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class AuditInputError(Error):
    """An argument or input file the command cannot use; the message says why."""


# Progress lines only for logs big enough for the wait to be noticeable.
_PROGRESS_MIN_LEAVES = 100_000


def _progress_printer() -> Callable[[int, int], None]:
    """Return an ``on_progress`` callback printing each tenth of the work to stderr."""
    shown = -1

    def show(done: int, total: int) -> None:
        nonlocal shown
        if total < _PROGRESS_MIN_LEAVES:
            return
        tenth = done * 10 // total
        if tenth != shown:
            shown = tenth
            print(f"leaves: {done}/{total} read", file=sys.stderr, flush=True)

    return show


def _read_known_checkpoint(path: str) -> tuple[str, bytes]:
    """Return ``(path, contents)`` of a checkpoint file given with --known-checkpoint."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_SMALL_FILE_BYTES:
            raise AuditInputError(f"--known-checkpoint {path} is too large to be a checkpoint")
        return path, file.read_bytes()
    except OSError as err:
        raise AuditInputError(
            f"--known-checkpoint {path}: cannot read it: {err.strerror}"
        ) from None


def _read_policy(path: str | None) -> Policy | None:
    """Read and parse the witness policy given with --policy, if any."""
    if path is None:
        return None
    file = Path(path)
    try:
        if file.stat().st_size > _MAX_POLICY_FILE_BYTES:
            raise AuditInputError(f"--policy {path} is too large to be a witness policy")
        data = file.read_bytes()
    except OSError as err:
        raise AuditInputError(f"--policy {path}: cannot read it: {err.strerror}") from None
    try:
        return parse_policy(data)
    except VerificationError as err:
        raise AuditInputError(f"--policy {path}: not a witness policy: {err}") from None


def _print_endorsements(endorsements: Endorsements | None) -> None:
    """The organisations endorsing the petition, apart from the signer count (§23.3)."""
    if endorsements is None:
        return
    print(f"endorsements {len(endorsements.current)}")
    for endorsement in endorsements.current:
        print(f"endorsed by: {endorsement.name_en} / {endorsement.name_km}")
    for endorsement in endorsements.withdrawn:
        print(f"withdrawn: {endorsement.name_en} / {endorsement.name_km}")


def _verify(args: argparse.Namespace) -> int:
    """Run ``verify DIR [--known-checkpoint FILE ...] [--policy FILE]``."""
    known = [_read_known_checkpoint(path) for path in args.known_checkpoint]
    policy = _read_policy(args.policy)
    print(f"verifying bundle {args.directory}", flush=True)
    report = verify_bundle(
        Path(args.directory),
        known_checkpoints=known,
        policy=policy,
        on_check=lambda line: print(line, flush=True),
        on_progress=_progress_printer(),
    )
    root = base64.b64encode(report.root).decode("ascii")
    print(f"verified: {report.origin}, {report.size} leaves, root {root}")
    if report.paper:
        # The count below in its two parts: signed online, and paper forms organisers entered.
        print(f"online {report.count - report.paper}")
        print(f"paper {report.paper}")
    if report.photos:
        # Of the online signatures, those that are photo pledges.
        print(f"photos {report.photos}")
    if report.withdrawals:
        # The count below is net of them: signatures their signers took back.
        print(f"withdrawals {report.withdrawals}")
    _print_endorsements(report.endorsements)
    print(f"count {report.count}")
    if report.witnesses is None and not known:
        # Said every time: a bundle alone cannot show that it is the log others saw.
        print(
            "note: no witness policy and no --known-checkpoint given. The bundle is consistent "
            "with itself; whoever holds the log key could still have re-signed it without some "
            "signatures. Verify it with the petition's witness policy (--policy), or compare it "
            "with checkpoints kept elsewhere (docs/auditing.md).",
            file=sys.stderr,
        )
    elif report.witnesses is not None and report.witnesses.policy_source == "bundle":
        print(
            "note: the witness policy came from the bundle itself. Whoever made the bundle chose "
            "it; verify again with the policy the organisers published (--policy FILE).",
            file=sys.stderr,
        )
    return 0


def _read_vkey_argument(value: str) -> str:
    """Return the verifier key given directly or as the path of a file containing it."""
    path = Path(value)
    if not path.is_file():
        if "://" in value:
            raise AuditInputError(
                "--vkey takes the verifier key itself or a file holding it, not a URL: "
                "download the bundle's vkey file first (this tool never goes online)"
            )
        if "+" not in value:
            raise AuditInputError(
                f"--vkey {value!r} is neither a file nor a verifier key "
                "(the key looks like ORIGIN+KEYID+BASE64, as in the bundle's vkey file)"
            )
        return value
    if path.stat().st_size > _MAX_VKEY_FILE_BYTES:
        raise VerificationError(f"{value} is too large to be a verifier key file")
    text = path.read_text(encoding="utf-8")
    return text[:-1] if text.endswith("\n") else text


def _receipt(args: argparse.Namespace) -> int:
    """Run ``receipt FILE --vkey V`` or ``receipt FILE --bundle DIR [--vkey V]``."""
    path = Path(args.file)
    if path.stat().st_size > _MAX_RECEIPT_BYTES:
        raise VerificationError(f"{args.file} is too large to be a receipt proof")
    proof = path.read_bytes()
    vkey = None if args.vkey is None else _read_vkey_argument(args.vkey)
    policy = _read_policy(args.policy)
    if args.bundle is not None:
        return _receipt_in_bundle(proof, args.bundle, vkey, policy)
    if vkey is None:
        raise AuditInputError("receipt needs --vkey V, or --bundle DIR")
    check = verify_receipt(proof, vkey)
    if policy is not None:
        witnessed = require_quorum(parse_proof(proof).checkpoint, vkey, policy)
        names = ", ".join(sorted(witnessed.witnesses)) or "no witness"
        print(f"witnessed: cosigned by {names}; the quorum needs {policy.describe()}")
    print(f"counted: leaf {check.index} in checkpoint of size {check.size} of {check.origin}")
    return 0


def _receipt_in_bundle(
    proof: bytes, directory: str, vkey: str | None, policy: Policy | None
) -> int:
    """Check a receipt proof against a bundle: verified, and its log still holds the receipt."""
    print(f"verifying bundle {directory}", file=sys.stderr, flush=True)
    found = verify_receipt_in_bundle(
        proof, Path(directory), vkey=vkey, policy=policy, on_progress=_progress_printer()
    )
    if found.bundle.witnesses is not None:
        coverage = found.bundle.witnesses
        names = ", ".join(sorted(coverage.final)) or "no witness"
        print(
            f"bundle witnessed: its final checkpoint is cosigned by {names}; the quorum needs "
            f"{coverage.quorum}",
            file=sys.stderr,
        )
    print(f"bundle verified: {found.bundle.origin}, count {found.bundle.count}", file=sys.stderr)
    check = found.receipt
    print(f"counted: leaf {check.index} in checkpoint of size {check.size} of {check.origin}")
    how = (
        f"identical to the bundle's checkpoints/{check.size}"
        if found.published
        else f"the root of the bundle's first {check.size} leaves"
    )
    print(
        f"in the bundle: your checkpoint is {how}, and leaf {check.index} of its leaves.bin "
        f"is yours; the bundle counts {found.bundle.count}"
    )
    return 0


def _read_passphrase_file(path: str) -> str:
    """Return the passphrase in a file: its first line, without the line ending."""
    file = Path(path)
    if file.stat().st_size > _MAX_PASSPHRASE_FILE_BYTES:
        raise AuditInputError(f"{path} is too large to be a passphrase file")
    text = file.read_text(encoding="utf-8")
    return text.split("\n", 1)[0].removesuffix("\r")


def _new_passphrase(args: argparse.Namespace) -> str:
    """Return the passphrase for a new key file: from --passphrase-file, or typed twice."""
    if args.passphrase_file:
        passphrase = _read_passphrase_file(args.passphrase_file)
        _check_new_passphrase(passphrase)
        return passphrase
    passphrase = getpass.getpass("New passphrase for the private key: ")
    # Checked before it is asked again: a refused passphrase should not be typed twice.
    _check_new_passphrase(passphrase)
    if getpass.getpass("The same passphrase again: ") != passphrase:
        raise AuditInputError("the two passphrases differ; nothing was written")
    return passphrase


def _check_new_passphrase(passphrase: str) -> None:
    try:
        check_passphrase(passphrase)
    except ValueError as err:
        raise AuditInputError(f"{err}; nothing was written") from None


def _create_exclusive(path: Path, data: bytes, mode: int) -> None:
    """Write a new file with ``mode``; FileExistsError if anything is at ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _keygen(args: argparse.Namespace) -> int:
    """Run ``keygen --out PREFIX``."""
    private_path = Path(f"{args.out}.key")
    public_path = Path(f"{args.out}.pub")
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise AuditInputError(f"{path} exists; refusing to overwrite a key")
    passphrase = _new_passphrase(args)
    print("deriving the passphrase key (Argon2id; a few seconds)...", file=sys.stderr)
    private_file, public_file = generate_key_files(passphrase, KEYFILE_ARGON2)
    _create_exclusive(private_path, private_file, 0o600)
    try:
        _create_exclusive(public_path, public_file, 0o644)
    except BaseException:
        private_path.unlink()
        raise
    print(f"wrote {private_path} (private, mode 0600: keep it offline, back it up)")
    print(f"wrote {public_path} (public: give it to the operator for --details-key)")
    print(f"public key {public_file.decode('ascii').strip()}")
    return 0


def _verified(directory: str) -> BundleReport:
    """Verify a bundle quietly (progress on stderr) before any other command uses it."""
    print(f"verifying bundle {directory}", file=sys.stderr, flush=True)
    report = verify_bundle(Path(directory), on_progress=_progress_printer())
    print(f"bundle verified: {report.origin}, count {report.count}", file=sys.stderr)
    return report


def _petition_custody(directory: str) -> Custody:
    """Return the custody (keys and threshold) named in a (verified) bundle's petition.json."""
    petition = json.loads((Path(directory) / PETITION_FILE).read_bytes())
    try:
        return custody_from_petition(petition.get("details"))
    except CustodyFormatError as err:
        raise AuditInputError(f"{err}") from None


def _read_key_file(path: str) -> bytes:
    """Return the bytes of an organiser key file given on the command line."""
    key_path = Path(path)
    if key_path.stat().st_size > _MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path} is too large to be an organiser key file")
    return key_path.read_bytes()


def _private_key(args: argparse.Namespace, key_file: bytes) -> bytes:
    """Ask the passphrase of ``--key`` once (or read --passphrase-file) and open the key."""
    if args.passphrase_file:
        passphrase = _read_passphrase_file(args.passphrase_file)
    else:
        passphrase = getpass.getpass(f"Passphrase for {args.key}: ")
    print("deriving the passphrase key (Argon2id; a few seconds)...", file=sys.stderr)
    return open_private_key(key_file, passphrase)


def _refuse_existing(path: str | None) -> None:
    """Refuse an output path that exists: nothing is ever overwritten."""
    if path and (Path(path).exists() or Path(path).is_symlink()):
        raise AuditInputError(f"{path} exists; refusing to overwrite it")


def _csv_cell(value: str) -> str:
    """Return a value safe to open in a spreadsheet (a leading quote before formulas)."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _read_indices(path: str) -> set[int]:
    """Read a file of leaf indices, one per line (what ``sample`` prints)."""
    file = Path(path)
    if file.stat().st_size > _MAX_INDEX_FILE_BYTES:
        raise AuditInputError(f"{path} is too large to be a list of leaf indices")
    indices: set[int] = set()
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        value = line.strip()
        if value:
            if not value.isascii() or not value.isdigit():
                raise AuditInputError(f"{path}, line {number}: not a leaf index")
            indices.add(int(value))
    return indices


def _check_only(only: set[int] | None, path: str | None, report: BundleReport) -> None:
    """Refuse an --only list naming a leaf that is not a signature leaf of the bundle."""
    strays = sorted(i for i in only or () if not 1 <= i < report.size)
    if strays:
        raise AuditInputError(
            f"{path} lists leaf {strays[0]}, which is not a signature leaf of this "
            f"bundle (1 to {report.size - 1})"
        )


def _decrypt(args: argparse.Namespace) -> int:
    """Run ``decrypt --key KEYFILE --bundle DIR DETAILS_FILE [--out CSV] [--only FILE]``."""
    only = _read_indices(args.only) if args.only else None
    _refuse_existing(args.out)
    report = _verified(args.bundle)
    _check_only(only, args.only, report)
    custody = _petition_custody(args.bundle)
    key_file = _read_key_file(args.key)
    index = custody.index_of(parse_key_file(key_file).public_key)
    if index is None:
        raise AuditInputError(
            f"{args.key} is not the key of this petition: its public key is not a details "
            "public key in petition.json"
        )
    with (
        (Path(args.bundle) / LEAVES_FILE).open("rb") as leaves,
        Path(args.details_file).open("rb") as details,
    ):
        header = read_details_header(details)
        if header is not None:
            _check_details_header(header, args.details_file, report.origin, custody)
        elif custody.version != 1:
            raise AuditInputError(
                f"{args.details_file} is a single-key (version 1) details file, but this "
                "petition's details are in custody of several keys (version 2)"
            )
        if custody.threshold > 1:
            raise AuditInputError(
                f"this petition's details open only with shares from {custody.threshold} of its "
                f"{custody.keys} keys: each key holder runs 'samleng-audit shares open' on "
                "their own machine, then 'samleng-audit shares combine' joins the shares "
                "(docs/organisers.md)"
            )
        private_key = _private_key(args, key_file)
        records: Iterator[OpenedRecord]
        if header is None:
            records = open_details_file(
                leaves, details, origin=report.origin, private_key=private_key, only=only
            )
        else:
            records = open_details_entries(
                header,
                matched_entries(read_details_entries(details, header), leaves),
                private_key=private_key,
                index=index,
                only=only,
            )
        opened, problems = _write_records(records, args.out)
    where = f" to {args.out}" if args.out else ""
    wanted = report.count if only is None else len(only)
    print(f"opened {opened} of {wanted} records{where}", file=sys.stderr)
    if problems:
        print(f"error: {problems} records could not be opened (listed above)", file=sys.stderr)
        return 1
    return 0


def _csv_row(index: int, fields: dict[str, str]) -> list[object]:
    """Return one CSV row: the leaf index, then each details field made safe for spreadsheets."""
    return [index, *(_csv_cell(fields.get(name, "")) for name in DETAILS_FIELDS)]


def _write_records(records: Iterator[OpenedRecord], path: str | None) -> tuple[int, int]:
    """Write opened records as CSV (to ``path``, mode 0600, or stdout) as they come; report
    problems by leaf index on stderr. Returns ``(opened, problems)``."""
    out: IO[str]
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        out = os.fdopen(fd, "w", encoding="utf-8", newline="")
    else:
        out = sys.stdout
    problems = opened = 0
    try:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["index", *DETAILS_FIELDS])
        for record in records:
            if record.details is None:
                problems += 1
                # The problem text names the check only: never any details.
                print(f"leaf {record.index}: {record.problem}", file=sys.stderr)
                continue
            opened += 1
            writer.writerow(_csv_row(record.index, record.details))
    finally:
        if out is not sys.stdout:
            out.close()
    return opened, problems


def _check_details_header(
    header: DetailsFileHeader, name: str, origin: str, custody: Custody
) -> None:
    """Refuse a version 2 details file that is not of the bundle's petition (WrongPetitionError)."""
    if header.origin != origin:
        raise WrongPetitionError(
            f"{name} holds the details of {header.origin}, but the bundle is of {origin}"
        )
    if header.custody != custody:
        raise WrongPetitionError(
            f"{name} names other keys or another threshold than the bundle's petition.json"
        )


def _details_v2(details: BinaryIO, name: str) -> DetailsFileHeader:
    """Read the header of a version 2 details file; refuse a version 1 file with advice."""
    header = read_details_header(details)
    if header is None:
        raise AuditInputError(
            f"{name} is the details file of a single-key petition (version 1): open it with "
            "'samleng-audit decrypt'"
        )
    return header


def _entries(
    details: BinaryIO, header: DetailsFileHeader, leaves: BinaryIO | None
) -> Iterator[tuple[DetailsEntry, str | None]]:
    """The details file's entries, matched to the bundle's leaves when there is a bundle."""
    entries = read_details_entries(details, header)
    if leaves is not None:
        return matched_entries(entries, leaves)
    return ((entry, None) for entry in entries)


def _open_bundle_leaves(directory: str | None, stack: contextlib.ExitStack) -> BinaryIO | None:
    return (
        None
        if directory is None
        else stack.enter_context((Path(directory) / LEAVES_FILE).open("rb"))
    )


def _shares_open(args: argparse.Namespace) -> int:
    """Run ``shares open --key KEYFILE DETAILS_FILE --out FILE [--only FILE] [--bundle DIR]``."""
    only = _read_indices(args.only) if args.only else None
    _refuse_existing(args.out)
    report = _verified(args.bundle) if args.bundle else None
    if report is not None:
        _check_only(only, args.only, report)
    key_file = _read_key_file(args.key)
    public_key = parse_key_file(key_file).public_key
    with contextlib.ExitStack() as stack:
        details = stack.enter_context(Path(args.details_file).open("rb"))
        header = _details_v2(details, args.details_file)
        if report is not None:
            _check_details_header(
                header, args.details_file, report.origin, _petition_custody(args.bundle)
            )
        index = header.custody.index_of(public_key)
        if index is None:
            raise WrongPetitionError(
                f"{args.key} is not one of the {header.custody.keys} keys of {header.origin} "
                f"named in {args.details_file}"
            )
        private_key = _private_key(args, key_file)
        leaves = _open_bundle_leaves(args.bundle, stack)
        shares, problems = open_shares(
            header, _entries(details, header, leaves), private_key=private_key, only=only
        )
    for problem in problems:
        print(f"leaf {problem.leaf}: {problem.problem}", file=sys.stderr)
    if problems:
        raise AuditInputError(
            f"{len(problems)} records could not be opened (listed above); nothing was written. "
            "Check that the details file is the one exported for this petition (with --bundle, "
            "against its leaves); to leave a damaged record out, list the others with --only"
        )
    _create_exclusive(Path(args.out), shares.encode(), 0o600)
    custody = header.custody
    print(
        f"wrote {args.out} (mode 0600): share {index} of {custody.keys} of {len(shares.shares)} "
        f"records of {header.origin}; {custody.threshold} organisations' shares open them"
    )
    return 0


def _read_shares_file(path: str) -> tuple[str, SharesFile]:
    """Parse one shares file named on the command line; errors name the file."""
    file = Path(path)
    if file.stat().st_size > _MAX_SHARES_FILE_BYTES:
        raise SharesFileError(f"{path} is too large to be a shares file")
    try:
        return path, parse_shares_file(file.read_bytes())
    except SharesFileError as err:
        raise SharesFileError(f"{path}: {err}") from None


def _combined(
    args: argparse.Namespace, files: list[tuple[str, SharesFile]], stack: contextlib.ExitStack
) -> Iterator[tuple[int, OpenedPayload]]:
    """The records the shares files open, after every check of the details file (against the
    bundle too, with ``--bundle``) and of the shares files; the files stay open in ``stack``."""
    report = _verified(args.bundle) if args.bundle else None
    details = stack.enter_context(Path(args.details).open("rb"))
    header = _details_v2(details, args.details)
    if report is not None:
        _check_details_header(header, args.details, report.origin, _petition_custody(args.bundle))
    check_shares_files(header, files)
    leaves = _open_bundle_leaves(args.bundle, stack)
    return combine_payloads(header, files, _entries(details, header, leaves))


def _shares_combine(args: argparse.Namespace) -> int:
    """Run ``shares combine FILE... --details DETAILS_FILE --out CSV [--bundle DIR]``."""
    _refuse_existing(args.out)
    files = [_read_shares_file(path) for path in args.shares_files]
    with contextlib.ExitStack() as stack:
        # Everything is combined before anything is written: a failure leaves no file.
        rows = [(index, opened.details) for index, opened in _combined(args, files, stack)]
    table = io.StringIO(newline="")
    writer = csv.writer(table, lineterminator="\r\n")
    writer.writerow(["index", *DETAILS_FIELDS])
    writer.writerows(_csv_row(index, fields) for index, fields in rows)
    _create_exclusive(Path(args.out), table.getvalue().encode("utf-8"), 0o600)
    used = ", ".join(f"{name} (share {shares.index})" for name, shares in files)
    print(f"combined {used}: opened {len(rows)} records to {args.out} (mode 0600)")
    return 0


PHOTOS_CSV = "photos.csv"
_CONSENT_WORDS = {
    Consent.PUBLIC_BANNER: "public",
    Consent.RECIPIENT_BANNER: "recipient",
    Consent.COUNTED_ONLY: "counted",
}


def _photos_extract(args: argparse.Namespace) -> int:
    """Run ``photos extract FILE... --details DETAILS_FILE --out DIR [--bundle DIR]``."""
    _refuse_existing(args.out)
    out = Path(args.out)
    files = [_read_shares_file(path) for path in args.shares_files]
    # Written into a private folder beside DIR and renamed at the end: a failure leaves
    # nothing (the folder and every photo in it are removed).
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent or "."))
    rows: list[list[str]] = []
    try:
        with contextlib.ExitStack() as stack:
            for index, opened in _combined(args, files, stack):
                if opened.photo is None or opened.consent is None:
                    continue  # a signature without a photo
                name = f"{index:08d}.jpg"
                _create_exclusive(partial / name, opened.photo, 0o600)
                rows.append([str(index), _CONSENT_WORDS[opened.consent], name])
        table = io.StringIO(newline="")
        writer = csv.writer(table, lineterminator="\r\n")
        writer.writerow(["index", "consent", "file"])
        writer.writerows(rows)
        _create_exclusive(partial / PHOTOS_CSV, table.getvalue().encode("utf-8"), 0o600)
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    counts = collections.Counter(row[1] for row in rows)
    print(
        f"extracted {len(rows)} photos to {args.out} (mode 0700): {counts['public']} for the "
        f"public banner, {counts['recipient']} for the recipient's banner only, "
        f"{counts['counted']} never to be shown"
    )
    return 0


def _banner(args: argparse.Namespace) -> int:
    """Run ``banner --photos DIR --bundle DIR --out PDF [--audience A] [--width-cm W]
    [--height-cm H] [--dpi D] [--blur-faces]``."""
    _refuse_existing(args.out)
    review = Path(f"{args.out}.review.csv") if args.blur_faces else None
    _refuse_existing(str(review) if review else None)
    report = _verified(args.bundle)
    petition = json.loads((Path(args.bundle) / PETITION_FILE).read_bytes())
    texts = petition.get("texts", {})
    spec = BannerSpec(
        title_km=str(texts.get("km", {}).get("title", "")),
        title_en=str(texts.get("en", {}).get("title", "")),
        count=report.count,
        origin=report.origin,
        width_cm=args.width_cm,
        height_cm=args.height_cm,
        dpi=args.dpi,
    )
    photos = read_photos(Path(args.photos))
    _check_photo_leaves(Path(args.bundle), [photo.index for photo in photos])
    chosen = choose(photos, args.audience, blur_faces=args.blur_faces)

    def progress(done: int, total: int) -> None:
        if done == total or done % 25 == 0:
            print(f"tiles: {done}/{total} laid out", file=sys.stderr, flush=True)

    pdf, tiles = lay_out(chosen, spec, blur_faces if args.blur_faces else None, progress)
    _create_exclusive(Path(args.out), pdf, 0o600)
    blurred = [tile for tile in tiles if tile.blurred]
    if review is not None:
        table = io.StringIO(newline="")
        writer = csv.writer(table, lineterminator="\r\n")
        writer.writerow(["tile", "leaf", "faces_blurred", "check"])
        for tile in blurred:
            check = "no face found: look at it before printing" if tile.faces == 0 else ""
            writer.writerow([tile.number, tile.photo.index, tile.faces, check])
        _create_exclusive(review, table.getvalue().encode("utf-8"), 0o600)
    print(
        f"wrote {args.out}: {len(tiles)} photos for the {args.audience} banner "
        f"({args.width_cm:g} x {args.height_cm:g} cm at {args.dpi} dpi) and the index of "
        f"tiles to leaves; count {report.count}"
        + (f"; {len(blurred)} with faces blurred, listed in {review} for review" if review else "")
    )
    return 0


def _check_photo_leaves(bundle: Path, indices: Sequence[int]) -> None:
    """Every photo must be a photo pledge leaf (kind 0x04) of the verified bundle."""
    with (bundle / LEAVES_FILE).open("rb") as leaves:
        for index in sorted(indices):
            leaves.seek(index * LEAF_SIZE)
            raw = leaves.read(LEAF_SIZE)
            if len(raw) != LEAF_SIZE or decode_leaf(raw).kind != LeafKind.PHOTO:
                raise AuditInputError(
                    f"photo of leaf {index}: the bundle has no photo pledge at that leaf "
                    "(photos of another petition?)"
                )


def _sample(args: argparse.Namespace) -> int:
    """Run ``sample --bundle DIR --seed TEXT -k N [--fake-fraction F]``."""
    report = _verified(args.bundle)
    final = Checkpoint(origin=report.origin, size=report.size, root=report.root)
    # The bundle's checkpoint file is the final checkpoint's signed note: verified identical to
    # the one the root above comes from.
    check_seed((Path(args.bundle) / CHECKPOINT_FILE).read_bytes(), args.seed)
    fabricated = fabricated_count(report.count, args.fake_fraction)
    indices = sample_indices(final, args.seed, args.k, frozenset(report.other_leaves))
    listing = "".join(f"{index}\n" for index in indices)
    if args.out:
        # Written only now that the sample is drawn: a refused sample leaves no file behind
        # (a shell's "> FILE" would leave an empty one).
        _create_exclusive(Path(args.out), listing.encode("ascii"), 0o644)
    else:
        sys.stdout.write(listing)
    probability = detection_probability(report.count, args.k, fabricated)
    print(
        f"sample of {args.k} of {report.count} signature leaves, from the checkpoint of size "
        f"{report.size} and seed {args.seed!r}",
        file=sys.stderr,
    )
    print(
        f"detection probability {probability:.4f}: the chance that the sample holds at least "
        f"one fabricated leaf if {fabricated} of the {report.count} "
        f"({args.fake_fraction:g} of them) were fabricated",
        file=sys.stderr,
    )
    return 0


def _fraction(value: str) -> float:
    """argparse type: a fraction between 0 and 1."""
    fraction = float(value)
    if not 0.0 <= fraction <= 1.0:  # also refuses NaN
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return fraction


def _positive(value: str) -> int:
    """argparse type: an integer of at least 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _parser() -> argparse.ArgumentParser:
    """Build the argument parser."""
    parser = argparse.ArgumentParser(
        prog="samleng-audit", description="Verify Samleng petition logs offline."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verify = commands.add_parser("verify", help="verify an export bundle and print the count")
    verify.add_argument("directory", metavar="DIR", help="the bundle directory")
    verify.add_argument(
        "--known-checkpoint",
        action="append",
        default=[],
        metavar="FILE",
        help="a checkpoint kept outside the bundle (saved from /p/<slug>/checkpoint while the "
        "petition was open); it must be signed by the bundle's key and be part of its log, else "
        "the log was rewritten after it. Repeat for each one kept",
    )
    verify.add_argument(
        "--policy",
        metavar="FILE",
        help="the petition's witness policy (C2SP tlog-policy), as the organisers published it; "
        "it wins over the bundle's own policy file. The final checkpoint must carry "
        "cosignatures that meet its quorum",
    )
    verify.set_defaults(run=_verify)
    receipt = commands.add_parser("receipt", help="check that a receipt proof was counted")
    receipt.add_argument("file", metavar="FILE", help="the receipt proof (.tlog-proof)")
    receipt.add_argument("--vkey", metavar="V", help="the log's verifier key, or a file holding it")
    receipt.add_argument(
        "--bundle",
        metavar="DIR",
        help="also verify this export bundle and that its log still holds the receipt's "
        "checkpoint and leaf (catches a signature removed after the receipt)",
    )
    receipt.add_argument(
        "--policy",
        metavar="FILE",
        help="a witness policy: the receipt's checkpoint (with --vkey) or the bundle's final "
        "checkpoint (with --bundle) must carry cosignatures that meet its quorum",
    )
    receipt.set_defaults(run=_receipt)

    keygen = commands.add_parser("keygen", help="make the organisers' details key pair")
    keygen.add_argument(
        "--out", required=True, metavar="PREFIX", help="write PREFIX.key and PREFIX.pub"
    )
    keygen.add_argument(
        "--passphrase-file", metavar="FILE", help="read the passphrase from FILE (automation)"
    )
    keygen.set_defaults(run=_keygen)

    decrypt = commands.add_parser("decrypt", help="check and open the details file; write a CSV")
    decrypt.add_argument("--key", required=True, metavar="KEYFILE", help="PREFIX.key")
    decrypt.add_argument("--bundle", required=True, metavar="DIR", help="the export bundle")
    decrypt.add_argument("details_file", metavar="DETAILS_FILE", help="from export-details")
    decrypt.add_argument(
        "--out", metavar="CSV", help="write the CSV to this new file (mode 0600), not stdout"
    )
    decrypt.add_argument(
        "--only",
        metavar="FILE",
        help="open only the leaves listed in FILE, one index per line (e.g. sample's output)",
    )
    decrypt.add_argument(
        "--passphrase-file", metavar="FILE", help="read the passphrase from FILE (automation)"
    )
    decrypt.set_defaults(run=_decrypt)

    _shares_parser(commands)
    _photos_parser(commands)
    _banner_parser(commands)

    sample = commands.add_parser("sample", help="draw the leaves of a sample audit")
    sample.add_argument("--bundle", required=True, metavar="DIR", help="the export bundle")
    sample.add_argument(
        "--seed",
        required=True,
        metavar='"HASH VALUE"',
        help="the SHA-256 (hex) of the bundle's final checkpoint file, a space, then the public "
        "random value drawn after that hash was published",
    )
    sample.add_argument("-k", type=_positive, required=True, metavar="N", help="sample size")
    sample.add_argument(
        "--fake-fraction",
        type=_fraction,
        default=0.01,
        metavar="F",
        help="fraction of fabricated leaves to compute the detection probability for "
        "(default 0.01)",
    )
    sample.add_argument(
        "--out", metavar="FILE", help="write the indices to this new file, only on success"
    )
    sample.set_defaults(run=_sample)
    return parser


def _shares_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``shares open`` and ``shares combine`` (coalition custody, k of n keys)."""
    shares = commands.add_parser(
        "shares", help="coalition custody: open one organisation's shares, or combine k of them"
    )
    steps = shares.add_subparsers(dest="step", required=True, metavar="STEP")
    opening = steps.add_parser(
        "open", help="open this organisation's share of each record (on its own machine)"
    )
    opening.add_argument("--key", required=True, metavar="KEYFILE", help="ORG.key")
    opening.add_argument("details_file", metavar="DETAILS_FILE", help="from export-details")
    opening.add_argument(
        "--out", required=True, metavar="FILE", help="the new shares file (mode 0600)"
    )
    opening.add_argument(
        "--only",
        metavar="FILE",
        help="open only the leaves listed in FILE, one index per line (e.g. sample's output)",
    )
    opening.add_argument(
        "--bundle", metavar="DIR", help="also verify the bundle and check each record's leaf"
    )
    opening.add_argument(
        "--passphrase-file", metavar="FILE", help="read the passphrase from FILE (automation)"
    )
    opening.set_defaults(run=_shares_open)
    combining = steps.add_parser(
        "combine", help="combine k organisations' shares files and write the details CSV"
    )
    _combining_arguments(combining, "CSV", "the new CSV file (mode 0600)")
    combining.set_defaults(run=_shares_combine)


def _combining_arguments(parser: argparse.ArgumentParser, out: str, out_help: str) -> None:
    """The arguments of the commands that combine k organisations' shares files."""
    parser.add_argument(
        "shares_files", nargs="+", metavar="FILE", help="the shares files, one per organisation"
    )
    parser.add_argument(
        "--details", required=True, metavar="DETAILS_FILE", help="from export-details"
    )
    parser.add_argument("--out", required=True, metavar=out, help=out_help)
    parser.add_argument(
        "--bundle", metavar="DIR", help="also verify the bundle and check each record's leaf"
    )


def _photos_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``photos extract`` (photo pledges, with the shares of k organisations)."""
    photos = commands.add_parser("photos", help="photo pledges: extract them with k shares files")
    steps = photos.add_subparsers(dest="step", required=True, metavar="STEP")
    extracting = steps.add_parser(
        "extract", help="combine k organisations' shares files and write each photo"
    )
    _combining_arguments(
        extracting,
        "DIR",
        "the new folder: <leaf index>.jpg per photo and photos.csv (index, consent, file)",
    )
    extracting.set_defaults(run=_photos_extract)


def _banner_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``banner`` (the print-ready banner of photo pledges, with its index)."""
    banner = commands.add_parser(
        "banner", help="lay out the extracted photos as a print-ready banner PDF"
    )
    banner.add_argument("--photos", required=True, metavar="DIR", help="from photos extract")
    banner.add_argument("--bundle", required=True, metavar="DIR", help="the verified bundle")
    banner.add_argument("--out", required=True, metavar="PDF", help="the new PDF (mode 0600)")
    banner.add_argument(
        "--audience",
        choices=AUDIENCES,
        default="public",
        help="public: photos whose signers allowed the public banner; recipient: also those "
        "allowed only on the banner delivered to the recipient (default: public)",
    )
    banner.add_argument("--width-cm", type=float, default=500.0, help="default 500")
    banner.add_argument("--height-cm", type=float, default=200.0, help="default 200")
    banner.add_argument("--dpi", type=int, default=100, help="default 100")
    banner.add_argument(
        "--blur-faces",
        action="store_true",
        help="on a public banner, also show the recipient-only photos with their faces "
        "blurred, listed in PDF.review.csv for an organiser to check",
    )
    banner.set_defaults(run=_banner)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 refused or failed)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "receipt" and args.vkey is None and args.bundle is None:
        parser.error("receipt needs --vkey V, or --bundle DIR to check it against a bundle")
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except Error as err:
        print(f"error: {err}", file=sys.stderr)
    except FileExistsError as err:
        print(f"error: {err.filename} exists; refusing to overwrite it", file=sys.stderr)
    except (OSError, UnicodeDecodeError) as err:
        print(f"error: cannot read input: {err}", file=sys.stderr)
    return 1
