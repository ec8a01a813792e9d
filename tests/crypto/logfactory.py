"""Builds Samleng logs, receipt proofs and export bundles for tests, with real keys and hashes.

Shared by the bundle, CLI and Go interop tests. Randomness comes from a seeded generator so a
failing case can be rebuilt exactly.
"""

import random
from dataclasses import dataclass, field
from pathlib import Path

from samleng.crypto.bundle import (
    CHECKPOINT_FILE,
    LEAVES_FILE,
    PETITION_FILE,
    SUMS_FILE,
    VERIFY_FILE,
    VKEY_FILE,
    checkpoint_path,
    sha256sums,
    vkey_file,
)
from samleng.crypto.canonical import canonical_json
from samleng.crypto.checkpoint import Checkpoint, LogSigner, sign_checkpoint
from samleng.crypto.leaf import LeafKind, encode_leaf, header_leaf
from samleng.crypto.merkle import MemoryTree, leaf_hash
from samleng.crypto.receipts import receipt_commitment
from samleng.crypto.tlogproof import encode_receipt_extra, format_proof

ORIGIN = "petitions.example.org/p/end-impunity"
VERIFY_TEXT = (
    "Verify this bundle with: samleng-audit verify .\nផ្ទៀងផ្ទាត់កញ្ចប់នេះដោយ: samleng-audit verify .\n"
).encode()


@dataclass(frozen=True, kw_only=True)
class Signature:
    """What a signer keeps (r) and what the log holds for them."""

    index: int
    kind: LeafKind
    r: bytes
    d: bytes


@dataclass(kw_only=True)
class PetitionLog:
    """A petition log held in memory: petition.json, leaves and the tree over them."""

    origin: str
    signer: LogSigner
    petition_json: bytes
    rng: random.Random
    leaves: list[bytes] = field(default_factory=list)
    signatures: list[Signature] = field(default_factory=list)
    tree: MemoryTree = field(default_factory=MemoryTree)

    def append_leaf(self, leaf: bytes) -> None:
        """Append one raw leaf (tests use this to build bad logs)."""
        self.leaves.append(leaf)
        self.tree.extend([leaf_hash(leaf)])

    def sign(self, count: int) -> None:
        """Append ``count`` signature leaves, alternating the two signature kinds."""
        for _ in range(count):
            kind = LeafKind.VERIFIED_SIGNATURE if self.rng.random() < 0.3 else LeafKind.SIGNATURE
            r, d = self.rng.randbytes(16), self.rng.randbytes(32)
            self.signatures.append(Signature(index=len(self.leaves), kind=kind, r=r, d=d))
            self.append_leaf(encode_leaf(kind, receipt_commitment(self.origin, r), d))

    @property
    def size(self) -> int:
        """Return the number of leaves."""
        return len(self.leaves)

    def checkpoint(self, size: int | None = None) -> bytes:
        """Return the signed checkpoint of the first ``size`` leaves (default: all)."""
        size = self.size if size is None else size
        body = Checkpoint(origin=self.origin, size=size, root=self.tree.root(size))
        return sign_checkpoint(body, self.signer)

    def receipt_proof(self, signature: Signature, size: int | None = None) -> bytes:
        """Return the tlog-proof a signer would download, against checkpoint ``size``."""
        size = self.size if size is None else size
        return format_proof(
            extra=encode_receipt_extra(signature.kind, signature.r, signature.d),
            index=signature.index,
            path=self.tree.inclusion_proof(signature.index, size),
            checkpoint=self.checkpoint(size),
        )

    def write_bundle(self, directory: Path, history: list[int] | None = None) -> Path:
        """Write an export bundle with checkpoints at ``history`` sizes plus the latest."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "checkpoints").mkdir(exist_ok=True)
        (directory / PETITION_FILE).write_bytes(self.petition_json)
        (directory / VKEY_FILE).write_bytes(vkey_file(self.signer.vkey))
        (directory / CHECKPOINT_FILE).write_bytes(self.checkpoint())
        for size in {*(history or []), self.size}:
            (directory / checkpoint_path(size)).write_bytes(self.checkpoint(size))
        (directory / LEAVES_FILE).write_bytes(b"".join(self.leaves))
        (directory / VERIFY_FILE).write_bytes(VERIFY_TEXT)
        reseal(directory)
        return directory


def reseal(directory: Path) -> None:
    """Rewrite SHA256SUMS, so a tamper test reaches the check it aims at."""
    (directory / SUMS_FILE).unlink(missing_ok=True)
    (directory / SUMS_FILE).write_bytes(sha256sums(directory))


def petition_json(origin: str, vkey: str) -> bytes:
    """Return a realistic petition.json in canonical JSON."""
    return canonical_json(
        {
            "origin": origin,
            "slug": origin.rsplit("/", 1)[-1],
            "texts": {
                "en": {"title": "End impunity", "body": "We ask for justice."},
                "km": {"title": "បញ្ចប់និទណ្ឌភាព", "body": "យើងសុំយុត្តិធម៌។"},
            },
            "goal": 10000,
            "identifier": "phone",
            "verification": "none",
            "log": {"vkey": vkey},
        }
    )


def make_log(signatures: int = 0, *, origin: str = ORIGIN, seed: int = 1) -> PetitionLog:
    """Return a log with its header leaf and ``signatures`` signature leaves."""
    rng = random.Random(seed)
    signer = LogSigner(origin=origin, seed=rng.randbytes(32))
    log = PetitionLog(
        origin=origin, signer=signer, petition_json=petition_json(origin, signer.vkey), rng=rng
    )
    log.append_leaf(header_leaf(log.petition_json))
    log.sign(signatures)
    return log
