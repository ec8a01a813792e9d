"""Bundles checked against a witness policy: the quorum on the final checkpoint, the history's
coverage, and the forged bundle of tests/crypto/test_forged_bundle.py, which the witnesses'
cosignatures now expose without any checkpoint kept elsewhere.
"""

import shutil
from pathlib import Path

import pytest

from samleng.crypto.audit import main
from samleng.crypto.bundle import (
    CHECKPOINT_FILE,
    POLICY_FILE,
    BundleCheck,
    checkpoint_path,
    verify_bundle,
    verify_receipt_in_bundle,
)
from samleng.crypto.errors import BundleError
from samleng.crypto.policy import parse_policy
from tests.crypto.logfactory import (
    PetitionLog,
    forge_without_leaf,
    make_cosigners,
    make_log,
    reseal,
    witness_policy,
)

HISTORY = [1, 4, 8]
DROPPED = 6
W1, W2, W3, STRANGER = make_cosigners(4)


@pytest.fixture(scope="module")
def log() -> PetitionLog:
    return make_log(12)


@pytest.fixture(scope="module")
def policy_bytes(log: PetitionLog) -> bytes:
    return witness_policy(log.signer.vkey, [W1, W2, W3], 2)


@pytest.fixture
def honest(log: PetitionLog, policy_bytes: bytes, tmp_path: Path) -> Path:
    return log.write_bundle(
        tmp_path / "honest", history=HISTORY, cosigners=[W1, W2, W3], policy=policy_bytes
    )


@pytest.fixture
def policy_file(policy_bytes: bytes, tmp_path: Path) -> Path:
    """The policy as the organisers published it, kept by the auditor."""
    path = tmp_path / "published-policy"
    path.write_bytes(policy_bytes)
    return path


def fails(directory: Path, check: BundleCheck, message: str, **kwargs: object) -> None:
    with pytest.raises(BundleError) as info:
        verify_bundle(directory, **kwargs)  # type: ignore[arg-type]
    assert info.value.check == check, str(info.value)
    assert message in str(info.value), str(info.value)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def test_an_honest_witnessed_bundle(honest: Path, log: PetitionLog) -> None:
    lines: list[str] = []
    report = verify_bundle(honest, on_check=lines.append)
    assert report.witnesses is not None
    assert report.witnesses.policy_source == "bundle"
    assert report.witnesses.final == {"w1", "w2", "w3"}
    assert (report.witnesses.history_met, report.witnesses.history_total) == (4, 4)
    assert report.witnesses.cosigned == (("w1", 4), ("w2", 4), ("w3", 4))
    assert report.count == 12
    checks = [line.split(":")[0].removeprefix("ok ") for line in lines]
    known = {
        BundleCheck.KNOWN_SIGNATURES,
        BundleCheck.KNOWN_CONSISTENT,
        BundleCheck.ENDORSEMENTS,
        BundleCheck.WITHDRAWALS,
    }
    assert checks == [check for check in BundleCheck if check not in known]
    assert (
        "ok witness policy: the bundle's policy file; witnesses w1, w2, w3; quorum: 2 of group "
        "witnesses (w1, w2, w3)" in lines
    )
    assert (
        "ok witness quorum: the final checkpoint (size 13) is cosigned by w1, w2, w3; the "
        "quorum needs 2 of group witnesses (w1, w2, w3)" in lines
    )
    assert (
        "ok historical cosignatures: 4 of 4 published checkpoints meet the quorum; cosigned by "
        "w1 4, w2 4, w3 4" in lines
    )


