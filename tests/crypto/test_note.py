"""Tests for crypto.note: C2SP signed notes, pinned to Go's golang.org/x/mod/sumdb/note example."""

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samleng.crypto.errors import KeyFormatError, NoteFormatError, NoteSignatureError
from samleng.crypto.note import (
    MAX_SIGNATURES,
    NoteSigner,
    NoteVerifier,
    is_valid_key_name,
    key_id,
    open_note,
    parse_vkey,
    sign_note,
)

# The example in the documentation of Go's golang.org/x/mod/sumdb/note package.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
GO_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqd"
    "ngotpRZb6KE6RyyBwJnAM=\n"
).encode()
GO_NOTE = GO_TEXT + b"\n" + GO_SIG
GO_ENOCH = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWL"
    "ox33WWd1RvMc+QQ=\n"
).encode()


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner(name="example.org/log", seed=bytes(range(32)))


def test_go_example_verifies() -> None:
    assert open_note(GO_NOTE, [parse_vkey(GO_VKEY)]) == (GO_TEXT, ["PeterNeumann"])


def test_go_example_resigning_reproduces_the_signature_exactly() -> None:
    signer = NoteSigner.from_skey(GO_SKEY)
    assert signer.vkey == GO_VKEY
    assert signer.skey == GO_SKEY
    assert signer.key_id.hex() == "c74f20a3"
    assert sign_note(GO_TEXT, signer) == GO_NOTE


def test_go_example_with_a_second_unknown_signer() -> None:
    # Signatures by keys we do not know (here EnochRoot's) are ignored, as the spec requires.
    assert open_note(GO_NOTE + GO_ENOCH, [parse_vkey(GO_VKEY)]) == (GO_TEXT, ["PeterNeumann"])
    with pytest.raises(NoteSignatureError, match="not signed by any trusted key"):
        open_note(GO_TEXT + b"\n" + GO_ENOCH, [parse_vkey(GO_VKEY)])


def test_key_id_definition() -> None:
    verifier = parse_vkey(GO_VKEY)
    assert key_id("PeterNeumann", verifier.public_key) == bytes.fromhex("c74f20a3")


def test_round_trip(signer: NoteSigner) -> None:
    text = "Khmer ខ្មែរ text\n\nwith a blank line\n".encode()
    note = sign_note(text, signer)
    assert open_note(note, [signer.verifier]) == (text, ["example.org/log"])
    assert open_note(note, [parse_vkey(signer.vkey)]) == (text, ["example.org/log"])


@given(text=st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), max_size=200))
def test_round_trip_any_text(text: str) -> None:
    signer = NoteSigner(name="k", seed=bytes(32))
    body = (text + "\n").encode()
    try:
        note = sign_note(body, signer)
    except NoteFormatError:
        return  # text ending in something that looks like a signature block
    assert open_note(note, [signer.verifier]) == (body, ["k"])


def test_repr_hides_the_seed(signer: NoteSigner) -> None:
    assert "PRIVATE" not in repr(signer)
    assert base64.b64encode(signer.seed).decode() not in repr(signer)


def test_wrong_key_is_unknown_and_rejected(signer: NoteSigner) -> None:
    other = NoteSigner(name="example.org/log", seed=bytes(32))
    note = sign_note(b"hello\n", signer)
    with pytest.raises(NoteSignatureError, match="not signed by any trusted key"):
        open_note(note, [other.verifier])


def test_forged_signature_from_known_key_rejects_the_note(signer: NoteSigner) -> None:
    note = sign_note(b"hello\n", signer)
    forged = note.replace(b"hello", b"hullo")
    with pytest.raises(NoteSignatureError, match="invalid signature"):
        open_note(forged, [signer.verifier])


def test_good_signature_does_not_excuse_a_bad_one(signer: NoteSigner) -> None:
    other = NoteSigner(name="witness.example", seed=bytes(32))
    note = sign_note(b"hello\n", signer)
    bad_line = sign_note(b"other text\n", other).split(b"\n\n")[1]
    with pytest.raises(NoteSignatureError, match="witness.example"):
        open_note(note + bad_line, [signer.verifier, other.verifier])


