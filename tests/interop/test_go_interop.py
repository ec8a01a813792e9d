"""Interoperability with an independent implementation: Go's x/mod sumdb/note and sumdb/tlog.

tests/interop/verify.go verifies bundles and receipts written by the Python code, and emits
tlog's own inclusion and consistency proofs for Python to compare and verify. It is built
offline in GOPATH mode against Debian's golang-golang-x-mod-dev (no module download), once
per test session.
"""

import base64
import json
from pathlib import Path

import pytest

from samleng.crypto.bundle import verify_bundle
from samleng.crypto.errors import BundleError
from samleng.crypto.leaf import LeafKind, encode_leaf
from samleng.crypto.merkle import (
    consistency_proof,
    inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from samleng.crypto.tlogproof import verify_receipt
from tests.crypto.logfactory import PetitionLog, make_log, reseal
from tests.interop.conftest import run


@pytest.mark.parametrize(
    ("signatures", "history"), [(0, []), (1, [1]), (30, [1, 5, 17]), (99, [64])]
)
def test_go_verifies_python_bundles(
    go_verify: Path, tmp_path: Path, signatures: int, history: list[int]
) -> None:
    log = make_log(signatures)
    directory = log.write_bundle(tmp_path / "b", history=history)
    report = verify_bundle(directory)
    done = run(go_verify, "bundle", directory)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"count {report.count}\n"


def test_go_rejects_what_python_rejects(go_verify: Path, tmp_path: Path) -> None:
    log = make_log(12)
    directory = log.write_bundle(tmp_path / "b", history=[3])
    leaves = directory / "leaves.bin"
    data = leaves.read_bytes()
    leaves.write_bytes(data[:81] + data[162:243] + data[81:162] + data[243:])  # swap 1 and 2
    reseal(directory)
    assert run(go_verify, "bundle", directory).returncode == 1
    with pytest.raises(BundleError, match="root"):
        verify_bundle(directory)


@pytest.mark.parametrize("mode", ["none", "email"])
def test_go_and_python_agree_on_the_verification_mode(
    go_verify: Path, tmp_path: Path, mode: str
) -> None:
    log = make_log(5, verification_mode=mode)
    log.append_leaf(encode_leaf(LeafKind.VERIFIED_SIGNATURE, bytes(range(32)), bytes(32)))
    directory = log.write_bundle(tmp_path / "b")
    done = run(go_verify, "bundle", directory)
    if mode == "email":
        assert done.stdout == f"count {verify_bundle(directory).count}\n", done.stderr
        return
    # An email-confirmed leaf in a petition without verification: both refuse it.
    assert done.returncode == 1 and "verification_mode" in done.stderr
    with pytest.raises(BundleError, match="verification mode: leaf 6 has kind 0x02"):
        verify_bundle(directory)


@pytest.fixture(scope="module")
def log() -> PetitionLog:
    return make_log(40, seed=7)


def test_go_verifies_python_receipts(go_verify: Path, log: PetitionLog, tmp_path: Path) -> None:
    vkey = tmp_path / "vkey"
    vkey.write_text(log.signer.vkey + "\n")
    for signature in log.signatures[::7]:
        for size in (signature.index + 1, log.size):
            proof = tmp_path / f"{signature.index}-{size}.tlog-proof"
            proof.write_bytes(log.receipt_proof(signature, size=size))
            check = verify_receipt(proof.read_bytes(), log.signer.vkey)
            done = run(go_verify, "receipt", proof, vkey)
            assert done.returncode == 0, done.stderr
            expected = f"leaf {check.index} in checkpoint of size {check.size} of {check.origin}"
            assert done.stdout == f"counted: {expected}\n"


def test_go_rejects_a_forged_receipt(go_verify: Path, log: PetitionLog, tmp_path: Path) -> None:
    vkey = tmp_path / "vkey"
    vkey.write_text(log.signer.vkey + "\n")
    proof = tmp_path / "forged.tlog-proof"
    proof.write_bytes(log.receipt_proof(log.signatures[3]).replace(b"index 4\n", b"index 5\n"))
    done = run(go_verify, "receipt", proof, vkey)
    assert done.returncode == 1 and "inclusion" in done.stderr


@pytest.mark.parametrize("signatures", [0, 1, 2, 6, 31, 63, 64])
def test_proofs_agree_with_tlog(go_verify: Path, tmp_path: Path, signatures: int) -> None:
    log = make_log(signatures)
    directory = log.write_bundle(tmp_path / "b")
    done = run(go_verify, "prove", directory)
    assert done.returncode == 0, done.stderr
    go = json.loads(done.stdout)
    size, root = go["size"], base64.b64decode(go["root"])
    assert (size, root) == (log.size, log.tree.root())
    for entry in go["inclusion"]:
        index, path = entry["index"], [base64.b64decode(h) for h in entry["proof"]]
        assert path == inclusion_proof(index, size, log.tree.subtree)
        verify_inclusion(log.tree.subtree(0, index), index, size, path, root)
    assert len(go["inclusion"]) == size
    for entry in go["consistency"]:
        old, path = entry["old"], [base64.b64decode(h) for h in entry["proof"]]
        assert path == consistency_proof(old, size, log.tree.subtree)
        verify_consistency(old, size, log.tree.root(old), root, path)
    assert len(go["consistency"]) == size
