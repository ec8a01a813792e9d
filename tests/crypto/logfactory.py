"""Builds Samleng logs, receipt proofs and export bundles for tests, with real keys and hashes.

Shared by the bundle, CLI and Go interop tests. Randomness comes from a seeded generator so a
failing case can be rebuilt exactly.
"""

import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from samleng.crypto.bundle import (
    CHECKPOINT_FILE,
    LEAVES_FILE,
    POLICY_FILE,
    SUMS_FILE,
    checkpoint_path,
    lay_out_bundle,
    sha256sums,
)
from samleng.crypto.canonical import canonical_json
from samleng.crypto.checkpoint import Checkpoint, LogSigner, sign_checkpoint
from samleng.crypto.cosignature import CosignatureSigner, add_cosignatures
from samleng.crypto.leaf import LEAF_SIZE, LeafKind, encode_leaf, header_leaf
from samleng.crypto.merkle import MemoryTree, leaf_hash
from samleng.crypto.note import parse_vkey
from samleng.crypto.policy import Policy, PolicyGroup, PolicyLog, PolicyWitness, format_policy
from samleng.crypto.receipts import receipt_commitment
from samleng.crypto.tlogproof import encode_receipt_extra, format_proof

ORIGIN = "petitions.example.org/p/end-impunity"
# Witness cosignatures in tests carry this time (2026-03-01 00:00:00 UTC) plus the tree size.
WITNESS_TIME = 1772323200
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
    verification_mode: str = "none"
    leaves: list[bytes] = field(default_factory=list)
    signatures: list[Signature] = field(default_factory=list)
    tree: MemoryTree = field(default_factory=MemoryTree)

    def append_leaf(self, leaf: bytes) -> None:
        """Append one raw leaf (tests use this to build bad logs)."""
        self.leaves.append(leaf)
        self.tree.extend([leaf_hash(leaf)])

    def sign(self, count: int) -> None:
        """Append ``count`` signature leaves: kind 0x01, or with email verification both kinds."""
        for _ in range(count):
            confirmed = self.rng.random() < 0.3  # drawn always: a seed gives the same r and d
            kind = (
                LeafKind.VERIFIED_SIGNATURE
                if confirmed and self.verification_mode == "email"
                else LeafKind.SIGNATURE
            )
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

    def witnessed_checkpoint(
        self, size: int | None = None, cosigners: Sequence[CosignatureSigner] = ()
    ) -> bytes:
        """Return checkpoint ``size`` with a cosignature by each of ``cosigners`` appended."""
        note = self.checkpoint(size)
        size = self.size if size is None else size
        text = note[: note.rfind(b"\n\n") + 1]
        for cosigner in cosigners:
            note = add_cosignatures(note, cosigner.cosign(text, WITNESS_TIME + size))
        return note

    def write_bundle(
        self,
        directory: Path,
        history: list[int] | None = None,
        *,
        cosigners: Sequence[CosignatureSigner] = (),
        policy: bytes | None = None,
    ) -> Path:
        """Write an export bundle with checkpoints at ``history`` sizes plus the latest.

        Every checkpoint carries a cosignature by each of ``cosigners``; ``policy``, if given,
        is written as the bundle's policy file.
        """
        lay_out_bundle(
            directory,
            petition_json=self.petition_json,
            vkey=self.signer.vkey,
            leaves=self.leaves,
            checkpoints=[
                (size, self.witnessed_checkpoint(size, cosigners))
                for size in sorted({*(history or []), self.size})
            ],
            verify_text=VERIFY_TEXT,
            extra=None if policy is None else {POLICY_FILE: policy},
        )
        return directory


def reseal(directory: Path) -> None:
    """Rewrite SHA256SUMS, so a tamper test reaches the check it aims at."""
    (directory / SUMS_FILE).unlink(missing_ok=True)
    (directory / SUMS_FILE).write_bytes(sha256sums(directory))


