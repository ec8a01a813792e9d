"""A bundle forged by the operator: one leaf dropped, every checkpoint re-signed with the log key.

Such a bundle is consistent with itself, so ``verify`` alone accepts it (a documented limit:
only witnesses would close it). What catches it is a checkpoint kept elsewhere before the
forgery (``verify --known-checkpoint``) or a signer's receipt proof checked against the bundle
(``receipt --bundle``).
"""

from pathlib import Path

import pytest

from samleng.crypto.audit import main
from samleng.crypto.bundle import BundleCheck, verify_bundle
from samleng.crypto.checkpoint import LogSigner
from samleng.crypto.errors import BundleError
from tests.crypto.logfactory import PetitionLog, forge_without_leaf, make_log, reseal

HISTORY = [1, 4, 8]
DROPPED = 6  # the leaf the operator drops; sealed in the batch that ended at size 8


@pytest.fixture(scope="module")
def log() -> PetitionLog:
    return make_log(12)


@pytest.fixture
def honest(log: PetitionLog, tmp_path: Path) -> Path:
    return log.write_bundle(tmp_path / "honest", history=HISTORY)


@pytest.fixture
def forged(log: PetitionLog, honest: Path, tmp_path: Path) -> Path:
    return forge_without_leaf(honest, tmp_path / "forged", DROPPED, log.signer)


def kept(log: PetitionLog, tmp_path: Path, size: int) -> Path:
    """A checkpoint someone saved from /p/<slug>/checkpoint when the log had ``size`` leaves."""
    path = tmp_path / f"checkpoint-{size}"
    path.write_bytes(log.checkpoint(size))
    return path


def receipt(log: PetitionLog, tmp_path: Path, index: int, size: int) -> Path:
    """The proof the signer of leaf ``index`` downloaded when the log had ``size`` leaves."""
    signature = next(s for s in log.signatures if s.index == index)
    path = tmp_path / f"receipt-{index}-{size}.tlog-proof"
    path.write_bytes(log.receipt_proof(signature, size=size))
    return path


# --- the forgery and what plain verification sees -----------------------------------------------


