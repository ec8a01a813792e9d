"""C2SP tlog-cosignature v1: witness keys, the signed message, verification, adding lines.

The message and key ID are recomputed here from the spec's text with the cryptography package
alone; tests/interop checks the same against litewitness, omniwitness and torchwood.
"""

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from samleng.crypto.checkpoint import verify_checkpoint
from samleng.crypto.cosignature import (
    ALG_COSIGNATURE_V1,
    CosignatureSigner,
    WitnessVerifier,
    add_cosignatures,
    cosignature_message,
    cosignature_timestamp,
    parse_signature_block,
    parse_witness_vkey,
    verify_cosignatures,
    verify_cosigned_checkpoint,
)
from samleng.crypto.errors import CosignatureError, KeyFormatError, KeyProblem, NoteFormatError
from samleng.crypto.note import MAX_SIGNATURES, parse_signature_line, parse_vkey
from tests.crypto.logfactory import WITNESS_TIME, make_cosigners, make_log

LOG = make_log(5)
NOTE = LOG.checkpoint()
TEXT = NOTE[: NOTE.rfind(b"\n\n") + 1]
W1, W2, W3 = make_cosigners(3)


def test_message_is_the_spec_text() -> None:
    # tlog-cosignature: "cosignature/v1", "time <T>" (decimal, no leading zeros), the note text.
    body = b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    assert cosignature_message(body, 1679315147) == b"cosignature/v1\ntime 1679315147\n" + body
    assert cosignature_message(body, 0).startswith(b"cosignature/v1\ntime 0\n")
    for bad in (-1, 2**63):
        with pytest.raises(ValueError):
            cosignature_message(body, bad)
    with pytest.raises(ValueError):
        cosignature_message(body[:-1], 5)


def test_key_id_and_vkey_follow_the_spec() -> None:
    seed = bytes(range(32))
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    signer = CosignatureSigner(name="witness.example/w1", seed=seed)
    key_id = hashlib.sha256(b"witness.example/w1\n\x04" + public).digest()[:4]
    assert signer.verifier.key_id == key_id
    encoded = base64.b64encode(b"\x04" + public).decode()
    assert signer.verifier.vkey == f"witness.example/w1+{key_id.hex()}+{encoded}"
    assert parse_witness_vkey(signer.verifier.vkey) == signer.verifier


def test_a_cosignature_line_is_key_id_time_and_signature() -> None:
    line = W1.cosign(TEXT, 1_700_000_000)
    assert line.startswith("— witness-1.example/w ".encode()) and line.endswith(b"\n")
    raw = base64.b64decode(line.rsplit(b" ", 1)[1])
    assert raw[:4] == W1.verifier.key_id
    assert int.from_bytes(raw[4:12], "big") == 1_700_000_000
    message = b"cosignature/v1\ntime 1700000000\n" + TEXT
    W1._key.public_key().verify(raw[12:], message)  # raises if not a signature of the message
    assert len(raw) == 4 + 8 + 64
    assert cosignature_timestamp(parse_signature_line(line[:-1])) == 1_700_000_000


_VKEY = W1.verifier.vkey
_NAME, _ID, _KEY = _VKEY.split("+", 2)


@pytest.mark.parametrize(
    ("vkey", "message", "problem"),
    [
        # a log's checkpoint key is not a witness key
        (LOG.signer.vkey, "type 0x01, not 0x04", KeyProblem.TYPE),
        (f"{_NAME}+00000000+{_KEY}", "key ID does not match", KeyProblem.MISMATCH),
        (f"{_NAME}+{_ID}+BA==", "32 bytes", KeyProblem.KEY),
        (f"a b+{_ID}+{_KEY}", "name", KeyProblem.NAME),
        (f"{_NAME}+{_ID.upper()}+{_KEY}", "8 lower-case hex", KeyProblem.KEY_ID),
        (f"{_NAME}+{_ID}+{_KEY}=", "canonical base64", KeyProblem.BASE64),
        (f"{_NAME}+{_ID}", "too few", KeyProblem.LAYOUT),
        (f"{_NAME}+{_ID}+", "no signature type", KeyProblem.TYPE),
    ],
)
def test_witness_vkeys_are_refused_when_malformed(
    vkey: str, message: str, problem: KeyProblem
) -> None:
    """Each refusal says what is wrong in English, and names the part for a caller that says
    it in another language (the admin, in Khmer)."""
    with pytest.raises(KeyFormatError, match=message) as refused:
        parse_witness_vkey(vkey)
    assert refused.value.problem is problem


def test_a_witness_key_is_not_a_log_key() -> None:
    with pytest.raises(KeyFormatError, match="Ed25519 \\(0x01\\)"):
        parse_vkey(W1.verifier.vkey)
    assert ALG_COSIGNATURE_V1 == 4


def test_verify_cosignatures_and_timestamps() -> None:
    note = add_cosignatures(NOTE, W1.cosign(TEXT, 10) + W2.cosign(TEXT, 20))
    found = verify_cosignatures(note, [W1.verifier, W2.verifier, W3.verifier])
    assert [(c.witness, c.timestamp) for c in found] == [
        ("witness-1.example/w", 10),
        ("witness-2.example/w", 20),
    ]
    # The log's own line and unknown witnesses are ignored.
    assert verify_cosignatures(note, [W3.verifier]) == []
    assert verify_checkpoint(note, LOG.signer.vkey) == verify_checkpoint(NOTE, LOG.signer.vkey)
    cosigned = verify_cosigned_checkpoint(note, LOG.signer.vkey, [W1.verifier])
    assert cosigned.witnesses == {"witness-1.example/w"}
    assert cosigned.checkpoint.size == LOG.size


