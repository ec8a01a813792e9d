"""C2SP tlog-cosignature v1 (https://c2sp.org/tlog-cosignature): Ed25519 witness cosignatures.

A witness that has checked a checkpoint extends every earlier one it saw adds a signature line
to the checkpoint's signed note (docs/formats.md §20)::

    — <witness name> base64(key ID || u64be(timestamp) || Ed25519 signature)

The key ID is the signed-note rule with signature type 0x04,
``SHA-256(name || 0x0A || 0x04 || public key)[:4]``, and the verifier key (vkey) is
``name+hex(key ID)+base64(0x04 || public key)``. The Ed25519 signature is over::

    cosignature/v1\\n
    time <timestamp in decimal>\\n
    <the checkpoint's note text, final newline included>

Verification follows signed-note: lines from keys not given are ignored, and a line from a given
key that does not verify is an error (CosignatureError), never silently dropped.
"""

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from samleng.crypto.checkpoint import Checkpoint, verify_checkpoint
from samleng.crypto.errors import CosignatureError, KeyFormatError, KeyProblem, NoteFormatError
from samleng.crypto.note import (
    ED25519_KEY_SIZE,
    ED25519_SIGNATURE_SIZE,
    MAX_SIGNATURES,
    SIGNATURE_PREFIX,
    SignatureLine,
    is_valid_key_name,
    key_id,
    parse_signature_line,
    split_signed_note,
    split_vkey,
)

ALG_COSIGNATURE_V1 = 0x04
COSIGNATURE_LABEL = b"cosignature/v1\n"
TIMESTAMP_SIZE = 8
COSIGNATURE_SIZE = TIMESTAMP_SIZE + ED25519_SIGNATURE_SIZE
MAX_TIMESTAMP = 2**63 - 1  # the spec's bound: a timestamp is a signed 64-bit number elsewhere


