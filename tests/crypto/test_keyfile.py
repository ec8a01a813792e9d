"""The organiser key file: known answer, round trips and refusals."""

import base64
import unicodedata

import pytest
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from samleng.crypto.errors import KeyFileError, PassphraseError
from samleng.crypto.keyfile import (
    KEYFILE_ARGON2,
    KEYFILE_VERSION,
    generate_key_files,
    open_private_key,
    parse_key_file,
    public_key_file,
    seal_private_key,
)
from samleng.crypto.tokens import Argon2Params

CHEAP = Argon2Params(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = "correct horse battery staple"
PRIVATE = bytes(range(32))
KNOWN_FILE = (
    b"samleng-organiser-key/v1\n"
    b"argon2id: t=1 m=8 p=1\n"
    b"salt: EREREREREREREREREREREQ==\n"
    b"nonce: IiIiIiIiIiIiIiIi\n"
    b"public-key: j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8=\n"
    b"private-key: lrDlKiweTpVeJ7KbsWqy4Iw05PPXkAGtOpE9ZOkbwsBygO4hCofXyWv3sE8IVJOK\n"
)


def test_known_answer() -> None:
    made = seal_private_key(PRIVATE, PASSPHRASE, CHEAP, salt=b"\x11" * 16, nonce=b"\x22" * 12)
    assert made == KNOWN_FILE
    assert open_private_key(KNOWN_FILE, PASSPHRASE) == PRIVATE


def test_known_answer_from_the_documented_construction() -> None:
    """The module docstring's recipe, with the primitives called directly."""
    key = hash_secret_raw(PASSPHRASE.encode(), b"\x11" * 16, 1, 8, 1, 32, Type.ID)
    header = KNOWN_FILE[: KNOWN_FILE.index(b"private-key: ")]
    sealed = ChaCha20Poly1305(key).encrypt(b"\x22" * 12, PRIVATE, header)
    assert KNOWN_FILE.endswith(b"private-key: " + base64.b64encode(sealed) + b"\n")
    public = X25519PrivateKey.from_private_bytes(PRIVATE).public_key().public_bytes_raw()
    assert parse_key_file(KNOWN_FILE).public_key == public


def test_production_parameters_are_written_in_the_file() -> None:
    assert KEYFILE_ARGON2 == Argon2Params(time_cost=3, memory_kib=262144, parallelism=4)
    header = seal_private_key(PRIVATE, PASSPHRASE, CHEAP).split(b"\n")[:2]
    assert header == [KEYFILE_VERSION.encode(), b"argon2id: t=1 m=8 p=1"]


@settings(max_examples=25, deadline=None)
@given(
    private=st.binary(min_size=32, max_size=32),
    passphrase=st.text(min_size=12, max_size=40).filter(
        lambda p: len(unicodedata.normalize("NFC", p).strip()) >= 12
    ),
)
def test_round_trip(private: bytes, passphrase: str) -> None:
    data = seal_private_key(private, passphrase, CHEAP)
    assert parse_key_file(data).encode() == data
    assert open_private_key(data, passphrase) == private


def test_generated_pair_matches() -> None:
    private_file, public_file = generate_key_files(PASSPHRASE, CHEAP)
    private = open_private_key(private_file, PASSPHRASE)
    public = base64.b64decode(public_file.strip(), validate=True)
    assert public_file == public_key_file(public)
    assert X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw() == public


def test_two_files_of_one_key_differ() -> None:
    """Fresh salt and nonce each time."""
    assert seal_private_key(PRIVATE, PASSPHRASE, CHEAP) != seal_private_key(
        PRIVATE, PASSPHRASE, CHEAP
    )


def test_passphrase_is_normalised() -> None:
    composed = "ព្រះអាទិត្យរះ café au lait"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    data = seal_private_key(PRIVATE, composed, CHEAP)
    assert open_private_key(data, decomposed) == PRIVATE


def test_wrong_passphrase() -> None:
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        open_private_key(KNOWN_FILE, "correct horse battery stapler")


@pytest.mark.parametrize(
    ("line", "replacement"),
    [
        (b"argon2id: t=1 m=8 p=1", b"argon2id: t=2 m=8 p=1"),
        (b"salt: EREREREREREREREREREREQ==", b"salt: EREREREREREREREREREREg=="),
        (b"nonce: IiIiIiIiIiIiIiIi", b"nonce: IiIiIiIiIiIiIiIj"),
        (
            b"public-key: j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8=",
            b"public-key: " + base64.b64encode(bytes(32)),
        ),
        (b"lrDlKiweTpVeJ7Kb", b"lrDlKiweTpVeJ7Kc"),
    ],
)
def test_changed_file_does_not_open(line: bytes, replacement: bytes) -> None:
    changed = KNOWN_FILE.replace(line, replacement)
    assert changed != KNOWN_FILE
    with pytest.raises(PassphraseError):
        open_private_key(changed, PASSPHRASE)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "does not start with"),
        (KNOWN_FILE.replace(b"/v1", b"/v2"), "does not start with"),
        (KNOWN_FILE[:-1], "exactly six lines"),
        (KNOWN_FILE + b"\n", "exactly six lines"),
        (KNOWN_FILE.replace(b"salt: ", b"salt:"), "expected the line 'salt: ...'"),
        (KNOWN_FILE.replace(b"nonce: IiIi", b"nonce: I!Ii"), "'nonce' is not base64"),
        (KNOWN_FILE.replace(b"EREREREREREREREREREREQ==", b"ERERERERERERERERERERERE="), "16 bytes"),
        (KNOWN_FILE.replace(b"t=1 m=8", b"t=1 m=08"), "t=<n> m=<KiB> p=<n>"),
        (KNOWN_FILE.replace(b"t=1 m=8 p=1", b"t=1 m=8 p=2"), "at least 8 \\* parallelism"),
        (KNOWN_FILE.replace(b"t=1 m=8", b"t=1 m=99999999"), "beyond what this tool accepts"),
        (KNOWN_FILE.replace(b"t=1 ", b"t=999 "), "beyond what this tool accepts"),
        (KNOWN_FILE.replace(b"\n", b"\r\n"), "Windows line endings"),
        (KNOWN_FILE.replace(b"EQ==", b"ER=="), "not in canonical form"),
        ("samleng-organiser-key/v1\nسلام\n".encode(), "not ASCII"),
        (KNOWN_FILE * 10, "too large"),
    ],
)
def test_malformed_file_refused(data: bytes, message: str) -> None:
    with pytest.raises(KeyFileError, match=message) as raised:
        open_private_key(data, PASSPHRASE)
    assert not isinstance(raised.value, PassphraseError)


@pytest.mark.parametrize("passphrase", ["", "short", "  eleven    chars  "[:11], " " * 20])
def test_short_passphrase_refused(passphrase: str) -> None:
    with pytest.raises(ValueError, match="at least 12 characters"):
        seal_private_key(PRIVATE, passphrase, CHEAP)
    with pytest.raises(ValueError, match="at least 12 characters"):
        generate_key_files(passphrase, CHEAP)


def test_public_key_file_format() -> None:
    assert public_key_file(bytes(32)) == b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    with pytest.raises(ValueError):
        public_key_file(bytes(31))
