"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys.

Key strings use Go's ``golang.org/x/mod/sumdb/note`` formats so that auditors can use its
tools: verifier key ``name+hex(keyID)+base64(0x01 || public key)`` and signer key
``PRIVATE+KEY+name+hex(keyID)+base64(0x01 || seed)``, with
``keyID = SHA-256(name || 0x0A || 0x01 || public key)[:4]``.

Parsing is strict and fails closed: besides the spec's rules it refuses non-canonical base64
and notes over :data:`MAX_NOTE_BYTES` or with more than :data:`MAX_SIGNATURES` signatures
(Go's limit). As the spec requires, signatures from unknown keys are ignored, a bad signature
from a known key rejects the whole note, and a note needs at least one verified signature.
"""

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from samleng.crypto.errors import KeyFormatError, KeyProblem, NoteFormatError, NoteSignatureError

ALG_ED25519 = 0x01
KEY_ID_SIZE = 4
ED25519_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
SIGNATURE_PREFIX = "— ".encode()  # em dash U+2014, space
MAX_SIGNATURES = 100
# Far above any checkpoint (a few hundred bytes) yet bounds the work an input can cause.
MAX_NOTE_BYTES = 1_000_000
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_HEX8 = re.compile(r"[0-9a-f]{8}")
_CONTROL = re.compile(rb"[\x00-\x09\x0b-\x1f]")


def is_valid_key_name(name: str) -> bool:
    """Return whether ``name`` may name a key: non-empty, no Unicode space, no ``+``.

    Go's rule, which the spec states; a ``str`` is always valid Unicode, and the UTF-8 check
    happens where bytes are decoded.
    """
    return bool(name) and "+" not in name and not any(ch.isspace() for ch in name)


def key_id(name: str, public_key: bytes, algorithm: int = ALG_ED25519) -> bytes:
    """Return the 4-byte key ID ``SHA-256(name || 0x0A || algorithm || key)[:4]``.

    The signed-note rule for every signature type: 0x01 for a log's Ed25519 key, 0x04 for a
    witness's cosignature key (samleng.crypto.cosignature).
    """
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([algorithm]) + public_key).digest()
    return digest[:KEY_ID_SIZE]


def b64decode_canonical(text: str) -> bytes:
    """Decode standard padded base64, accepting only its one canonical spelling (ValueError)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("not canonical base64")
    return raw


def _split_key_string(text: str, parts: int) -> list[str]:
    """Split a key string into ``parts`` fields at ``+``.

    Only the first ``parts - 1`` pluses separate fields: names and hex IDs have none, while
    the base64 key at the end may contain ``+``.
    """
    fields = text.split("+", parts - 1)
    if len(fields) != parts:
        raise KeyFormatError("key string has too few '+'-separated fields", KeyProblem.LAYOUT)
    return fields


@dataclass(frozen=True, kw_only=True)
class NoteVerifier:
    """An Ed25519 verifier key for signed notes."""

    name: str
    key_id: bytes
    public_key: bytes

    def __post_init__(self) -> None:
        """Refuse inconsistent fields (KeyFormatError)."""
        if not is_valid_key_name(self.name):
            raise KeyFormatError("key name is empty or contains a space or '+'", KeyProblem.NAME)
        if len(self.public_key) != ED25519_KEY_SIZE:
            raise KeyFormatError("Ed25519 public key must be 32 bytes", KeyProblem.KEY)
        if self.key_id != key_id(self.name, self.public_key):
            raise KeyFormatError(
                "key ID does not match the key name and public key", KeyProblem.MISMATCH
            )
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError:
            raise KeyFormatError("not an Ed25519 public key", KeyProblem.KEY) from None

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> "NoteVerifier":
        """Return the verifier for an Ed25519 ``public_key`` under key ``name``."""
        return cls(name=name, key_id=key_id(name, public_key), public_key=public_key)

    @property
    def vkey(self) -> str:
        """Return the verifier key string ``name+hex(keyID)+base64(0x01 || public key)``."""
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` is this key's Ed25519 signature of ``message``."""
        if len(signature) != ED25519_SIGNATURE_SIZE:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


def split_vkey(vkey: str) -> tuple[str, bytes, int, bytes]:
    """Split a verifier key string into name, key ID, signature type and key material.

    Checks the layout common to every signature type (a valid name, eight lower-case hex
    digits, canonical base64 holding at least the type byte); the caller checks the type and
    the key. KeyFormatError if the layout is wrong.
    """
    name, hex_id, encoded = _split_key_string(vkey, 3)
    if not is_valid_key_name(name):
        raise KeyFormatError("key name is empty or contains a space or '+'", KeyProblem.NAME)
    if not _HEX8.fullmatch(hex_id):
        raise KeyFormatError("key ID must be 8 lower-case hex digits", KeyProblem.KEY_ID)
    try:
        key = b64decode_canonical(encoded)
    except ValueError:
        raise KeyFormatError("verifier key is not canonical base64", KeyProblem.BASE64) from None
    if not key:
        raise KeyFormatError("verifier key has no signature type byte", KeyProblem.TYPE)
    return name, bytes.fromhex(hex_id), key[0], key[1:]


def parse_vkey(vkey: str) -> NoteVerifier:
    """Parse a verifier key string; KeyFormatError if it is malformed or inconsistent."""
    name, identifier, algorithm, public_key = split_vkey(vkey)
    if algorithm != ALG_ED25519:
        raise KeyFormatError("verifier key algorithm is not Ed25519 (0x01)", KeyProblem.TYPE)
    return NoteVerifier(name=name, key_id=identifier, public_key=public_key)


class NoteSigner:
    """An Ed25519 signing key for signed notes, made from a 32-byte seed.

    Its ``repr`` never shows the seed; :attr:`skey` does, on purpose, for key export only.
    """

    __slots__ = ("_key", "_seed", "name", "verifier")

    def __init__(self, *, name: str, seed: bytes) -> None:
        """Make the signer ``name`` from a 32-byte Ed25519 seed (ValueError if malformed)."""
        if not is_valid_key_name(name):
            raise ValueError("key name is empty or contains a space or '+'")
        if len(seed) != ED25519_KEY_SIZE:
            raise ValueError("Ed25519 seed must be 32 bytes")
        self._seed = bytes(seed)
        self._key = Ed25519PrivateKey.from_private_bytes(self._seed)
        self.name = name
        self.verifier = NoteVerifier.from_public_key(
            name, self._key.public_key().public_bytes_raw()
        )

    @classmethod
    def generate(cls, name: str) -> "NoteSigner":
        """Return a signer with a fresh random key."""
        return cls(name=name, seed=Ed25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def from_skey(cls, skey: str) -> "NoteSigner":
        """Parse Go's ``PRIVATE+KEY+name+hex(keyID)+base64(0x01 || seed)``; KeyFormatError."""
        if not skey.startswith(_PRIVATE_PREFIX):
            raise KeyFormatError("signer key does not start with PRIVATE+KEY+", KeyProblem.LAYOUT)
        name, hex_id, encoded = _split_key_string(skey[len(_PRIVATE_PREFIX) :], 3)
        if not _HEX8.fullmatch(hex_id):
            raise KeyFormatError("key ID must be 8 lower-case hex digits", KeyProblem.KEY_ID)
        try:
            key = b64decode_canonical(encoded)
        except ValueError:
            raise KeyFormatError("signer key is not canonical base64", KeyProblem.BASE64) from None
        if len(key) != 1 + ED25519_KEY_SIZE or key[0] != ALG_ED25519:
            raise KeyFormatError("signer key is not a 32-byte Ed25519 seed", KeyProblem.KEY)
        if not is_valid_key_name(name):
            raise KeyFormatError("key name is empty or contains a space or '+'", KeyProblem.NAME)
        signer = cls(name=name, seed=key[1:])
        if signer.key_id.hex() != hex_id:
            raise KeyFormatError(
                "key ID does not match the key name and public key", KeyProblem.MISMATCH
            )
        return signer

    def __repr__(self) -> str:
        """Show the public identity only."""
        return f"NoteSigner(name={self.name!r}, key_id={self.key_id.hex()})"

    @property
    def key_id(self) -> bytes:
        """Return the 4-byte key ID."""
        return self.verifier.key_id

    @property
    def vkey(self) -> str:
        """Return the verifier key string to publish."""
        return self.verifier.vkey

    @property
    def seed(self) -> bytes:
        """Return the 32-byte secret seed (for wrapping and storing it)."""
        return self._seed

    @property
    def skey(self) -> str:
        """Return the secret signer key string in Go's format."""
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self._seed).decode("ascii")
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id.hex()}+{encoded}"

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        return self._key.sign(message)


def _check_encoding(data: bytes) -> None:
    """Refuse bytes that are not UTF-8 or hold an ASCII control character other than newline."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteFormatError("note is not valid UTF-8") from None
    if _CONTROL.search(data):
        raise NoteFormatError("note contains a control character other than newline")


def _ends_with_signature_block(text: bytes) -> bool:
    """Return whether ``text`` already looks like a signed note (text, blank line, signatures)."""
    split = text.rfind(b"\n\n")
    if split < 0:
        return False
    lines = text[split + 2 :].split(b"\n")[:-1]
    return bool(lines) and all(line.startswith(SIGNATURE_PREFIX) for line in lines)


def sign_note(text: bytes, signer: NoteSigner) -> bytes:
    """Return ``text`` signed by ``signer`` as a signed note.

    ``text`` must be UTF-8, end in a newline, and not itself end in a signature block.
    """
    if not text.endswith(b"\n"):
        raise NoteFormatError("note text must end in a newline")
    _check_encoding(text)
    if len(text) > MAX_NOTE_BYTES // 2:
        raise NoteFormatError("note text is too long")
    if _ends_with_signature_block(text):
        raise NoteFormatError("note text already ends in a signature block")
    signature = base64.b64encode(signer.key_id + signer.sign(text))
    return text + b"\n" + SIGNATURE_PREFIX + signer.name.encode() + b" " + signature + b"\n"


@dataclass(frozen=True, kw_only=True)
class SignatureLine:
    """One signature line of a signed note, parsed but not verified."""

    name: str
    key_id: bytes
    signature: bytes  # what follows the key ID: the signature type's own encoding
    line: bytes  # the whole line, without its final newline


def split_signed_note(note: bytes) -> tuple[bytes, list[SignatureLine]]:
    """Split a signed note into its text and its parsed signature lines, verifying nothing.

    Applies every layout rule of the spec and this module's limits (size, encoding, at most
    :data:`MAX_SIGNATURES` lines, canonical base64); NoteFormatError if one fails.
    """
    if len(note) > MAX_NOTE_BYTES:
        raise NoteFormatError("note is too long")
    _check_encoding(note)
    split = note.rfind(b"\n\n")
    if split < 0:
        raise NoteFormatError("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith(b"\n"):
        raise NoteFormatError("note does not end with a signature line")
    lines = block[:-1].split(b"\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteFormatError(f"note has more than {MAX_SIGNATURES} signatures")
    return text, [parse_signature_line(line) for line in lines]


def parse_signature_line(line: bytes) -> SignatureLine:
    """Parse one signature line (without its newline); NoteFormatError if it is malformed."""
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteFormatError("signature line does not start with an em dash and a space")
    name_bytes, space, encoded = line[len(SIGNATURE_PREFIX) :].partition(b" ")
    try:
        name = name_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteFormatError("signature line's key name is not UTF-8") from None
    if not space or not is_valid_key_name(name):
        raise NoteFormatError("signature line has a malformed key name")
    try:
        raw = b64decode_canonical(encoded.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise NoteFormatError("signature is not canonical base64") from None
    if len(raw) <= KEY_ID_SIZE:
        raise NoteFormatError("signature is too short")
    return SignatureLine(
        name=name, key_id=raw[:KEY_ID_SIZE], signature=raw[KEY_ID_SIZE:], line=line
    )


def open_note(note: bytes, verifiers: Sequence[NoteVerifier]) -> tuple[bytes, list[str]]:
    """Verify a signed note, returning its text and the names of the keys that signed it.

    Raises NoteFormatError for a malformed note and NoteSignatureError when a known key's
    signature is invalid or no known key signed.
    """
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for verifier in verifiers:
        if (verifier.name, verifier.key_id) in known:
            # Two keys with one name and ID: the trust configuration itself is wrong.
            raise KeyFormatError(f"two verifier keys named {verifier.name} share a key ID")
        known[(verifier.name, verifier.key_id)] = verifier
    text, lines = split_signed_note(note)
    verified: list[str] = []
    for line in lines:
        signing_key = known.get((line.name, line.key_id))
        if signing_key is None:
            continue  # the spec: ignore signatures from unknown keys (e.g. witnesses)
        if not signing_key.verify(text, line.signature):
            raise NoteSignatureError(f"invalid signature by key {line.name}")
        if line.name not in verified:
            verified.append(line.name)
    if not verified:
        raise NoteSignatureError("note is not signed by any trusted key")
    return text, verified
