"""Tests for crypto.checkpoint: C2SP tlog-checkpoint bodies, signing and strict verification."""

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samleng.crypto.checkpoint import (
    Checkpoint,
    LogSigner,
    generate_log_signer,
    parse_checkpoint_body,
    sign_checkpoint,
    verify_checkpoint,
)
from samleng.crypto.errors import (
    CheckpointFormatError,
    KeyFormatError,
    NoteFormatError,
    NoteSignatureError,
    VerificationError,
)
from samleng.crypto.merkle import EMPTY_ROOT
from samleng.crypto.note import NoteSigner, sign_note

ORIGIN = "petitions.example.org/p/end-impunity"
ROOT = bytes(range(32))
ROOT_B64 = base64.b64encode(ROOT)


@pytest.fixture
def signer() -> LogSigner:
    return LogSigner(origin=ORIGIN, seed=bytes([7]) * 32)


def test_body_known_answer() -> None:
    checkpoint = Checkpoint(origin=ORIGIN, size=20852163, root=ROOT)
    assert checkpoint.body() == (
        b"petitions.example.org/p/end-impunity\n20852163\n"
        b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    )
    assert parse_checkpoint_body(checkpoint.body()) == checkpoint


def test_signed_checkpoint_layout(signer: LogSigner) -> None:
    checkpoint = Checkpoint(origin=ORIGIN, size=1, root=ROOT)
    note = sign_checkpoint(checkpoint, signer)
    body, sig = note.split(b"\n\n")
    assert body + b"\n" == checkpoint.body()
    assert sig.startswith("— petitions.example.org/p/end-impunity ".encode())
    assert len(base64.b64decode(sig.split(b" ")[-1])) == 4 + 64
    assert verify_checkpoint(note, signer.vkey) == checkpoint


@given(size=st.integers(min_value=0, max_value=2**63 - 1), root=st.binary(min_size=32, max_size=32))
def test_round_trip(size: int, root: bytes) -> None:
    checkpoint = Checkpoint(origin=ORIGIN, size=size, root=root)
    assert parse_checkpoint_body(checkpoint.body()) == checkpoint


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"origin\n",
        b"origin\n5\n",
        b"origin\n5\n" + ROOT_B64,  # no final newline
        b"origin\n5\n" + ROOT_B64 + b"\nextension line\n",  # extension lines: not ours
        b"origin\n5\n" + ROOT_B64 + b"\n\n",
        b"origin\n05\n" + ROOT_B64 + b"\n",
        b"origin\n00\n" + ROOT_B64 + b"\n",
        b"origin\n+5\n" + ROOT_B64 + b"\n",
        b"origin\n-5\n" + ROOT_B64 + b"\n",
        b"origin\n 5\n" + ROOT_B64 + b"\n",
        b"origin\n5_0\n" + ROOT_B64 + b"\n",
        "origin\n٥\n".encode() + ROOT_B64 + b"\n",  # Arabic-Indic digit five
        b"origin\n9223372036854775808\n" + ROOT_B64 + b"\n",  # 2**63
        b"origin\n\n" + ROOT_B64 + b"\n",
        b"\n5\n" + ROOT_B64 + b"\n",
        b"origin with space\n5\n" + ROOT_B64 + b"\n",
        b"origin+plus\n5\n" + ROOT_B64 + b"\n",
        b"origin\n5\n" + base64.b64encode(bytes(31)) + b"\n",
        b"origin\n5\n" + base64.b64encode(bytes(33)) + b"\n",
        b"origin\n5\n" + ROOT_B64.rstrip(b"=") + b"\n",
        b"origin\n5\n" + ROOT_B64[:-2] + b"9=\n",  # non-canonical trailing bits
        b"origin\n5\n" + base64.urlsafe_b64encode(bytes([0xFB]) * 32) + b"\n",
        b"\xff\n5\n" + ROOT_B64 + b"\n",
    ],
)
def test_parse_rejects(body: bytes) -> None:
    with pytest.raises(CheckpointFormatError):
        parse_checkpoint_body(body)


def test_size_zero_is_canonical() -> None:
    body = b"o\n0\n" + base64.b64encode(EMPTY_ROOT) + b"\n"
    assert parse_checkpoint_body(body).size == 0


def test_verify_rejects_other_key(signer: LogSigner) -> None:
    note = sign_checkpoint(Checkpoint(origin=ORIGIN, size=3, root=ROOT), signer)
    other = LogSigner(origin=ORIGIN, seed=bytes([8]) * 32)
    with pytest.raises(NoteSignatureError):
        verify_checkpoint(note, other.vkey)


def test_verify_rejects_key_name_that_is_not_the_origin() -> None:
    # A valid signature by a key named X over a checkpoint of origin Y is not Y's checkpoint.
    impostor = NoteSigner(name="evil.example/p/x", seed=bytes(32))
    note = sign_note(Checkpoint(origin=ORIGIN, size=3, root=ROOT).body(), impostor)
    with pytest.raises(CheckpointFormatError, match="not the key name"):
        verify_checkpoint(note, impostor.vkey)


def test_verify_rejects_tampered_size(signer: LogSigner) -> None:
    note = sign_checkpoint(Checkpoint(origin=ORIGIN, size=3, root=ROOT), signer)
    with pytest.raises(NoteSignatureError):
        verify_checkpoint(note.replace(b"\n3\n", b"\n4\n", 1), signer.vkey)


def test_verify_rejects_signed_extension_lines(signer: LogSigner) -> None:
    text = Checkpoint(origin=ORIGIN, size=3, root=ROOT).body() + b"extension\n"
    note = signer.sign(text)
    with pytest.raises(CheckpointFormatError, match="extension"):
        verify_checkpoint(note, signer.vkey)


def test_verify_rejects_bad_vkey_and_note(signer: LogSigner) -> None:
    note = sign_checkpoint(Checkpoint(origin=ORIGIN, size=3, root=ROOT), signer)
    with pytest.raises(KeyFormatError):
        verify_checkpoint(note, "not a key")
    with pytest.raises(NoteFormatError):
        verify_checkpoint(note.rstrip(b"\n"), signer.vkey)
    for error in (KeyFormatError, NoteFormatError, NoteSignatureError, CheckpointFormatError):
        assert issubclass(error, VerificationError)


def test_signer_only_signs_its_own_origin(signer: LogSigner) -> None:
    with pytest.raises(ValueError):
        sign_checkpoint(Checkpoint(origin="other.example/p/x", size=1, root=ROOT), signer)


def test_checkpoint_refuses_bad_values() -> None:
    with pytest.raises(ValueError):
        Checkpoint(origin="", size=1, root=ROOT)
    with pytest.raises(ValueError):
        Checkpoint(origin=ORIGIN, size=-1, root=ROOT)
    with pytest.raises(ValueError):
        Checkpoint(origin=ORIGIN, size=1, root=ROOT[:31])
    with pytest.raises(ValueError):
        Checkpoint(origin="a b", size=1, root=ROOT)


def test_generate_log_signer() -> None:
    seed, signer = generate_log_signer(ORIGIN)
    assert len(seed) == 32 and signer.seed == seed
    assert signer.origin == ORIGIN
    assert signer.vkey.startswith(ORIGIN + "+")
    assert LogSigner(origin=ORIGIN, seed=seed).vkey == signer.vkey
    assert seed.hex() not in repr(signer)
    assert generate_log_signer(ORIGIN)[0] != seed
