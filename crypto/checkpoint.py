"""C2SP tlog-checkpoint v1.0.0 checkpoints (https://c2sp.org/tlog-checkpoint) for Samleng logs.

The body is exactly ``origin\\nsize\\nbase64(root)\\n``, signed as a C2SP signed note by the
log's Ed25519 key whose key name is the origin (docs/formats.md §8).

Extension lines: the spec allows them, but Samleng never signs any, and this module only
verifies Samleng's own logs, so a body with a fourth line is rejected. Anything it would say
is not covered by the checks an auditor makes, and accepting it silently would let a
different log's checkpoint pass as ours.
"""

import base64
import binascii
import re
from dataclasses import dataclass

from samleng.crypto.canonical import encode_origin
from samleng.crypto.errors import CheckpointFormatError
from samleng.crypto.merkle import HASH_SIZE, MAX_TREE_SIZE
from samleng.crypto.note import NoteSigner, is_valid_key_name, open_note, parse_vkey, sign_note

_SIZE = re.compile(rb"0|[1-9][0-9]{0,18}")  # ASCII decimal, no leading zero, fits int64
_MAX_BODY_BYTES = 4096


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """A log's signed statement of its tree: origin, size and root hash."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        """Refuse values that cannot be written as a checkpoint (ValueError)."""
        encode_origin(self.origin)
        if not is_valid_key_name(self.origin):
            raise ValueError("origin must be usable as a key name")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise ValueError("tree size out of range")
        if len(self.root) != HASH_SIZE:
            raise ValueError("root must be a 32-byte hash")

    def body(self) -> bytes:
        """Return the note text ``origin\\nsize\\nbase64(root)\\n``."""
        root = base64.b64encode(self.root)
        return encode_origin(self.origin) + b"\n%d\n" % self.size + root + b"\n"


def parse_checkpoint_body(text: bytes) -> Checkpoint:
    """Parse a checkpoint note text strictly; CheckpointFormatError if it is not canonical."""
    if len(text) > _MAX_BODY_BYTES:
        raise CheckpointFormatError("checkpoint is too long")
    lines = text.split(b"\n")
    if len(lines) != 4 or lines[3] != b"":
        raise CheckpointFormatError(
            "checkpoint must be exactly three lines (origin, size, root), no extension lines"
        )
    origin_bytes, size_bytes, root_b64 = lines[:3]
    if not _SIZE.fullmatch(size_bytes):
        raise CheckpointFormatError("tree size is not a canonical decimal number")
    try:
        root = base64.b64decode(root_b64, validate=True)
    except binascii.Error:
        raise CheckpointFormatError("root hash is not base64") from None
    if len(root) != HASH_SIZE or base64.b64encode(root) != root_b64:
        raise CheckpointFormatError("root hash is not the canonical base64 of 32 bytes")
    try:
        return Checkpoint(origin=origin_bytes.decode("utf-8"), size=int(size_bytes), root=root)
    except (UnicodeDecodeError, ValueError) as err:
        raise CheckpointFormatError(f"checkpoint origin or size is not acceptable: {err}") from None


class LogSigner:
    """The signing key of one log (one petition): an Ed25519 key named after the origin.

    Made from the 32-byte seed that the service stores wrapped with its master key.
    """

    __slots__ = ("_signer",)

    def __init__(self, *, origin: str, seed: bytes) -> None:
        """Make the signer of the log ``origin`` from its 32-byte seed."""
        encode_origin(origin)
        self._signer = NoteSigner(name=origin, seed=seed)

    def __repr__(self) -> str:
        """Show the public identity only."""
        return f"LogSigner(origin={self.origin!r}, key_id={self._signer.key_id.hex()})"

    @property
    def origin(self) -> str:
        """Return the log's origin, which is also the key name."""
        return self._signer.name

    @property
    def vkey(self) -> str:
        """Return the verifier key string to publish in petition.json and the bundle."""
        return self._signer.vkey

    @property
    def seed(self) -> bytes:
        """Return the secret seed, for the service to wrap and store."""
        return self._signer.seed

    def sign(self, text: bytes) -> bytes:
        """Return ``text`` as a signed note (used by :func:`sign_checkpoint`)."""
        return sign_note(text, self._signer)


def generate_log_signer(origin: str) -> tuple[bytes, LogSigner]:
    """Return ``(seed, signer)`` for a new log; store the seed wrapped, publish ``signer.vkey``."""
    signer = NoteSigner.generate(origin)
    return signer.seed, LogSigner(origin=origin, seed=signer.seed)


def sign_checkpoint(checkpoint: Checkpoint, signer: LogSigner) -> bytes:
    """Return the signed note of ``checkpoint``; the signer's key name must be its origin."""
    if signer.origin != checkpoint.origin:
        raise ValueError("a log signs only checkpoints of its own origin")
    return signer.sign(checkpoint.body())


def verify_checkpoint(note: bytes, vkey: str) -> Checkpoint:
    """Verify a signed checkpoint against the log's verifier key and return it.

    The key name must equal the checkpoint's origin. Raises KeyFormatError, NoteFormatError,
    NoteSignatureError or CheckpointFormatError (all VerificationError).
    """
    verifier = parse_vkey(vkey)
    text, _names = open_note(note, [verifier])
    checkpoint = parse_checkpoint_body(text)
    if checkpoint.origin != verifier.name:
        raise CheckpointFormatError(
            f"checkpoint origin {checkpoint.origin!r} is not the key name {verifier.name!r}"
        )
    return checkpoint
