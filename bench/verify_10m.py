"""A 10,000,000-leaf bundle through `samleng-audit verify` (issue 21): time against bare
hashlib over the same leaves, and peak memory.

Writes a bundle of ``--leaves`` leaves (default 10 million: the header and signatures with
distinct random-looking commitments) into a temporary folder, streaming: leaves.bin chunk by
chunk, the root from one CompactTree pass, checkpoints at a few sizes. Then, each in a fresh
process, one after the other and ``--rounds`` times alternating:

- **bare**: read leaves.bin in the verifier's chunks and compute every leaf's RFC 6962 hash
  with hashlib, nothing else;
- **verify**: `samleng-audit verify DIR`, the whole command.

Figures: the median wall time of each, their ratio (target <= 1.2), and the verifier's peak
RSS (VmHWM; target <= 256 MB). Progress goes to stderr.

    .venv/bin/python bench/verify_10m.py [--leaves 10000000] [--rounds 2] [--no-record]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, VENV_BIN, machine, note, record

_BARE = """
import hashlib, sys
from samleng.crypto.bundle import CHUNK_LEAVES
from samleng.crypto.leaf import LEAF_SIZE
sha256 = hashlib.sha256
with open(sys.argv[1], "rb") as f:
    while chunk := f.read(CHUNK_LEAVES * LEAF_SIZE):
        hashes = [sha256(b"\\x00" + chunk[o : o + LEAF_SIZE]).digest()
                  for o in range(0, len(chunk), LEAF_SIZE)]
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(peak[0].split()[1], file=sys.stderr)
"""

_VERIFY = """
import sys
from samleng.crypto.audit import main
status = main(sys.argv[1:])
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(peak[0].split()[1], file=sys.stderr)
sys.exit(status)
"""


def write_bundle(directory: Path, leaves: int) -> None:
    """A valid bundle of ``leaves`` leaves, written without holding them in memory."""
    sys.path.insert(0, str(ROOT))
    from samleng.crypto.bundle import CHUNK_LEAVES, checkpoint_path
    from samleng.crypto.checkpoint import Checkpoint, sign_checkpoint
    from samleng.crypto.leaf import LEAF_PREFIX, LeafKind
    from samleng.crypto.merkle import CompactTree, leaf_hash
    from tests.crypto.logfactory import make_log, reseal

    log = make_log(0)
    directory.mkdir()
    (directory / "checkpoints").mkdir()
    prefix = LEAF_PREFIX + bytes([LeafKind.SIGNATURE])
    sizes = iter(sorted({1, leaves // 2, leaves}))
    next_size: int | None = next(sizes)
    tree = CompactTree()
    sha256 = hashlib.sha256
    note_bytes = b""
    index = 0
    with (directory / "leaves.bin").open("wb") as out:
        while index < leaves:
            n = min(CHUNK_LEAVES, leaves - index)
            chunk = [
                log.leaves[0]
                if i == 0
                else prefix + sha256(i.to_bytes(8, "big")).digest() + bytes(32)
                for i in range(index, index + n)
            ]
            out.write(b"".join(chunk))
            hashes = [leaf_hash(leaf) for leaf in chunk]
            used = 0
            while next_size is not None and next_size <= index + n:
                tree.extend(hashes[used : next_size - index])
                used = next_size - index
                body = Checkpoint(origin=log.origin, size=next_size, root=tree.root())
                note_bytes = sign_checkpoint(body, log.signer)
                (directory / checkpoint_path(next_size)).write_bytes(note_bytes)
                next_size = next(sizes, None)
            tree.extend(hashes[used:])
            index += n
            if index % 1_000_000 < n:
                note(f"written {index:,} of {leaves:,} leaves")
    (directory / "checkpoint").write_bytes(note_bytes)
    (directory / "petition.json").write_bytes(log.petition_json)
    (directory / "vkey").write_bytes(log.signer.vkey.encode() + b"\n")
    (directory / "VERIFY.txt").write_bytes(b"verify\n")
    reseal(directory)


def timed(code: str, *args: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of ``python -c code args`` in a fresh process."""
    start = time.perf_counter()
    done = subprocess.run(
        [str(VENV_BIN / "python"), "-c", code, *args],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: {done.stdout[-500:]} {done.stderr[-2000:]}")
    return wall, int(done.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    lines = [machine()]
    with tempfile.TemporaryDirectory(prefix="verify-10m-") as folder:
        bundle = Path(folder) / "bundle"
        start = time.perf_counter()
        write_bundle(bundle, args.leaves)
        note(f"bundle written in {time.perf_counter() - start:.0f} s")
        size = (bundle / "leaves.bin").stat().st_size
        bare, verify, peaks = [], [], []
        for number in range(args.rounds):
            for kind in ("bare", "verify") if number % 2 == 0 else ("verify", "bare"):
                if kind == "bare":
                    wall, _peak = timed(_BARE, str(bundle / "leaves.bin"))
                    bare.append(wall)
                else:
                    wall, peak = timed(_VERIFY, "verify", str(bundle))
                    verify.append(wall)
                    peaks.append(peak)
                note(f"round {number + 1} {kind}: {wall:.1f} s")
    b, v = statistics.median(bare), statistics.median(verify)
    lines += [
        f"{args.leaves:,} leaves, leaves.bin {size / 2**20:.0f} MiB; {args.rounds} rounds",
        f"bare hashlib over the leaves: {b:.1f} s",
        f"samleng-audit verify, whole process: {v:.1f} s",
        f"ratio verify/bare: {v / b:.2f} (target <= 1.2)",
        f"verify peak RSS: {max(peaks) / 1024:.0f} MiB (target <= 256)",
    ]
    print("\n".join(lines))
    if not args.no_record:
        record("verify_10m.py", lines)


if __name__ == "__main__":
    main()
