"""Fuzzing every parser of untrusted text in crypto/: no crash but the package's own errors.

Receipt codes (typed by signers), checkpoints and signed notes (served by the log, read by
auditors), receipt proofs (uploaded by signers, checked offline), details files and key files
(read by organisers' tools). Each parser either returns or raises a crypto.errors.Error
subclass; ValueError only where the function documents it for a caller's mistake (an unknown
phone region or identifier mode), never for hostile input.
"""

from __future__ import annotations

import io
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samleng.crypto import errors
from samleng.crypto.checkpoint import parse_checkpoint_body, verify_checkpoint
from samleng.crypto.details import details_digest, generate_details_keypair, seal_details
from samleng.crypto.detailsfile import encode_details_record, open_details_file, read_details_record
from samleng.crypto.keyfile import open_private_key, parse_key_file, seal_private_key
from samleng.crypto.leaf import LeafKind, encode_leaf
from samleng.crypto.note import open_note, parse_vkey
from samleng.crypto.receipts import format_receipt, parse_receipt, receipt_commitment
from samleng.crypto.tlogproof import parse_proof, verify_receipt
from samleng.crypto.tokens import Argon2Params
from samleng.service.signing.identifiers import (
    normalize_email,
    normalize_identifier,
    normalize_phone,
)
from tests.crypto.logfactory import make_log
from tests.fuzz.mutations import bytes_like, examples, mutated, text_like

FAST = settings(max_examples=examples(300), deadline=None)
LOG = make_log(12)
VKEY = LOG.signer.vkey
CHECKPOINT = LOG.checkpoint()
PROOF = LOG.receipt_proof(LOG.signatures[4])
OTHER_VKEY = make_log(0, origin="other.example.org/p/x", seed=2).signer.vkey


# --- identifiers -----------------------------------------------------------------------------

phone_text = st.one_of(
    st.text(max_size=80),
    st.from_regex(r"\A\+?[0-9០-៩ ()./-]{0,24}\Z"),
    st.sampled_from(["012 345 678", "+855 12 345 678", "០១២៣៤៥៦៧៨", "+1 650 253 0000 ext 1"]),
)
email_text = st.one_of(
    st.text(max_size=80),
    st.emails().map(str),
    st.from_regex(r"\A[a-zA-Z0-9.+_\"\\ -]{0,30}@[a-zA-Z0-9.\[\]-]{0,30}\Z"),
)


@FAST
@given(raw=email_text)
def test_normalize_email(raw: str) -> None:
    try:
        result = normalize_email(raw)
    except errors.InvalidEmail:
        return
    assert result.startswith("email:")
    assert normalize_email(result.removeprefix("email:")) == result  # idempotent, as documented


@FAST
@given(raw=phone_text, region=st.sampled_from(["KH", "TH", "US", "FR"]))
def test_normalize_phone(raw: str, region: str) -> None:
    try:
        result = normalize_phone(raw, region)
    except errors.InvalidPhone:
        return
    assert result.startswith("phone:+")
    assert normalize_phone(result.removeprefix("phone:"), region) == result


@FAST
@given(mode=st.one_of(st.sampled_from(["email", "phone", "none"]), st.text(max_size=6)),
       raw=st.one_of(phone_text, email_text), region=st.text(max_size=3))  # fmt: skip
def test_normalize_identifier(mode: str, raw: str, region: str) -> None:
    try:
        normalize_identifier(mode, raw, region=region)
    except errors.InvalidIdentifier:
        pass
    except ValueError as err:  # documented: mode "none", an unknown mode or region
        assert mode not in ("email", "phone") or "region" in str(err)


# --- receipt codes ---------------------------------------------------------------------------


@FAST
@given(text=st.one_of(text_like(format_receipt(bytes(range(16)))), st.text(max_size=250)))
def test_parse_receipt(text: str) -> None:
    try:
        secret = parse_receipt(text)
    except errors.ReceiptFormatError:
        return
    assert len(secret) == 16
    assert parse_receipt(format_receipt(secret)) == secret


# --- checkpoints and signed notes ------------------------------------------------------------


@FAST
@given(body=bytes_like(CHECKPOINT[: CHECKPOINT.index(b"\n\n") + 1]))
def test_parse_checkpoint_body(body: bytes) -> None:
    try:
        checkpoint = parse_checkpoint_body(body)
    except errors.CheckpointFormatError:
        return
    assert checkpoint.body() == body  # only the canonical form is accepted


@FAST
@given(note=bytes_like(CHECKPOINT), vkey=st.one_of(st.just(VKEY), text_like(VKEY)))
def test_verify_checkpoint(note: bytes, vkey: str) -> None:
    try:
        checkpoint = verify_checkpoint(note, vkey)
    except errors.VerificationError:
        return
    # A mutation may be accepted only if it kept the signed text (e.g. an extra unknown
    # signature line); the checkpoint read is then the genuine one.
    assert checkpoint.size == LOG.size and checkpoint.origin == LOG.origin