def test_the_cli_with_a_policy(
    honest: Path, policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(["verify", str(honest), "--policy", str(policy_file)], capsys)
    assert status == 0, err
    assert out.endswith("\ncount 12\n")
    assert "ok witness policy: the policy given;" in out
    assert err == ""  # no note: the auditor brought the policy
    status, out, err = run(["verify", str(honest)], capsys)
    assert status == 0
    assert "the witness policy came from the bundle itself" in err


def test_the_forged_bundle_fails_its_own_policy(
    honest: Path, log: PetitionLog, tmp_path: Path
) -> None:
    forged = forge_without_leaf(honest, tmp_path / "forged", DROPPED, log.signer)
    fails(
        forged,
        BundleCheck.WITNESS_QUORUM,
        "the final checkpoint (size 12) is cosigned by no witness of the policy, but the "
        "policy's quorum needs 2 of group witnesses (w1, w2, w3)",
    )


def test_the_forged_bundle_without_its_policy_fails_the_auditors(
    honest: Path,
    log: PetitionLog,
    policy_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    forged = forge_without_leaf(honest, tmp_path / "forged", DROPPED, log.signer)
    (forged / POLICY_FILE).unlink()
    reseal(forged)
    assert verify_bundle(forged).count == 11  # alone, still consistent with itself
    status, out, err = run(["verify", str(forged), "--policy", str(policy_file)], capsys)
    assert status == 1
    assert "error: witness quorum: the final checkpoint (size 12) is cosigned by no witness" in err
    assert "count" not in out


def test_copied_cosignatures_do_not_save_the_forgery(
    honest: Path, log: PetitionLog, tmp_path: Path
) -> None:
    forged = forge_without_leaf(honest, tmp_path / "forged", DROPPED, log.signer)
    # The forger appends the witnesses' lines of the honest final checkpoint to the new one.
    honest_final = (honest / CHECKPOINT_FILE).read_bytes()
    lines = honest_final[honest_final.rfind(b"\n\n") + 2 :].split(b"\n", 1)[1]
    for name in (CHECKPOINT_FILE, checkpoint_path(12)):
        path = forged / name
        path.write_bytes(path.read_bytes() + lines)
    reseal(forged)
    fails(
        forged,
        BundleCheck.WITNESS_QUORUM,
        "checkpoint: invalid cosignature by witness witness-1.example/w: a witness of the "
        "policy did not make this cosignature",
    )


def test_witnesses_added_late_cover_part_of_the_history(
    log: PetitionLog, policy_bytes: bytes, tmp_path: Path
) -> None:
    directory = log.write_bundle(tmp_path / "b", history=HISTORY, policy=policy_bytes)
    for size in (8, 13):  # only the last two checkpoints were witnessed
        note = log.witnessed_checkpoint(size, [W1, W3] if size == 13 else [W2])
        (directory / checkpoint_path(size)).write_bytes(note)
    (directory / CHECKPOINT_FILE).write_bytes(log.witnessed_checkpoint(13, [W1, W3]))
    reseal(directory)
    report = verify_bundle(directory)
    assert report.witnesses is not None
    assert (report.witnesses.history_met, report.witnesses.history_total) == (1, 4)
    assert report.witnesses.cosigned == (("w1", 1), ("w2", 1), ("w3", 1))


def test_too_few_cosignatures_on_the_final_checkpoint(
    log: PetitionLog, policy_bytes: bytes, tmp_path: Path
) -> None:
    directory = log.write_bundle(
        tmp_path / "b", history=HISTORY, cosigners=[W2, STRANGER], policy=policy_bytes
    )
    fails(
        directory,
        BundleCheck.WITNESS_QUORUM,
        "the final checkpoint (size 13) is cosigned by w2, but the policy's quorum needs 2",
    )
    # The auditor's policy wins over the bundle's: with one that trusts the stranger, it passes.
    trusting = parse_policy(witness_policy(log.signer.vkey, [W2, STRANGER], 2))
    assert verify_bundle(directory, policy=trusting).witnesses is not None


def test_a_bad_cosignature_in_the_history(honest: Path, log: PetitionLog) -> None:
    other = log.witnessed_checkpoint(8, [W3])
    w3_line = other[other.rfind(b"\n\n") + 2 :].split(b"\n", 1)[1]
    (honest / checkpoint_path(4)).write_bytes(log.checkpoint(4) + w3_line)
    reseal(honest)
    fails(honest, BundleCheck.HISTORY_COSIGNATURES, "checkpoints/4: invalid cosignature")


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (b"quorum nobody\n", "policy: line 1: quorum 'nobody' is not defined"),
        (b"\xff", "policy: policy is not UTF-8"),
    ],
)
def test_a_malformed_bundle_policy(
    log: PetitionLog, tmp_path: Path, policy: bytes, message: str
) -> None:
    directory = log.write_bundle(tmp_path / "b", policy=policy)
    fails(directory, BundleCheck.POLICY, message)


