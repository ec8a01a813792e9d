"""C2SP tlog-proof@v1 files (https://c2sp.org/tlog-proof): a signer's offline receipt proof.

docs/formats.md §9 (normative)::

    c2sp.org/tlog-proof@v1
    extra <base64(kind || r || d)>
    index <i>
    <base64 hash, one per line: the inclusion proof from the leaf's sibling upwards>

    <signed checkpoint, verbatim>

The extra data holds what the verifier needs to rebuild the signer's leaf: its kind, the
receipt secret ``r`` (from which ``c`` is recomputed with the checkpoint's origin) and the
details hash ``d``. It is not trusted: a wrong value simply yields a leaf that is not in the
tree.
"""

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from samleng.crypto.checkpoint import verify_checkpoint
from samleng.crypto.errors import ProofFormatError
from samleng.crypto.leaf import HASH_SIZE, LeafKind, encode_leaf, is_signature
from samleng.crypto.merkle import MAX_PROOF_LENGTH, leaf_hash, verify_inclusion
from samleng.crypto.note import MAX_NOTE_BYTES
from samleng.crypto.receipts import RECEIPT_BYTES, receipt_commitment

PROOF_HEADER = b"c2sp.org/tlog-proof@v1"
EXTRA_SIZE = 1 + RECEIPT_BYTES + HASH_SIZE  # kind || r || d
_INDEX = re.compile(rb"0|[1-9][0-9]{0,18}")
_HASH_LINE = re.compile(rb"[A-Za-z0-9+/]{43}=")
_MAX_PROOF_BYTES = MAX_NOTE_BYTES + 8192


@dataclass(frozen=True, kw_only=True)
class TlogProof:
    """A parsed tlog-proof: optional extra data, leaf index, inclusion path, checkpoint note."""

    extra: bytes | None
    index: int
    path: tuple[bytes, ...]
    checkpoint: bytes


@dataclass(frozen=True, kw_only=True)
class ReceiptCheck:
    """What a verified receipt proves: leaf ``index`` (these 81 bytes, of kind ``kind``) is in
    the tree of ``size`` leaves with ``root`` that the log ``origin`` signed."""

    origin: str
    index: int
    size: int
    kind: LeafKind
    root: bytes
    leaf: bytes


def encode_receipt_extra(kind: LeafKind, r: bytes, d: bytes) -> bytes:
    """Return the extra data of a signer's proof: ``kind || r || d`` (49 bytes)."""
    if not is_signature(kind) or len(r) != RECEIPT_BYTES or len(d) != HASH_SIZE:
        raise ValueError("receipt extra needs a signature kind, a 16-byte r and a 32-byte d")
    return bytes([kind]) + r + d


def format_proof(
    *, extra: bytes | None, index: int, path: Sequence[bytes], checkpoint: bytes
) -> bytes:
    """Return a tlog-proof file; ``checkpoint`` is the signed checkpoint note, verbatim."""
    if index < 0 or len(path) > MAX_PROOF_LENGTH or any(len(h) != HASH_SIZE for h in path):
        raise ValueError("invalid index or inclusion path")
    lines = [PROOF_HEADER]
    if extra is not None:
        lines.append(b"extra " + base64.b64encode(extra))
    lines.append(b"index %d" % index)
    lines.extend(base64.b64encode(h) for h in path)
    return b"\n".join(lines) + b"\n\n" + checkpoint


def parse_proof(data: bytes) -> TlogProof:
    """Parse a tlog-proof strictly (canonical numbers and base64); ProofFormatError if not."""
    if len(data) > _MAX_PROOF_BYTES:
        raise ProofFormatError("proof file is too long")
    header, sep, rest = data.partition(b"\n")
    if header != PROOF_HEADER or not sep:
        raise ProofFormatError("proof does not start with c2sp.org/tlog-proof@v1")
    line, _, rest = rest.partition(b"\n")
    extra: bytes | None = None
    if line.startswith(b"extra "):
        encoded = line[len(b"extra ") :]
        try:
            extra = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ProofFormatError("extra data is not base64") from None
        if base64.b64encode(extra) != encoded:
            raise ProofFormatError("extra data is not canonical base64")
        line, _, rest = rest.partition(b"\n")
    if not line.startswith(b"index ") or not _INDEX.fullmatch(line[len(b"index ") :]):
        raise ProofFormatError("proof has no canonical 'index <n>' line")
    index = int(line[len(b"index ") :])
    path: list[bytes] = []
    while True:
        line, sep, rest = rest.partition(b"\n")
        if not sep:
            raise ProofFormatError("proof has no blank line before the checkpoint")
        if not line:
            break
        if len(path) == MAX_PROOF_LENGTH or not _HASH_LINE.fullmatch(line):
            raise ProofFormatError("inclusion proof line is not the base64 of a 32-byte hash")
        decoded = base64.b64decode(line, validate=True)
        if base64.b64encode(decoded) != line:
            raise ProofFormatError("inclusion proof line is not canonical base64")
        path.append(decoded)
    if not rest:
        raise ProofFormatError("proof has no checkpoint")
    return TlogProof(extra=extra, index=index, path=tuple(path), checkpoint=rest)


def verify_receipt(proof: bytes, vkey: str) -> ReceiptCheck:
    """Verify a signer's receipt proof against the log's verifier key.

    Checks the checkpoint's signature (key name = origin), rebuilds the leaf from the extra
    data with ``c = receipt_commitment(origin, r)``, and checks its inclusion. Raises a
    VerificationError subclass naming the failed step.
    """
    parsed = parse_proof(proof)
    checkpoint = verify_checkpoint(parsed.checkpoint, vkey)
    if parsed.extra is None or len(parsed.extra) != EXTRA_SIZE:
        raise ProofFormatError(f"receipt proof extra data must be {EXTRA_SIZE} bytes")
    kind_byte, r, d = parsed.extra[0], parsed.extra[1 : 1 + RECEIPT_BYTES], parsed.extra[-32:]
    if not is_signature(kind_byte):
        raise ProofFormatError(f"receipt proof is for leaf kind 0x{kind_byte:02x}, not a signature")
    kind = LeafKind(kind_byte)
    leaf = encode_leaf(kind, receipt_commitment(checkpoint.origin, r), d)
    verify_inclusion(leaf_hash(leaf), parsed.index, checkpoint.size, parsed.path, checkpoint.root)
    return ReceiptCheck(
        origin=checkpoint.origin,
        index=parsed.index,
        size=checkpoint.size,
        kind=kind,
        root=checkpoint.root,
        leaf=leaf,
    )
