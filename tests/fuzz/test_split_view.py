"""Properties of the split-view checks: a kept checkpoint or receipt catches a re-signed bundle
exactly when it covers the dropped leaf, and never accuses an honest one.

Each example builds a real log, exports it, forges a copy without one leaf (every checkpoint
re-signed with the log key) and checks a checkpoint or receipt of a random size against both.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samleng.crypto.bundle import BundleCheck, verify_bundle, verify_receipt_in_bundle
from samleng.crypto.errors import BundleError, SplitViewError
from samleng.crypto.leaf import LeafKind, encode_leaf
from tests.crypto.logfactory import forge_without_leaf, make_log
from tests.fuzz.mutations import examples


@st.composite
def forgeries(draw: st.DrawFn) -> tuple[int, list[int], int, int]:
    """Return (signatures, published sizes, dropped leaf, size of the kept checkpoint)."""
    signatures = draw(st.integers(1, 24))
    size = signatures + 1
    history = draw(st.lists(st.integers(1, size), max_size=5))
    dropped = draw(st.integers(1, signatures))
    kept = draw(st.integers(1, size))
    return signatures, history, dropped, kept


@settings(max_examples=examples(60), deadline=None)
@given(case=forgeries(), seed=st.integers(0, 2**16))
def test_a_kept_checkpoint_catches_the_forgery_iff_it_covers_the_dropped_leaf(
    case: tuple[int, list[int], int, int], seed: int
) -> None:
    signatures, history, dropped, kept = case
    log = make_log(signatures, seed=seed)
    note = log.checkpoint(kept)
    with tempfile.TemporaryDirectory(prefix="samleng-fuzz-") as work:
        honest = log.write_bundle(Path(work) / "honest", history=history)
        forged = forge_without_leaf(honest, Path(work) / "forged", dropped, log.signer)
        assert verify_bundle(honest, known_checkpoints=[("kept", note)]).count == signatures
        # The forgery alone passes; a kept checkpoint that covers the dropped leaf does not.
        assert verify_bundle(forged).count == signatures - 1
        if kept <= dropped:
            verify_bundle(forged, known_checkpoints=[("kept", note)])
        else:
            with pytest.raises(BundleError) as info:
                verify_bundle(forged, known_checkpoints=[("kept", note)])
            assert info.value.check == BundleCheck.KNOWN_CONSISTENT


@settings(max_examples=examples(60), deadline=None)
@given(case=forgeries(), data=st.data())
def test_a_receipt_catches_the_forgery_iff_its_checkpoint_covers_the_dropped_leaf(
    case: tuple[int, list[int], int, int], data: st.DataObject
) -> None:
    signatures, history, dropped, size = case
    if size == 1:
        size = 2  # a receipt's checkpoint holds at least the header and the signer's leaf
    log = make_log(signatures)
    signer = log.signatures[data.draw(st.integers(0, size - 2), label="signer")]
    proof = log.receipt_proof(signer, size=size)
    with tempfile.TemporaryDirectory(prefix="samleng-fuzz-") as work:
        honest = log.write_bundle(Path(work) / "honest", history=history)
        forged = forge_without_leaf(honest, Path(work) / "forged", dropped, log.signer)
        found = verify_receipt_in_bundle(proof, honest)
        assert (found.receipt.index, found.receipt.size) == (signer.index, size)
        assert found.published == (size in history or size == log.size)
        if size <= dropped:
            verify_receipt_in_bundle(proof, forged)
        else:
            with pytest.raises(SplitViewError, match="is not part of this bundle's log"):
                verify_receipt_in_bundle(proof, forged)


@settings(max_examples=examples(100), deadline=None)
@given(
    mode=st.sampled_from(["none", "email"]),
    kinds=st.lists(st.sampled_from([LeafKind.SIGNATURE, LeafKind.VERIFIED_SIGNATURE]), max_size=12),
    seed=st.integers(0, 2**16),
)
def test_a_verified_kind_needs_email_verification(
    mode: str, kinds: list[LeafKind], seed: int
) -> None:
    log = make_log(0, seed=seed, verification_mode=mode)
    for kind in kinds:
        log.append_leaf(encode_leaf(kind, log.rng.randbytes(32), log.rng.randbytes(32)))
    with tempfile.TemporaryDirectory(prefix="samleng-fuzz-") as work:
        directory = log.write_bundle(Path(work) / "b")
        if mode == "email" or LeafKind.VERIFIED_SIGNATURE not in kinds:
            assert verify_bundle(directory).count == len(kinds)
        else:
            with pytest.raises(BundleError) as info:
                verify_bundle(directory)
            assert info.value.check == BundleCheck.VERIFICATION_MODE
            first = kinds.index(LeafKind.VERIFIED_SIGNATURE)
            assert f"leaf {first + 1} has kind 0x02" in str(info.value)