def petition_json(origin: str, vkey: str, verification_mode: str = "none") -> bytes:
    """Return a realistic petition.json in canonical JSON (the members a verifier reads)."""
    return canonical_json(
        {
            "origin": origin,
            "slug": origin.rsplit("/", 1)[-1],
            "texts": {
                "en": {"title": "End impunity", "body": "We ask for justice."},
                "km": {"title": "បញ្ចប់និទណ្ឌភាព", "body": "យើងសុំយុត្តិធម៌។"},
            },
            "goal": 10000,
            "identifier_mode": "email" if verification_mode == "email" else "phone",
            "verification_mode": verification_mode,
            "log": {"vkey": vkey},
        }
    )


def make_log(
    signatures: int = 0, *, origin: str = ORIGIN, seed: int = 1, verification_mode: str = "none"
) -> PetitionLog:
    """Return a log with its header leaf and ``signatures`` signature leaves.

    ``verification_mode`` "none" gives kind 0x01 leaves only; "email" mixes in kind 0x02 (the
    verifier allows both there, docs/formats.md §5).
    """
    rng = random.Random(seed)
    signer = LogSigner(origin=origin, seed=rng.randbytes(32))
    log = PetitionLog(
        origin=origin,
        signer=signer,
        petition_json=petition_json(origin, signer.vkey, verification_mode),
        rng=rng,
        verification_mode=verification_mode,
    )
    log.append_leaf(header_leaf(log.petition_json))
    log.sign(signatures)
    return log


def make_cosigners(count: int, *, seed: int = 100) -> list[CosignatureSigner]:
    """Return ``count`` witnesses' cosigning keys, named witness-1.example/w and so on."""
    rng = random.Random(seed)
    return [
        CosignatureSigner(name=f"witness-{i}.example/w", seed=rng.randbytes(32))
        for i in range(1, count + 1)
    ]


def witness_policy(
    log_vkey: str | None, cosigners: Sequence[CosignatureSigner], threshold: int
) -> bytes:
    """Return a policy file: the log (if given), each cosigner, a quorum of ``threshold``."""
    witnesses = tuple(
        PolicyWitness(name=f"w{i}", verifier=c.verifier) for i, c in enumerate(cosigners, 1)
    )
    group = PolicyGroup(
        name="witnesses", threshold=threshold, members=tuple(w.name for w in witnesses)
    )
    logs = () if log_vkey is None else (PolicyLog(verifier=parse_vkey(log_vkey)),)
    policy = Policy(logs=logs, witnesses=witnesses, groups=(group,), quorum="witnesses")
    return format_policy(policy)


def forge_without_leaf(source: Path, target: Path, index: int, signer: LogSigner) -> Path:
    """Copy the bundle ``source`` to ``target`` without leaf ``index``, every checkpoint re-signed.

    What an operator holding the log key (unwrapped with the master key) can do: the forged
    bundle keeps petition.json and vkey byte for byte, and is consistent with itself.
    """
    shutil.copytree(source, target)
    data = (target / LEAVES_FILE).read_bytes()
    leaves = [data[i : i + LEAF_SIZE] for i in range(0, len(data), LEAF_SIZE)]
    del leaves[index]
    tree = MemoryTree([leaf_hash(leaf) for leaf in leaves])
    (target / LEAVES_FILE).write_bytes(b"".join(leaves))
    published = sorted(int(path.name) for path in (target / "checkpoints").iterdir())
    for size in published:
        (target / checkpoint_path(size)).unlink()
    for size in published:
        # A checkpoint that covered the dropped leaf now covers one leaf fewer.
        new_size = size if size <= index else size - 1
        body = Checkpoint(origin=signer.origin, size=new_size, root=tree.root(new_size))
        (target / checkpoint_path(new_size)).write_bytes(sign_checkpoint(body, signer))
    (target / CHECKPOINT_FILE).write_bytes((target / checkpoint_path(len(leaves))).read_bytes())
    reseal(target)
    return target
