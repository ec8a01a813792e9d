"""Fuzzing the witness formats: cosigned notes, witness keys, policies, tile paths, entry
bundles and witnesses' answers. Each either returns or raises the package's own errors (the
client: returns an answer), never anything else, and what is accepted is what was meant.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from samleng.crypto import errors
from samleng.crypto.cosignature import (
    add_cosignatures,
    parse_signature_block,
    parse_witness_vkey,
    verify_cosignatures,
)
from samleng.crypto.policy import check_witnessed, format_policy, parse_policy
from samleng.crypto.tiles import Tile, parse_entry_bundle, parse_tile_path, tile_path
from samleng.service.tlog.witnessing import Outcome, interpret_answer
from tests.crypto.logfactory import make_cosigners, make_log, witness_policy
from tests.fuzz.mutations import bytes_like, examples, text_like

FAST = settings(max_examples=examples(300), deadline=None)
LOG = make_log(6)
VKEY = LOG.signer.vkey
W1, W2 = make_cosigners(2, seed=21)
NOTE = LOG.witnessed_checkpoint(None, [W1, W2])
TEXT = NOTE[: NOTE.index(b"\n\n") + 1]
POLICY = witness_policy(VKEY, [W1, W2], 2)
LINES = W1.cosign(TEXT, 1_772_323_200) + W2.cosign(TEXT, 1_772_323_201)


@FAST
@given(note=bytes_like(NOTE))
def test_verify_cosignatures(note: bytes) -> None:
    try:
        found = verify_cosignatures(note, [W1.verifier, W2.verifier])
    except errors.VerificationError:
        return
    # Accepted cosignatures are genuine: of this checkpoint's text, by these keys.
    for cosignature in found:
        assert cosignature.witness in (W1.verifier.name, W2.verifier.name)
        assert note.startswith(TEXT)


@FAST
@given(note=bytes_like(NOTE))
def test_check_witnessed(note: bytes) -> None:
    policy = parse_policy(POLICY)
    try:
        witnessed = check_witnessed(note, VKEY, policy)
    except errors.VerificationError:
        return
    assert witnessed.cosigned.checkpoint.size == LOG.size
    assert witnessed.witnesses <= {"w1", "w2"}


@FAST
@given(block=bytes_like(LINES))
def test_add_cosignatures(block: bytes) -> None:
    try:
        parse_signature_block(block)
        result = add_cosignatures(LOG.checkpoint(), block)
    except errors.NoteFormatError:
        return
    assert result.startswith(LOG.checkpoint())


@FAST
@given(vkey=text_like(W1.verifier.vkey))
def test_parse_witness_vkey(vkey: str) -> None:
    try:
        verifier = parse_witness_vkey(vkey)
    except errors.KeyFormatError:
        return
    assert verifier.vkey == vkey  # one spelling per key


@FAST
@given(data=bytes_like(POLICY))
def test_parse_policy(data: bytes) -> None:
    try:
        policy = parse_policy(data)
    except errors.PolicyFormatError:
        return
    assert parse_policy(format_policy(policy)) == policy


@FAST
@given(path=text_like("tile/entries/x001/x234/067.p/12"))
def test_parse_tile_path(path: str) -> None:
    try:
        tile = parse_tile_path(path)
    except errors.TileFormatError:
        return
    assert tile_path(tile) == path and isinstance(tile, Tile)


@FAST
@given(data=bytes_like(b"\x00\x51" + bytes(81) + b"\x00\x03abc"))
def test_parse_entry_bundle(data: bytes) -> None:
    try:
        entries = parse_entry_bundle(data)
    except errors.TileFormatError:
        return
    assert b"".join(len(e).to_bytes(2, "big") + e for e in entries) == data


@FAST
@given(
    status=st.sampled_from([200, 200, 409, 409, 422, 404, 403, 400, 500, 302, 0, 999]),
    content_type=st.sampled_from(["", "text/x.tlog.size", "text/plain", "TEXT/X.TLOG.SIZE; a"]),
    body=st.one_of(bytes_like(LINES), bytes_like(b"5\n")),
)
def test_interpret_answer(status: int, content_type: str, body: bytes) -> None:
    answer = interpret_answer(status, content_type, body, checkpoint=NOTE, witness=W1.verifier)
    assert answer.status == status
    if answer.outcome is Outcome.COSIGNED:
        assert status == 200
        verify_cosignatures(add_cosignatures(NOTE, answer.cosignatures), [W1.verifier])
    if answer.outcome is Outcome.CONFLICT:
        assert answer.known_size is not None and answer.known_size <= LOG.size
