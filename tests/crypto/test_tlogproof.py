"""Tests for crypto.tlogproof: the signer's receipt proof in C2SP tlog-proof@v1 format."""

import base64

import pytest

from samleng.crypto.errors import (
    CheckpointFormatError,
    InclusionProofError,
    NoteSignatureError,
    ProofFormatError,
    VerificationError,
)
from samleng.crypto.leaf import LeafKind
from samleng.crypto.merkle import leaf_hash
from samleng.crypto.receipts import receipt_commitment
from samleng.crypto.tlogproof import (
    ReceiptCheck,
    TlogProof,
    encode_receipt_extra,
    format_proof,
    parse_proof,
    verify_receipt,
)
from tests.crypto.logfactory import PetitionLog, make_log


@pytest.fixture(scope="module")
def log() -> PetitionLog:
    return make_log(12)


def test_layout(log: PetitionLog) -> None:
    signature = log.signatures[4]
    proof = log.receipt_proof(signature)
    lines = proof.split(b"\n")
    assert lines[0] == b"c2sp.org/tlog-proof@v1"
    assert lines[1] == b"extra " + base64.b64encode(
        bytes([signature.kind]) + signature.r + signature.d
    )
    assert lines[2] == b"index 5"
    path = log.tree.inclusion_proof(5)
    assert lines[3 : 3 + len(path)] == [base64.b64encode(h) for h in path]
    assert lines[3 + len(path)] == b""
    assert proof.endswith(b"\n\n" + log.checkpoint())
    assert parse_proof(proof) == TlogProof(
        extra=bytes([signature.kind]) + signature.r + signature.d,
        index=5,
        path=tuple(path),
        checkpoint=log.checkpoint(),
    )


def test_every_signature_verifies(log: PetitionLog) -> None:
    for signature in log.signatures:
        check = verify_receipt(log.receipt_proof(signature), log.signer.vkey)
        assert check == ReceiptCheck(
            origin=log.origin,
            index=signature.index,
            size=log.size,
            kind=signature.kind,
            root=log.tree.root(),
            leaf=log.leaves[signature.index],
        )


def test_receipt_against_an_older_checkpoint(log: PetitionLog) -> None:
    check = verify_receipt(log.receipt_proof(log.signatures[0], size=2), log.signer.vkey)
    assert (check.index, check.size) == (1, 2)


def test_commitment_uses_the_checkpoint_origin(log: PetitionLog) -> None:
    signature = log.signatures[0]
    leaf_c = log.leaves[signature.index][17:49]
    assert leaf_c == receipt_commitment(log.origin, signature.r)


def tamper_extra(proof: bytes, extra: bytes) -> bytes:
    lines = proof.split(b"\n")
    lines[1] = b"extra " + base64.b64encode(extra)
    return b"\n".join(lines)


def test_wrong_secret_is_not_counted(log: PetitionLog) -> None:
    s = log.signatures[3]
    bad = tamper_extra(log.receipt_proof(s), bytes([s.kind]) + bytes(16) + s.d)
    with pytest.raises(InclusionProofError):
        verify_receipt(bad, log.signer.vkey)


def test_wrong_kind_is_not_counted(log: PetitionLog) -> None:
    s = log.signatures[3]
    other = (
        LeafKind.SIGNATURE if s.kind == LeafKind.VERIFIED_SIGNATURE else LeafKind.VERIFIED_SIGNATURE
    )
    with pytest.raises(InclusionProofError):
        verify_receipt(
            tamper_extra(log.receipt_proof(s), bytes([other]) + s.r + s.d), log.signer.vkey
        )


@pytest.mark.parametrize("kind", [0, 3, 9])
def test_non_signature_kinds_refused(log: PetitionLog, kind: int) -> None:
    s = log.signatures[3]
    with pytest.raises(ProofFormatError, match="not a signature"):
        verify_receipt(
            tamper_extra(log.receipt_proof(s), bytes([kind]) + s.r + s.d), log.signer.vkey
        )


def test_wrong_index_fails(log: PetitionLog) -> None:
    proof = log.receipt_proof(log.signatures[3]).replace(b"index 4\n", b"index 5\n")
    with pytest.raises(InclusionProofError):
        verify_receipt(proof, log.signer.vkey)