def cosignature_message(text: bytes, timestamp: int) -> bytes:
    """Return the message a v1 cosignature signs: label, ``time <T>`` line, then the note text."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError(f"timestamp {timestamp} out of range")
    if not text.endswith(b"\n"):
        raise ValueError("note text must end in a newline")
    return COSIGNATURE_LABEL + b"time %d\n" % timestamp + text


@dataclass(frozen=True, kw_only=True)
class WitnessVerifier:
    """A witness's Ed25519 cosignature key (signature type 0x04) under the witness's name."""

    name: str
    key_id: bytes
    public_key: bytes

    def __post_init__(self) -> None:
        """Refuse inconsistent fields (KeyFormatError)."""
        if not is_valid_key_name(self.name):
            raise KeyFormatError(
                "witness name is empty or contains a space or '+'", KeyProblem.NAME
            )
        if len(self.public_key) != ED25519_KEY_SIZE:
            raise KeyFormatError("Ed25519 public key must be 32 bytes", KeyProblem.KEY)
        if self.key_id != key_id(self.name, self.public_key, ALG_COSIGNATURE_V1):
            raise KeyFormatError(
                "key ID does not match the witness name and public key", KeyProblem.MISMATCH
            )
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError:
            raise KeyFormatError("not an Ed25519 public key", KeyProblem.KEY) from None

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> "WitnessVerifier":
        """Return the cosignature verifier for an Ed25519 ``public_key`` named ``name``."""
        identifier = key_id(name, public_key, ALG_COSIGNATURE_V1)
        return cls(name=name, key_id=identifier, public_key=public_key)

    @property
    def vkey(self) -> str:
        """Return the verifier key string ``name+hex(keyID)+base64(0x04 || public key)``."""
        encoded = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, text: bytes, signature: bytes) -> int | None:
        """Return the timestamp if ``signature`` (after the key ID) cosigns ``text``, else None."""
        if len(signature) != COSIGNATURE_SIZE:
            return None
        timestamp = int.from_bytes(signature[:TIMESTAMP_SIZE], "big")
        if timestamp > MAX_TIMESTAMP:
            return None
        message = cosignature_message(text, timestamp)
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                signature[TIMESTAMP_SIZE:], message
            )
        except (InvalidSignature, ValueError):
            return None
        return timestamp


def parse_witness_vkey(vkey: str) -> WitnessVerifier:
    """Parse a witness verifier key (type 0x04); KeyFormatError if malformed or another type."""
    name, identifier, algorithm, public_key = split_vkey(vkey)
    if algorithm != ALG_COSIGNATURE_V1:
        raise KeyFormatError(
            f"witness key has signature type 0x{algorithm:02x}, not 0x04 "
            "(an Ed25519 tlog-cosignature/v1 key)",
            KeyProblem.TYPE,
        )
    return WitnessVerifier(name=name, key_id=identifier, public_key=public_key)


class CosignatureSigner:
    """A witness's Ed25519 cosigning key, from a 32-byte seed: for tests and worked examples.

    Samleng never cosigns its own logs; this is what a witness does, written here so that the
    verifier can be tested against signatures made independently of the witnesses it talks to.
    """

    __slots__ = ("_key", "verifier")

    def __init__(self, *, name: str, seed: bytes) -> None:
        """Make the cosigner ``name`` from a 32-byte Ed25519 seed (ValueError if malformed)."""
        if not is_valid_key_name(name):
            raise ValueError("witness name is empty or contains a space or '+'")
        if len(seed) != ED25519_KEY_SIZE:
            raise ValueError("Ed25519 seed must be 32 bytes")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        public_key = self._key.public_key().public_bytes_raw()
        self.verifier = WitnessVerifier.from_public_key(name, public_key)

    def __repr__(self) -> str:
        """Show the public identity only."""
        return f"CosignatureSigner(name={self.verifier.name!r})"

    def cosign(self, text: bytes, timestamp: int) -> bytes:
        """Return the signature line (ending in a newline) cosigning ``text`` at ``timestamp``."""
        signature = self._key.sign(cosignature_message(text, timestamp))
        raw = self.verifier.key_id + timestamp.to_bytes(TIMESTAMP_SIZE, "big") + signature
        name = self.verifier.name.encode()
        return SIGNATURE_PREFIX + name + b" " + base64.b64encode(raw) + b"\n"


@dataclass(frozen=True, kw_only=True)
class Cosignature:
    """A verified cosignature line: which witness, and when it says it cosigned."""

    witness: str
    key_id: bytes
    timestamp: int
    line: bytes  # the signature line, without its final newline


def cosignature_timestamp(line: SignatureLine) -> int:
    """Return the timestamp a cosignature line claims, unverified; CosignatureError if none."""
    if len(line.signature) != COSIGNATURE_SIZE:
        raise CosignatureError(
            f"cosignature by {line.name} is {len(line.signature)} bytes after its key ID, "
            f"not {COSIGNATURE_SIZE} (timestamp and Ed25519 signature)"
        )
    timestamp = int.from_bytes(line.signature[:TIMESTAMP_SIZE], "big")
    if timestamp > MAX_TIMESTAMP:
        raise CosignatureError(f"cosignature by {line.name} has a timestamp beyond 2^63 - 1")
    return timestamp


def _index(witnesses: Sequence[WitnessVerifier]) -> dict[tuple[str, bytes], WitnessVerifier]:
    """Index witness keys by (name, key ID), refusing two keys that share both."""
    known: dict[tuple[str, bytes], WitnessVerifier] = {}
    for witness in witnesses:
        if (witness.name, witness.key_id) in known:
            raise KeyFormatError(f"two witness keys named {witness.name} share a key ID")
        known[(witness.name, witness.key_id)] = witness
    return known


def verify_cosignatures(note: bytes, witnesses: Sequence[WitnessVerifier]) -> list[Cosignature]:
    """Return the cosignatures on a signed note made by the given witness keys, each verified.

    Lines from other keys (the log's own signature, unknown witnesses) are ignored. Raises
    NoteFormatError for a malformed note, CosignatureError when a given key's line does not
    verify. The log's signature is not checked here: see :func:`verify_cosigned_checkpoint`.
    """
    known = _index(witnesses)
    text, lines = split_signed_note(note)
    found: list[Cosignature] = []
    for line in lines:
        witness = known.get((line.name, line.key_id))
        if witness is None:
            continue
        timestamp = witness.verify(text, line.signature)
        if timestamp is None:
            raise CosignatureError(f"invalid cosignature by witness {line.name}")
        found.append(
            Cosignature(witness=line.name, key_id=line.key_id, timestamp=timestamp, line=line.line)
        )
    return found


@dataclass(frozen=True, kw_only=True)
class CosignedCheckpoint:
    """A checkpoint verified with the log's key, and the witnesses' verified cosignatures on it."""

    checkpoint: Checkpoint
    cosignatures: tuple[Cosignature, ...]

    @property
    def witnesses(self) -> frozenset[str]:
        """Return the names of the witnesses that cosigned."""
        return frozenset(c.witness for c in self.cosignatures)


def verify_cosigned_checkpoint(
    note: bytes, log_vkey: str, witnesses: Sequence[WitnessVerifier]
) -> CosignedCheckpoint:
    """Verify a checkpoint's log signature (docs/formats.md §8) and its witnesses' cosignatures."""
    checkpoint = verify_checkpoint(note, log_vkey)
    cosignatures = verify_cosignatures(note, witnesses)
    return CosignedCheckpoint(checkpoint=checkpoint, cosignatures=tuple(cosignatures))


def parse_signature_block(block: bytes) -> list[SignatureLine]:
    """Parse signature lines, each ending in a newline (a witness's answer); NoteFormatError."""
    if not block or not block.endswith(b"\n"):
        raise NoteFormatError("signature lines must be present and each end in a newline")
    lines = block[:-1].split(b"\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteFormatError(f"more than {MAX_SIGNATURES} signature lines")
    try:
        block.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteFormatError("signature lines are not UTF-8") from None
    return [parse_signature_line(line) for line in lines]


def add_cosignatures(note: bytes, block: bytes) -> bytes:
    """Return ``note`` with the signature lines of ``block`` appended, skipping ones it has.

    ``block`` is one or more signature lines each ending in a newline, as a witness returns
    them. Nothing is verified: verify the result (or the lines) with the witnesses' keys.
    Raises NoteFormatError if either is malformed or the note would pass 100 signatures.
    """
    _text, present = split_signed_note(note)
    have = {line.line for line in present}
    added = [line for line in parse_signature_block(block) if line.line not in have]
    fresh: list[bytes] = []
    for line in added:
        if line.line not in fresh:
            fresh.append(line.line)
    if len(present) + len(fresh) > MAX_SIGNATURES:
        raise NoteFormatError(f"the note would carry more than {MAX_SIGNATURES} signatures")
    result = note + b"".join(line + b"\n" for line in fresh)
    split_signed_note(result)  # still one well-formed note (size and encoding limits)
    return result