def test_a_bad_cosignature_by_a_known_witness_rejects_the_note() -> None:
    other = LOG.checkpoint(3)
    other_text = other[: other.rfind(b"\n\n") + 1]
    # W1's cosignature of another checkpoint, copied onto this one (what a forger could try).
    note = add_cosignatures(NOTE, W1.cosign(other_text, 10))
    with pytest.raises(CosignatureError, match="invalid cosignature by witness witness-1"):
        verify_cosignatures(note, [W1.verifier])
    assert verify_cosignatures(note, [W2.verifier]) == []  # unknown to this verifier: ignored


def test_a_timestamp_changed_after_signing_fails() -> None:
    line = W1.cosign(TEXT, 10)
    raw = bytearray(base64.b64decode(line.rsplit(b" ", 1)[1]))
    raw[11] ^= 1
    forged = line.rsplit(b" ", 1)[0] + b" " + base64.b64encode(bytes(raw)) + b"\n"
    with pytest.raises(CosignatureError):
        verify_cosignatures(add_cosignatures(NOTE, forged), [W1.verifier])


def test_a_cosignature_of_the_wrong_length_from_a_known_key_is_refused() -> None:
    short = (
        "— witness-1.example/w ".encode() + base64.b64encode(W1.verifier.key_id + bytes(40)) + b"\n"
    )
    with pytest.raises(CosignatureError):
        verify_cosignatures(add_cosignatures(NOTE, short), [W1.verifier])
    with pytest.raises(CosignatureError, match="not 72"):
        cosignature_timestamp(parse_signature_line(short[:-1]))
    huge = W1.verifier.key_id + (2**63).to_bytes(8, "big") + bytes(64)
    line = parse_signature_line("— witness-1.example/w ".encode() + base64.b64encode(huge))
    with pytest.raises(CosignatureError, match="2\\^63"):
        cosignature_timestamp(line)


def test_add_cosignatures_appends_new_lines_once() -> None:
    lines = W1.cosign(TEXT, 10) + W2.cosign(TEXT, 20)
    once = add_cosignatures(NOTE, lines)
    assert once == NOTE + lines
    assert add_cosignatures(once, lines) == once
    assert add_cosignatures(once, W1.cosign(TEXT, 10) + W1.cosign(TEXT, 10)) == once


@pytest.mark.parametrize(
    "block",
    [
        b"",
        b"\n",
        "— witness-1.example/w AAAA".encode(),  # no final newline
        b"- witness AAAAAAAA\n",
        "— witness-1.example/w !!!\n".encode(),
        "— witness AAAA\n".encode(),  # three bytes: no key ID and signature
        "— w AAAAAAAA\n\n".encode(),
        b"\xff\n",
    ],
)
def test_malformed_signature_lines_are_refused(block: bytes) -> None:
    with pytest.raises(NoteFormatError):
        add_cosignatures(NOTE, block)
    with pytest.raises(NoteFormatError):
        parse_signature_block(block)


def test_at_most_a_hundred_signatures() -> None:
    cosigners = make_cosigners(MAX_SIGNATURES, seed=7)
    block = b"".join(c.cosign(TEXT, 1) for c in cosigners[: MAX_SIGNATURES - 1])
    full = add_cosignatures(NOTE, block)
    with pytest.raises(NoteFormatError, match="100"):
        add_cosignatures(full, cosigners[-1].cosign(TEXT, 1))


def test_two_witness_keys_with_one_name_and_id_are_a_configuration_error() -> None:
    with pytest.raises(KeyFormatError, match="share a key ID") as refused:
        verify_cosignatures(NOTE, [W1.verifier, W1.verifier])
    assert refused.value.problem is None  # each key is fine; together they clash


def test_witness_verifier_checks_its_fields() -> None:
    with pytest.raises(KeyFormatError, match="key ID"):
        WitnessVerifier(name="w", key_id=bytes(4), public_key=W1.verifier.public_key)
    with pytest.raises(KeyFormatError, match="name"):
        WitnessVerifier.from_public_key("a+b", W1.verifier.public_key)
    with pytest.raises(ValueError):
        CosignatureSigner(name="w", seed=bytes(31))
    assert "seed" not in repr(W1) and "witness-1" in repr(W1)


@given(timestamp=st.integers(0, 2**63 - 1), size=st.integers(1, 5))
def test_round_trip(timestamp: int, size: int) -> None:
    note = LOG.checkpoint(size)
    text = note[: note.rfind(b"\n\n") + 1]
    cosigned = add_cosignatures(note, W2.cosign(text, timestamp))
    [found] = verify_cosignatures(cosigned, [W2.verifier])
    assert found.timestamp == timestamp
    assert LOG.witnessed_checkpoint(size, [W1]).count(b"\n\xe2\x80\x94 ") == 2
    assert WITNESS_TIME > 0