def test_other_log_key_fails(log: PetitionLog) -> None:
    other = make_log(1, seed=99)
    with pytest.raises(NoteSignatureError):
        verify_receipt(log.receipt_proof(log.signatures[0]), other.signer.vkey)


def test_other_origin_key_fails(log: PetitionLog) -> None:
    other = make_log(1, origin="petitions.example.org/p/other")
    with pytest.raises(VerificationError):
        verify_receipt(log.receipt_proof(log.signatures[0]), other.signer.vkey)


def test_tampered_checkpoint_fails(log: PetitionLog) -> None:
    proof = log.receipt_proof(log.signatures[0])
    with pytest.raises(NoteSignatureError):
        verify_receipt(proof.replace(b"\n13\n", b"\n14\n"), log.signer.vkey)


def test_checkpoint_error_is_from_checkpoint_module(log: PetitionLog) -> None:
    assert issubclass(CheckpointFormatError, VerificationError)


def valid(log: PetitionLog) -> bytes:
    return log.receipt_proof(log.signatures[0])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.replace(b"c2sp.org/tlog-proof@v1", b"c2sp.org/tlog-proof@v2"), "start"),
        (lambda p: b"\n" + p, "start"),
        (lambda p: p.replace(b"index 1\n", b"index 01\n"), "index"),
        (lambda p: p.replace(b"index 1\n", b"index -1\n"), "index"),
        (lambda p: p.replace(b"index 1\n", b"index  1\n"), "index"),
        (lambda p: p.replace(b"index 1\n", b""), "index"),
        (lambda p: p.replace(b"extra ", b"extra  "), "base64"),
        (lambda p: p.replace(b"extra ", b"extra *"), "base64"),
        (lambda p: p.split(b"\n\n")[0], "blank line"),
        (lambda p: p.split(b"\n\n")[0] + b"\n\n", "no checkpoint"),
        (lambda p: p.replace(b"index 1\n", b"index 1\nnot-a-hash\n"), "32-byte hash"),
        (
            lambda p: p.replace(b"index 1\n", b"index 1\n" + base64.b64encode(bytes(31)) + b"\n"),
            "32-byte hash",
        ),
        (lambda p: p.replace(b"index 1\n", b"index 1\n" + b"A" * 42 + b"B=\n"), "canonical"),
    ],
)
def test_malformed_proofs(log: PetitionLog, mutate: object, message: str) -> None:
    proof = mutate(valid(log))  # type: ignore[operator]
    with pytest.raises(ProofFormatError, match=message):
        verify_receipt(proof, log.signer.vkey)


def test_extra_is_required_for_receipts(log: PetitionLog) -> None:
    proof = b"\n".join(line for line in valid(log).split(b"\n") if not line.startswith(b"extra"))
    assert parse_proof(proof).extra is None
    with pytest.raises(ProofFormatError, match="49 bytes"):
        verify_receipt(proof, log.signer.vkey)


def test_too_many_path_lines(log: PetitionLog) -> None:
    hashes = b"".join(base64.b64encode(bytes(32)) + b"\n" for _ in range(64))
    with pytest.raises(ProofFormatError):
        parse_proof(b"c2sp.org/tlog-proof@v1\nindex 0\n" + hashes + b"\n" + log.checkpoint())


def test_format_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        format_proof(extra=None, index=-1, path=[], checkpoint=b"x")
    with pytest.raises(ValueError):
        format_proof(extra=None, index=0, path=[bytes(31)], checkpoint=b"x")
    with pytest.raises(ValueError):
        encode_receipt_extra(LeafKind.HEADER, bytes(16), bytes(32))
    with pytest.raises(ValueError):
        encode_receipt_extra(LeafKind.SIGNATURE, bytes(15), bytes(32))


def test_single_leaf_tree_has_empty_path() -> None:
    # A receipt can also be checked against a checkpoint where the leaf is the whole right side.
    log = make_log(1)
    proof = log.receipt_proof(log.signatures[0])
    assert parse_proof(proof).path == (leaf_hash(log.leaves[0]),)
    assert verify_receipt(proof, log.signer.vkey).size == 2
