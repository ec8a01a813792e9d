"""The organisers' details key pair on disk: a passphrase-protected private key file.

The public key file is one line: base64 of the raw 32-byte X25519 key, then a newline (what
``samleng petition create --details-key`` reads). The private key file is UTF-8 text, exactly
six lines, each ending in a newline::

    samleng-organiser-key/v1
    argon2id: t=3 m=262144 p=4
    salt: <base64 of 16 random bytes>
    nonce: <base64 of 12 random bytes>
    public-key: <base64 of the raw 32-byte X25519 public key>
    private-key: <base64 of the 48-byte ChaCha20-Poly1305 ciphertext>

``key = Argon2id(password = UTF-8 of the NFC form of the passphrase, salt, t, m KiB, p, 32)``;
``private-key = ChaCha20-Poly1305(key).encrypt(nonce, raw private key, aad)`` where ``aad`` is
the first five lines exactly as written (so the parameters and the public key cannot be
changed without the passphrase check failing). Base64 is RFC 4648 with padding. Reading is
strict: a file must equal what this module would write for its values.
"""

import base64
import binascii
import re
import secrets
import unicodedata
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from samleng.crypto.errors import KeyFileError, PassphraseError
from samleng.crypto.tokens import Argon2Params

KEYFILE_VERSION = "samleng-organiser-key/v1"
# RFC 9106 §4's memory-constrained option made four times heavier (m = 256 MiB): the file
# protects every signer's details, is opened rarely and on the organisers' own machine.
KEYFILE_ARGON2 = Argon2Params(time_cost=3, memory_kib=262144, parallelism=4)
MIN_PASSPHRASE_CHARS = 12
KEY_BYTES = 32
SALT_BYTES = 16
NONCE_BYTES = 12
# Bounds on what a key file may ask of the KDF, so a damaged or hostile file cannot make
# opening it take hours or all the memory of the machine.
MAX_TIME_COST = 64
MAX_MEMORY_KIB = 4 << 20  # 4 GiB
MAX_PARALLELISM = 64
MAX_KEYFILE_BYTES = 1024

_SEALED_BYTES = KEY_BYTES + 16
_PARAMS = re.compile(r"t=([1-9][0-9]{0,9}) m=([1-9][0-9]{0,9}) p=([1-9][0-9]{0,9})")


@dataclass(frozen=True, kw_only=True)
class OrganiserKeyFile:
    """The parsed contents of a private key file (the private key still sealed)."""

    params: Argon2Params
    salt: bytes
    nonce: bytes
    public_key: bytes
    sealed_private_key: bytes

    def header(self) -> bytes:
        """Return the first five lines, the AAD of the sealed private key."""
        p = self.params
        lines = (
            KEYFILE_VERSION,
            f"argon2id: t={p.time_cost} m={p.memory_kib} p={p.parallelism}",
            f"salt: {_b64(self.salt)}",
            f"nonce: {_b64(self.nonce)}",
            f"public-key: {_b64(self.public_key)}",
        )
        return "".join(line + "\n" for line in lines).encode("ascii")

    def encode(self) -> bytes:
        """Return the file's bytes."""
        return self.header() + f"private-key: {_b64(self.sealed_private_key)}\n".encode("ascii")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _passphrase_key(passphrase: str, salt: bytes, params: Argon2Params) -> bytes:
    """Derive the file key from the passphrase (NFC, so any keyboard's input of it works)."""
    return hash_secret_raw(
        secret=unicodedata.normalize("NFC", passphrase).encode("utf-8"),
        salt=salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=KEY_BYTES,
        type=Type.ID,
    )


def check_passphrase(passphrase: str) -> None:
    """Refuse a passphrase too short to protect the key (ValueError, with the reason)."""
    if len(unicodedata.normalize("NFC", passphrase).strip()) < MIN_PASSPHRASE_CHARS:
        raise ValueError(
            f"the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters; "
            "several random words are best"
        )