def sig_line(name: bytes, payload: bytes) -> bytes:
    return "— ".encode() + name + b" " + base64.b64encode(payload) + b"\n"


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (b"hello\n", "no blank line"),
        (b"hello\n\n", "does not end with a signature line"),
        (b"hello\n\n" + GO_SIG[:-1], "does not end with a signature line"),
        (b"hello\n\n- PeterNeumann abcd\n", "em dash"),
        (b"hello\n\n\xe2\x80\x94PeterNeumann abcd\n", "em dash"),
        (b"hello\n\n" + "— PeterNeumann\n".encode(), "malformed key name"),
        (b"hello\n\n" + "—  abcd\n".encode(), "malformed key name"),
        (b"hello\n\n" + sig_line(b"a+b", bytes(68)), "malformed key name"),
        (b"hello\n\n" + "— PeterNeumann not*base64\n".encode(), "base64"),
        (b"hello\n\n" + "— PeterNeumann AAAAAAB=\n".encode(), "canonical"),  # bits after end
        (b"hello\n\n" + "— PeterNeumann AAAAAAA\n".encode(), "base64"),  # padding missing
        (b"hello\n\n" + sig_line(b"PeterNeumann", bytes(4)), "too short"),
        (b"hel\x01lo\n\n" + GO_SIG, "control character"),
        (b"hello\r\n\n" + GO_SIG, "control character"),
        (b"hel\xfflo\n\n" + GO_SIG, "UTF-8"),
        (b"hello\n\n" + GO_SIG + b"\n", "does not end with a signature line"),
        (b"x\n\n" + sig_line(b"w", bytes(68)) * (MAX_SIGNATURES + 1), "more than 100"),
    ],
)
def test_malformed_notes(note: bytes, message: str) -> None:
    with pytest.raises(NoteFormatError, match=message):
        open_note(note, [parse_vkey(GO_VKEY)])


def test_exactly_100_signatures_accepted() -> None:
    note = GO_NOTE + sig_line(b"w", bytes(68)) * (MAX_SIGNATURES - 1)
    assert open_note(note, [parse_vkey(GO_VKEY)])[1] == ["PeterNeumann"]


def test_text_parsed_up_to_last_blank_line(signer: NoteSigner) -> None:
    # A signature-like block inside the text cannot smuggle in a signature: the note's text
    # ends at its LAST blank line.
    text = b"a\n\nb\n"
    assert open_note(sign_note(text, signer), [signer.verifier])[0] == text


@pytest.mark.parametrize(
    "text",
    [
        b"no newline",
        b"",
        b"bad\x00byte\n",
        b"tab\there\n",
        b"\xff\n",
        b"already\n\n" + GO_SIG,
    ],
)
def test_sign_refuses_bad_text(text: bytes, signer: NoteSigner) -> None:
    with pytest.raises(NoteFormatError):
        sign_note(text, signer)


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong ID
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # upper-case hex
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # short
        "PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW=",  # not base64 of key
        "PeterNeumann+c74f20a3+AhpcAAAAPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # algorithm 2
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        GO_VKEY + "\n",
        " " + GO_VKEY,
    ],
)
def test_parse_vkey_rejects(vkey: str) -> None:
    with pytest.raises(KeyFormatError):
        parse_vkey(vkey)


@pytest.mark.parametrize(
    "skey",
    [
        GO_SKEY.replace("PRIVATE+KEY+", ""),
        GO_SKEY.replace("c74f20a3", "c74f20a4"),
        GO_SKEY[:-1],
        "PRIVATE+KEY+PeterNeumann+c74f20a3",
    ],
)
def test_from_skey_rejects(skey: str) -> None:
    with pytest.raises(KeyFormatError):
        NoteSigner.from_skey(skey)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("example.org/log", True),
        ("ខ្មែរ", True),
        ("", False),
        ("a b", False),
        ("a\u00a0b", False),  # no-break space is a Unicode space
        ("a\u2003b", False),
        ("a+b", False),
        ("a\nb", False),
    ],
)
def test_key_names(name: str, valid: bool) -> None:
    assert is_valid_key_name(name) is valid


def test_verifier_refuses_inconsistent_fields() -> None:
    good = parse_vkey(GO_VKEY)
    with pytest.raises(KeyFormatError):
        NoteVerifier(name="Other", key_id=good.key_id, public_key=good.public_key)


def test_duplicate_trusted_keys_refused(signer: NoteSigner) -> None:
    with pytest.raises(KeyFormatError):
        open_note(sign_note(b"x\n", signer), [signer.verifier, signer.verifier])


def test_generated_signers_differ() -> None:
    a, b = NoteSigner.generate("n"), NoteSigner.generate("n")
    assert a.vkey != b.vkey
    assert NoteSigner.from_skey(a.skey).vkey == a.vkey