def test_a_policy_of_another_log(log: PetitionLog, tmp_path: Path) -> None:
    other = make_log(0, origin="other.example.org/p/x", seed=2).signer.vkey
    directory = log.write_bundle(
        tmp_path / "b", cosigners=[W1], policy=witness_policy(other, [W1], 1)
    )
    fails(directory, BundleCheck.POLICY, "lists logs, but not this bundle's log key")


def test_quorum_none_accepts_an_unwitnessed_bundle(log: PetitionLog, tmp_path: Path) -> None:
    directory = log.write_bundle(tmp_path / "b", policy=b"quorum none\n")
    report = verify_bundle(directory)
    assert report.witnesses is not None and report.witnesses.final == frozenset()


def test_a_malformed_policy_argument(
    honest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad-policy"
    bad.write_bytes(b"group\n")
    status, _, err = run(["verify", str(honest), "--policy", str(bad)], capsys)
    assert status == 1
    assert f"error: --policy {bad}: not a witness policy: line 1: wrong number" in err
    status, _, err = run(["verify", str(honest), "--policy", str(tmp_path / "none")], capsys)
    assert status == 1 and "cannot read it" in err


# --- receipts -----------------------------------------------------------------------------------


def test_a_receipt_against_the_policy(
    log: PetitionLog, policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signature = log.signatures[3]
    plain = log.receipt_proof(signature)
    witnessed = plain.replace(log.checkpoint(), log.witnessed_checkpoint(None, [W1, W2]))
    vkey = log.signer.vkey
    path = tmp_path / "receipt.tlog-proof"
    path.write_bytes(witnessed)
    status, out, err = run(
        ["receipt", str(path), "--vkey", vkey, "--policy", str(policy_file)], capsys
    )
    assert status == 0, err
    assert out == (
        "witnessed: cosigned by w1, w2; the quorum needs 2 of group witnesses (w1, w2, w3)\n"
        f"counted: leaf 4 in checkpoint of size 13 of {log.origin}\n"
    )
    path.write_bytes(plain)  # downloaded before the witnesses answered
    status, out, err = run(
        ["receipt", str(path), "--vkey", vkey, "--policy", str(policy_file)], capsys
    )
    assert status == 1 and out == ""
    assert "error: the checkpoint of size 13 is cosigned by no witness of the policy" in err


def test_a_receipt_against_a_forged_bundle_and_the_policy(
    honest: Path,
    log: PetitionLog,
    policy_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    forged = forge_without_leaf(honest, tmp_path / "forged", DROPPED, log.signer)
    (forged / POLICY_FILE).unlink()
    reseal(forged)
    # A receipt of a leaf the forger kept, downloaded after the forgery: alone it proves nothing.
    signature = log.signatures[0]
    path = tmp_path / "receipt.tlog-proof"
    path.write_bytes(log.receipt_proof(signature, size=4))
    argv = ["receipt", str(path), "--bundle", str(forged)]
    assert run(argv, capsys)[0] == 0
    status, _, err = run([*argv, "--policy", str(policy_file)], capsys)
    assert status == 1 and "error: witness quorum:" in err
    found = verify_receipt_in_bundle(path.read_bytes(), honest, policy=None)
    assert found.bundle.witnesses is not None and found.bundle.witnesses.final


def test_the_bundle_policy_is_listed_in_sha256sums(honest: Path) -> None:
    shutil.copy(honest / POLICY_FILE, honest / "policy-copy")
    fails(honest, BundleCheck.SUMS, "policy-copy is in the bundle but not in SHA256SUMS")