def seal_private_key(
    private_key: bytes,
    passphrase: str,
    params: Argon2Params = KEYFILE_ARGON2,
    *,
    salt: bytes | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """Return the private key file protecting the raw X25519 ``private_key``.

    ``salt`` and ``nonce`` are fresh random values unless given (for known-answer tests only).
    ValueError for a short passphrase or a malformed key.
    """
    check_passphrase(passphrase)
    if len(private_key) != KEY_BYTES:
        raise ValueError(f"the private key must be {KEY_BYTES} bytes")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    nonce = secrets.token_bytes(NONCE_BYTES) if nonce is None else nonce
    if len(salt) != SALT_BYTES or len(nonce) != NONCE_BYTES:
        raise ValueError("wrong salt or nonce length")
    public_key = X25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes_raw()
    unsealed = OrganiserKeyFile(
        params=params, salt=salt, nonce=nonce, public_key=public_key, sealed_private_key=b""
    )
    key = _passphrase_key(passphrase, salt, params)
    sealed = ChaCha20Poly1305(key).encrypt(nonce, private_key, unsealed.header())
    return OrganiserKeyFile(
        params=params, salt=salt, nonce=nonce, public_key=public_key, sealed_private_key=sealed
    ).encode()


def _field_text(line: str, name: str) -> str:
    """Return the value of a ``name: value`` line."""
    prefix = f"{name}: "
    if not line.startswith(prefix):
        raise KeyFileError(f"expected the line '{name}: ...'")
    return line[len(prefix) :]


def _field_bytes(line: str, name: str, size: int) -> bytes:
    """Return the base64-decoded value of a ``name: value`` line, of exactly ``size`` bytes."""
    try:
        raw = base64.b64decode(_field_text(line, name), validate=True)
    except binascii.Error:
        raise KeyFileError(f"'{name}' is not base64") from None
    if len(raw) != size:
        raise KeyFileError(f"'{name}' must be {size} bytes")
    return raw


def parse_key_file(data: bytes) -> OrganiserKeyFile:
    """Parse a private key file strictly; KeyFileError (saying what is wrong) otherwise."""
    if len(data) > MAX_KEYFILE_BYTES:
        raise KeyFileError("the file is too large to be an organiser key file")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError("the file is not an organiser key file (not ASCII text)") from None
    if "\r" in text:
        raise KeyFileError("the file has Windows line endings (CRLF); it must use LF only")
    lines = text.split("\n")
    if lines[0] != KEYFILE_VERSION:
        raise KeyFileError(f"the file does not start with '{KEYFILE_VERSION}'")
    if len(lines) != 7 or lines[-1] != "":
        raise KeyFileError("the file must have exactly six lines, each ending in a newline")
    match = _PARAMS.fullmatch(_field_text(lines[1], "argon2id"))
    if not match:
        raise KeyFileError("'argon2id' must read 't=<n> m=<KiB> p=<n>'")
    t, m, p = (int(v) for v in match.groups())
    if t > MAX_TIME_COST or m > MAX_MEMORY_KIB or p > MAX_PARALLELISM:
        raise KeyFileError("the Argon2id parameters are beyond what this tool accepts")
    try:
        params = Argon2Params(time_cost=t, memory_kib=m, parallelism=p)
    except ValueError as err:
        raise KeyFileError(str(err)) from None
    parsed = OrganiserKeyFile(
        params=params,
        salt=_field_bytes(lines[2], "salt", SALT_BYTES),
        nonce=_field_bytes(lines[3], "nonce", NONCE_BYTES),
        public_key=_field_bytes(lines[4], "public-key", KEY_BYTES),
        sealed_private_key=_field_bytes(lines[5], "private-key", _SEALED_BYTES),
    )
    if parsed.encode() != data:
        raise KeyFileError("the file is not in canonical form")
    return parsed


def open_private_key(data: bytes, passphrase: str) -> bytes:
    """Return the raw X25519 private key of a key file.

    KeyFileError for a malformed file; PassphraseError when the passphrase is wrong or the
    file was changed.
    """
    parsed = parse_key_file(data)
    key = _passphrase_key(passphrase, parsed.salt, parsed.params)
    try:
        private_key = ChaCha20Poly1305(key).decrypt(
            parsed.nonce, parsed.sealed_private_key, parsed.header()
        )
    except InvalidTag:
        raise PassphraseError("wrong passphrase, or the key file was changed") from None
    derived = X25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes_raw()
    if derived != parsed.public_key:
        raise KeyFileError("the private key does not match the file's public key")
    return private_key


def public_key_file(public_key: bytes) -> bytes:
    """Return the public key file: base64 of the raw 32-byte key and a newline."""
    if len(public_key) != KEY_BYTES:
        raise ValueError(f"the public key must be {KEY_BYTES} bytes")
    return (_b64(public_key) + "\n").encode("ascii")


def generate_key_files(
    passphrase: str, params: Argon2Params = KEYFILE_ARGON2
) -> tuple[bytes, bytes]:
    """Return ``(private key file, public key file)`` for a fresh X25519 key pair."""
    check_passphrase(passphrase)
    private = X25519PrivateKey.generate()
    return (
        seal_private_key(private.private_bytes_raw(), passphrase, params),
        public_key_file(private.public_key().public_bytes_raw()),
    )
