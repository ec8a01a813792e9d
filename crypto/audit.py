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
    name, locality, comment, contact). Problems are reported by leaf index on stderr, never
    with any details; exit status 1 if any.
``sample --bundle DIR --seed "HASH VALUE" -k N [--fake-fraction F]``
    Draw the sample audit's leaf indices from the final checkpoint and the seed (stdout, one
    per line) and say on stderr how likely the sample is to catch that fraction of fakes. The
    seed must start with the SHA-256 of the final checkpoint (docs/formats.md §14).

Every command reads and writes local files only: it is meant for an offline machine.
"""

import argparse
import base64
import binascii
import csv
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

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
from samleng.crypto.details import DETAILS_FIELDS
from samleng.crypto.detailsfile import open_details_file
from samleng.crypto.errors import Error, KeyFileError, VerificationError
from samleng.crypto.keyfile import (
    KEYFILE_ARGON2,
    check_passphrase,
    generate_key_files,
    open_private_key,
    parse_key_file,
)
from samleng.crypto.policy import Policy, parse_policy, require_quorum
from samleng.crypto.sample import (
    check_seed,
    detection_probability,
    fabricated_count,
    sample_indices,
)
from samleng.crypto.tlogproof import parse_proof, verify_receipt

# Receipt proofs are a few kilobytes; this bounds what a mistaken path can make us read.
_MAX_RECEIPT_BYTES = 2 << 20
_MAX_VKEY_FILE_BYTES = 4096
_MAX_PASSPHRASE_FILE_BYTES = 4096
_MAX_KEY_FILE_BYTES = 4096
_MAX_INDEX_FILE_BYTES = 16 << 20
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


def _details_public_key(directory: str) -> bytes:
    """Return the details public key named in a (verified) bundle's petition.json."""
    petition = json.loads((Path(directory) / PETITION_FILE).read_bytes())
    try:
        encoded = petition["details"]["public_key"]
        return base64.b64decode(encoded, validate=True)
    except (KeyError, TypeError, binascii.Error):
        raise AuditInputError("petition.json names no details public key") from None


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


def _decrypt(args: argparse.Namespace) -> int:
    """Run ``decrypt --key KEYFILE --bundle DIR DETAILS_FILE [--out CSV] [--only FILE]``."""
    only = _read_indices(args.only) if args.only else None
    if args.out and (Path(args.out).exists() or Path(args.out).is_symlink()):
        raise AuditInputError(f"{args.out} exists; refusing to overwrite it")
    report = _verified(args.bundle)
    if only is not None:
        strays = sorted(i for i in only if not 1 <= i < report.size)
        if strays:
            raise AuditInputError(
                f"{args.only} lists leaf {strays[0]}, which is not a signature leaf of this "
                f"bundle (1 to {report.size - 1})"
            )
    key_path = Path(args.key)
    if key_path.stat().st_size > _MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{args.key} is too large to be an organiser key file")
    key_file = key_path.read_bytes()
    if parse_key_file(key_file).public_key != _details_public_key(args.bundle):
        raise AuditInputError(
            f"{args.key} is not the key of this petition: its public key is not the details "
            "public key in petition.json"
        )
    if args.passphrase_file:
        passphrase = _read_passphrase_file(args.passphrase_file)
    else:
        passphrase = getpass.getpass(f"Passphrase for {args.key}: ")
    print("deriving the passphrase key (Argon2id; a few seconds)...", file=sys.stderr)
    private_key = open_private_key(key_file, passphrase)
    out: IO[str]
    if args.out:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        out = os.fdopen(fd, "w", encoding="utf-8", newline="")
    else:
        out = sys.stdout
    problems = opened = 0
    try:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["index", *DETAILS_FIELDS])
        with (
            (Path(args.bundle) / LEAVES_FILE).open("rb") as leaves,
            Path(args.details_file).open("rb") as details,
        ):
            records = open_details_file(
                leaves, details, origin=report.origin, private_key=private_key, only=only
            )
            for record in records:
                if record.details is None:
                    problems += 1
                    # The problem text names the check only: never any details.
                    print(f"leaf {record.index}: {record.problem}", file=sys.stderr)
                    continue
                opened += 1
                fields = record.details
                writer.writerow(
                    [record.index, *(_csv_cell(fields.get(name, "")) for name in DETAILS_FIELDS)]
                )
    finally:
        if out is not sys.stdout:
            out.close()
    where = f" to {args.out}" if args.out else ""
    wanted = report.count if only is None else len(only)
    print(f"opened {opened} of {wanted} records{where}", file=sys.stderr)
    if problems:
        print(f"error: {problems} records could not be opened (listed above)", file=sys.stderr)
        return 1
    return 0


def _sample(args: argparse.Namespace) -> int:
    """Run ``sample --bundle DIR --seed TEXT -k N [--fake-fraction F]``."""
    report = _verified(args.bundle)
    final = Checkpoint(origin=report.origin, size=report.size, root=report.root)
    # The bundle's checkpoint file is the final checkpoint's signed note: verified identical to
    # the one the root above comes from.
    check_seed((Path(args.bundle) / CHECKPOINT_FILE).read_bytes(), args.seed)
    fabricated = fabricated_count(report.count, args.fake_fraction)
    indices = sample_indices(final, args.seed, args.k)
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