@FAST
@given(vkey=st.one_of(text_like(VKEY), text_like(OTHER_VKEY)))
def test_parse_vkey(vkey: str) -> None:
    try:
        verifier = parse_vkey(vkey)
    except errors.KeyFormatError:
        return
    assert verifier.name in (LOG.origin, "other.example.org/p/x") or " " not in verifier.name


@FAST
@given(note=bytes_like(CHECKPOINT), keys=st.lists(st.sampled_from([VKEY, OTHER_VKEY]), max_size=3))
def test_open_note(note: bytes, keys: list[str]) -> None:
    try:
        open_note(note, [parse_vkey(k) for k in keys])
    except errors.VerificationError:
        pass


# --- receipt proofs --------------------------------------------------------------------------


@FAST
@given(proof=bytes_like(PROOF))
def test_parse_proof(proof: bytes) -> None:
    try:
        parse_proof(proof)
    except errors.ProofFormatError:
        pass


@FAST
@given(proof=bytes_like(PROOF), vkey=st.sampled_from([VKEY, OTHER_VKEY]))
def test_verify_receipt(proof: bytes, vkey: str) -> None:
    try:
        check = verify_receipt(proof, vkey)
    except errors.VerificationError:
        return
    assert vkey == VKEY and check.index == LOG.signatures[4].index


# --- details files ---------------------------------------------------------------------------

DETAILS_PRIVATE, DETAILS_PUBLIC = generate_details_keypair()
SMALL_LOG = make_log(0, seed=3)
CIPHERTEXTS: list[bytes] = []
for number in range(1, 4):  # three signatures whose d is the hash of a real sealed record
    c = receipt_commitment(SMALL_LOG.origin, bytes([number]) * 16)
    CIPHERTEXTS.append(seal_details(DETAILS_PUBLIC, SMALL_LOG.origin, c, {"name": "Sok"}))
    SMALL_LOG.append_leaf(encode_leaf(LeafKind.SIGNATURE, c, details_digest(CIPHERTEXTS[-1])))
LEAVES = b"".join(SMALL_LOG.leaves)
RECORDS = b"".join(encode_details_record(ct) for ct in CIPHERTEXTS)


@FAST
@given(data=bytes_like(RECORDS[:200]))
def test_read_details_record(data: bytes) -> None:
    stream = io.BytesIO(data)
    try:
        while read_details_record(stream) is not None:
            pass
    except errors.DetailsFileError:
        pass


@settings(max_examples=examples(150), deadline=None)
@given(leaves=st.one_of(st.just(LEAVES), mutated(LEAVES, 2)), records=mutated(RECORDS, 3))
def test_open_details_file(leaves: bytes, records: bytes) -> None:
    try:
        opened = list(
            open_details_file(
                io.BytesIO(leaves),
                io.BytesIO(records),
                origin=SMALL_LOG.origin,
                private_key=DETAILS_PRIVATE,
            )
        )
    except errors.Error:  # a damaged leaves.bin: LeafFormatError (verify the bundle first)
        return
    for record in opened:
        assert (record.details is None) != (record.problem is None)
        if records == RECORDS and leaves == LEAVES:
            assert record.details == {"name": "Sok"}


# --- organiser key files ---------------------------------------------------------------------

PASSPHRASE = "correct horse battery staple"
CHEAP = Argon2Params(time_cost=1, memory_kib=8, parallelism=1)
KEY_FILE = seal_private_key(bytes(range(32)), PASSPHRASE, CHEAP)


@FAST
@given(data=bytes_like(KEY_FILE), passphrase=st.sampled_from([PASSPHRASE, "x" * 12]))
def test_key_file(data: bytes, passphrase: str) -> None:
    try:
        parsed = parse_key_file(data)
    except errors.KeyFileError:
        return
    assert parsed.encode() == data
    if parsed.params.time_cost > 2 or parsed.params.memory_kib > 64:
        return  # a mutated cost would only make the test slow; parsing bounds it (tested)
    try:
        assert open_private_key(data, passphrase) == bytes(range(32))
    except errors.KeyFileError:  # includes PassphraseError
        return
    assert passphrase == PASSPHRASE


@pytest.mark.parametrize("text", ["", "\ufeff", "ﬀ", unicodedata.normalize("NFD", "é")])
def test_identifier_edge_cases_raise_own_errors(text: str) -> None:
    for mode in ("email", "phone"):
        with pytest.raises(errors.InvalidIdentifier):
            normalize_identifier(mode, text)
