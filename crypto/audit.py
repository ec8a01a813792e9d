"""``samleng-audit``: the offline command line for auditors, recipients and signers.

Subcommands:

``verify DIR``
    Verify an export bundle. One line per check on stdout, progress on stderr; the last line
    of stdout on success is exactly ``count N``. Exit status 0, or 1 with ``error: ...``.
``receipt FILE --vkey V``
    Verify a signer's receipt proof (a tlog-proof file) against the log's verifier key, given
    as the key string or as a file containing it.

``keygen``, ``decrypt`` and ``sample`` (DESIGN §6) are to come.
"""

import argparse
import base64
import sys
from collections.abc import Callable
from pathlib import Path

from crypto.bundle import verify_bundle
from crypto.errors import VerificationError
from crypto.tlogproof import verify_receipt

# Receipt proofs are a few kilobytes; this bounds what a mistaken path can make us read.
_MAX_RECEIPT_BYTES = 2 << 20
_MAX_VKEY_FILE_BYTES = 4096
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


def _verify(args: argparse.Namespace) -> int:
    """Run ``verify DIR``."""
    print(f"verifying bundle {args.directory}", flush=True)
    report = verify_bundle(
        Path(args.directory),
        on_check=lambda line: print(line, flush=True),
        on_progress=_progress_printer(),
    )
    root = base64.b64encode(report.root).decode("ascii")
    print(f"verified: {report.origin}, {report.size} leaves, root {root}")
    print(f"count {report.count}")
    return 0


def _read_vkey_argument(value: str) -> str:
    """Return the verifier key given directly or as the path of a file containing it."""
    path = Path(value)
    if not path.is_file():
        return value
    if path.stat().st_size > _MAX_VKEY_FILE_BYTES:
        raise VerificationError(f"{value} is too large to be a verifier key file")
    text = path.read_text(encoding="utf-8")
    return text[:-1] if text.endswith("\n") else text


def _receipt(args: argparse.Namespace) -> int:
    """Run ``receipt FILE --vkey V``."""
    path = Path(args.file)
    if path.stat().st_size > _MAX_RECEIPT_BYTES:
        raise VerificationError(f"{args.file} is too large to be a receipt proof")
    check = verify_receipt(path.read_bytes(), _read_vkey_argument(args.vkey))
    print(f"counted: leaf {check.index} in checkpoint of size {check.size} of {check.origin}")
    return 0


def _parser() -> argparse.ArgumentParser:
    """Build the argument parser."""
    parser = argparse.ArgumentParser(
        prog="samleng-audit", description="Verify Samleng petition logs offline."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verify = commands.add_parser("verify", help="verify an export bundle and print the count")
    verify.add_argument("directory", metavar="DIR", help="the bundle directory")
    verify.set_defaults(run=_verify)
    receipt = commands.add_parser("receipt", help="check that a receipt proof was counted")
    receipt.add_argument("file", metavar="FILE", help="the receipt proof (.tlog-proof)")
    receipt.add_argument(
        "--vkey", required=True, metavar="V", help="the log's verifier key, or a file holding it"
    )
    receipt.set_defaults(run=_receipt)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 verification failed)."""
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except VerificationError as err:
        print(f"error: {err}", file=sys.stderr)
    except (OSError, UnicodeDecodeError) as err:
        print(f"error: cannot read input: {err}", file=sys.stderr)
    return 1