def test_plain_verify_accepts_the_forgery(
    honest: Path, forged: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The documented limitation: a re-signing operator passes a verification on its own."""
    for name in ("petition.json", "vkey"):
        assert (forged / name).read_bytes() == (honest / name).read_bytes()
    assert verify_bundle(honest).count == 12
    assert verify_bundle(forged).count == 11
    assert main(["verify", str(forged)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "count 11"
    assert "--known-checkpoint" in err  # the tool says what it could not check


def test_the_dropped_signers_receipt_alone_still_says_counted(
    log: PetitionLog, forged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the bundle a receipt proves only that some checkpoint once held the leaf."""
    proof = receipt(log, tmp_path, DROPPED, 8)
    assert main(["receipt", str(proof), "--vkey", str(forged / "vkey")]) == 0
    assert capsys.readouterr().out.startswith("counted: leaf 6 in checkpoint of size 8")


# --- verify --known-checkpoint -------------------------------------------------------------------


@pytest.mark.parametrize("size", [8, 10, 13])
def test_a_checkpoint_kept_before_the_forgery_rejects_it(
    log: PetitionLog, forged: Path, tmp_path: Path, size: int, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = kept(log, tmp_path, size)
    assert main(["verify", str(forged), "--known-checkpoint", str(saved)]) == 1
    out, err = capsys.readouterr()
    assert "count" not in out
    assert err.startswith(f"error: known checkpoints consistent: {saved}: ")
    if size == 13:  # larger than the forged log (12 leaves)
        assert "the bundle ends at size 12: it leaves out signatures" in err
    else:
        assert "is not part of this bundle's log" in err
        assert "the log was rewritten or forked after it" in err


def test_a_checkpoint_from_before_the_dropped_leaf_cannot_tell(
    log: PetitionLog, forged: Path, tmp_path: Path
) -> None:
    """Only checkpoints that cover the dropped leaf show it: keep the latest one you see."""
    assert main(["verify", str(forged), "--known-checkpoint", str(kept(log, tmp_path, 4))]) == 0


def test_known_checkpoints_of_the_honest_bundle_pass(
    log: PetitionLog, honest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = [kept(log, tmp_path, size) for size in (1, 5, 8, 13)]
    args = [arg for path in saved for arg in ("--known-checkpoint", str(path))]
    assert main(["verify", str(honest), *args]) == 0
    out, err = capsys.readouterr()
    assert "ok known checkpoint signatures: 4 kept checkpoints signed by" in out
    assert "ok known checkpoints consistent: all 4 are prefixes of the final tree" in out
    assert out.splitlines()[-1] == "count 12"
    assert err == ""


def test_known_checkpoint_named_in_the_library(
    log: PetitionLog, forged: Path, tmp_path: Path
) -> None:
    with pytest.raises(BundleError) as info:
        verify_bundle(forged, known_checkpoints=[("kept", log.checkpoint(9))])
    assert info.value.check == BundleCheck.KNOWN_CONSISTENT
    assert str(info.value).startswith("known checkpoints consistent: kept: ")


def test_known_checkpoint_of_another_key(
    log: PetitionLog, honest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A whole new log (new key, new petition.json) does not pass for the one you watched."""
    other = make_log(12, seed=2)
    saved = tmp_path / "other"
    saved.write_bytes(other.checkpoint(5))
    assert main(["verify", str(honest), "--known-checkpoint", str(saved)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: known checkpoint signatures: {saved}: ")
    assert "not signed by this bundle's log key" in err


def test_known_checkpoint_signed_by_an_impostor_of_the_same_name(
    log: PetitionLog, honest: Path, tmp_path: Path
) -> None:
    impostor = make_log(12)
    impostor.signer = LogSigner(origin=log.origin, seed=bytes(32))
    with pytest.raises(BundleError) as info:
        verify_bundle(honest, known_checkpoints=[("kept", impostor.checkpoint(5))])
    assert info.value.check == BundleCheck.KNOWN_SIGNATURES


@pytest.mark.parametrize("content", [b"", b"not a checkpoint\n", b"\xff\xfe"])
def test_known_checkpoint_that_is_not_one(
    honest: Path, tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "garbage"
    saved.write_bytes(content)
    assert main(["verify", str(honest), "--known-checkpoint", str(saved)]) == 1
    assert capsys.readouterr().err.startswith(f"error: known checkpoint signatures: {saved}: ")


def test_known_checkpoint_missing_or_too_large(
    honest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent"
    assert main(["verify", str(honest), "--known-checkpoint", str(missing)]) == 1
    out, err = capsys.readouterr()
    assert out == ""  # refused before the bundle is read
    assert (
        err == f"error: --known-checkpoint {missing}: cannot read it: No such file or directory\n"
    )
    huge = tmp_path / "huge"
    huge.write_bytes(b"x" * (2 << 20))
    assert main(["verify", str(honest), "--known-checkpoint", str(huge)]) == 1
    assert capsys.readouterr().err == (
        f"error: --known-checkpoint {huge} is too large to be a checkpoint\n"
    )


def test_bundle_errors_come_before_known_checkpoints(
    log: PetitionLog, honest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (honest / "VERIFY.txt").write_bytes(b"edited\n")
    saved = kept(log, tmp_path, 5)
    assert main(["verify", str(honest), "--known-checkpoint", str(saved)]) == 1
    assert capsys.readouterr().err.startswith("error: SHA256SUMS: ")
    reseal(honest)


# --- receipt --bundle ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [7, 8, 13])
def test_the_dropped_signers_receipt_is_refused_against_the_forgery(
    log: PetitionLog, forged: Path, tmp_path: Path, size: int, capsys: pytest.CaptureFixture[str]
) -> None:
    proof = receipt(log, tmp_path, DROPPED, size)
    assert main(["receipt", str(proof), "--bundle", str(forged)]) == 1
    out, err = capsys.readouterr()
    assert "counted" not in out
    if size == 13:
        assert err.splitlines()[-1] == (
            "error: this receipt's checkpoint of size 13 is not part of this bundle's log: the "
            "bundle ends at size 12, so it leaves out signatures the log had signed (if this is "
            "the final bundle, the log was rewritten after your receipt)"
        )
    else:
        assert err.splitlines()[-1] == (
            f"error: this receipt's checkpoint of size {size} is not part of this bundle's "
            "log: the log was rewritten or forked after your receipt"
        )


def test_a_later_signers_receipt_also_shows_the_forgery(
    log: PetitionLog, forged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proof = receipt(log, tmp_path, 11, 13)
    assert main(["receipt", str(proof), "--bundle", str(forged)]) == 1
    assert "is not part of this bundle's log" in capsys.readouterr().err


def test_an_earlier_receipt_is_still_consistent_with_the_forgery(
    log: PetitionLog, forged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proof = receipt(log, tmp_path, 2, 4)
    assert main(["receipt", str(proof), "--bundle", str(forged)]) == 0
    assert capsys.readouterr().out.startswith("counted: leaf 2 in checkpoint of size 4")


@pytest.mark.parametrize(
    ("index", "size", "how"),
    [
        (6, 8, "identical to the bundle's checkpoints/8"),
        (6, 13, "identical to the bundle's checkpoints/13"),
        (3, 6, "the root of the bundle's first 6 leaves"),
    ],
)
def test_receipts_against_the_honest_bundle(
    log: PetitionLog,
    honest: Path,
    tmp_path: Path,
    index: int,
    size: int,
    how: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proof = receipt(log, tmp_path, index, size)
    assert main(["receipt", str(proof), "--bundle", str(honest)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"counted: leaf {index} in checkpoint of size {size} of {log.origin}",
        f"in the bundle: your checkpoint is {how}, and leaf {index} of its leaves.bin is yours;"
        " the bundle counts 12",
    ]
    assert "bundle verified" in err


def test_receipt_bundle_and_vkey_must_agree(
    log: PetitionLog, honest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proof = receipt(log, tmp_path, 3, 13)
    args = ["receipt", str(proof), "--bundle", str(honest)]
    assert main([*args, "--vkey", log.signer.vkey]) == 0
    capsys.readouterr()
    other = make_log(0, seed=2).signer.vkey
    assert main([*args, "--vkey", other]) == 1
    assert "the bundle's log key is not the key given with --vkey" in capsys.readouterr().err


def test_receipt_of_another_petition_against_a_bundle(
    honest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = make_log(5, seed=2)
    proof = tmp_path / "other.tlog-proof"
    proof.write_bytes(other.receipt_proof(other.signatures[0]))
    assert main(["receipt", str(proof), "--bundle", str(honest)]) == 1
    err = capsys.readouterr().err
    assert "this receipt's checkpoint is not signed by this bundle's log key" in err


def test_receipt_needs_a_vkey_or_a_bundle(
    log: PetitionLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proof = receipt(log, tmp_path, 3, 13)
    with pytest.raises(SystemExit) as exited:
        main(["receipt", str(proof)])
    assert exited.value.code == 2
    assert "--vkey" in capsys.readouterr().err


def test_receipt_against_a_bundle_that_fails(
    log: PetitionLog, honest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (honest / "VERIFY.txt").write_bytes(b"edited\n")
    proof = receipt(log, tmp_path, 3, 13)
    assert main(["receipt", str(proof), "--bundle", str(honest)]) == 1
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: SHA256SUMS: ")


def test_a_broken_receipt_is_not_called_a_split_view(
    log: PetitionLog, honest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proof = receipt(log, tmp_path, 3, 13)
    proof.write_bytes(proof.read_bytes().replace(b"index 3\n", b"index 4\n"))
    assert main(["receipt", str(proof), "--bundle", str(honest)]) == 1
    err = capsys.readouterr().err
    assert "inclusion" in err and "not part of this bundle's log" not in err
