"""Tests for the samleng-audit command line, in-process and once as the installed program."""

import subprocess
import sys
from pathlib import Path

import pytest

from samleng.crypto.audit import main
from samleng.crypto.leaf import LeafKind, encode_leaf
from tests.crypto.logfactory import PetitionLog, make_log, reseal

AUDIT = Path(sys.executable).parent / "samleng-audit"


@pytest.fixture(scope="module")
def log() -> PetitionLog:
    return make_log(9)


@pytest.fixture
def bundle(log: PetitionLog, tmp_path: Path) -> Path:
    return log.write_bundle(tmp_path / "bundle", history=[1, 4])


def test_verify_prints_checks_and_ends_with_count(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(bundle)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[-1] == "count 9"
    assert sum(line.startswith("ok ") for line in lines) == 17
    assert any("ok root:" in line for line in lines)
    # No progress for a small log; only the reminder that nothing outside the bundle was compared.
    assert err.startswith("note: no witness policy and no --known-checkpoint given.")
    assert len(err.splitlines()) == 1


def test_verify_prints_the_online_and_paper_parts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = make_log(4)
    log.append_leaf(encode_leaf(LeafKind.PAPER, bytes(range(32)), bytes(32)))
    assert main(["verify", str(log.write_bundle(tmp_path / "b"))]) == 0
    assert capsys.readouterr().out.splitlines()[-3:] == ["online 4", "paper 1", "count 5"]


def test_verify_failure(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (bundle / "VERIFY.txt").write_bytes(b"edited\n")
    assert main(["verify", str(bundle)]) == 1
    out, err = capsys.readouterr()
    assert err == "error: SHA256SUMS: VERIFY.txt does not match its SHA-256 in SHA256SUMS\n"
    assert "count" not in out


def test_verify_failure_names_the_check(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    leaves = bundle / "leaves.bin"
    leaves.write_bytes(leaves.read_bytes()[:-81])
    reseal(bundle)
    assert main(["verify", str(bundle)]) == 1
    assert capsys.readouterr().err.startswith("error: tree size: ")


def test_verify_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path / "absent")]) == 1
    assert capsys.readouterr().err.startswith("error: bundle files: ")


def test_verify_progress_for_large_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("samleng.crypto.audit._PROGRESS_MIN_LEAVES", 10)
    monkeypatch.setattr("samleng.crypto.bundle.CHUNK_LEAVES", 4)
    directory = make_log(40).write_bundle(tmp_path / "b")
    assert main(["verify", str(directory)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "count 40"
    assert err.splitlines()[-2] == "leaves: 41/41 read"
    assert 5 <= len(err.splitlines()) - 1 <= 11


def test_receipt_with_vkey_string(
    log: PetitionLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proof = tmp_path / "receipt.tlog-proof"
    proof.write_bytes(log.receipt_proof(log.signatures[4]))
    assert main(["receipt", str(proof), "--vkey", log.signer.vkey]) == 0
    assert capsys.readouterr().out == (
        f"counted: leaf 5 in checkpoint of size 10 of {log.origin}\n"
    )


def test_receipt_with_vkey_file(
    log: PetitionLog, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proof = tmp_path / "receipt.tlog-proof"
    proof.write_bytes(log.receipt_proof(log.signatures[0], size=4))
    assert main(["receipt", str(proof), "--vkey", str(bundle / "vkey")]) == 0
    assert capsys.readouterr().out == f"counted: leaf 1 in checkpoint of size 4 of {log.origin}\n"


def test_receipt_failures(
    log: PetitionLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proof = tmp_path / "receipt.tlog-proof"
    proof.write_bytes(log.receipt_proof(log.signatures[4]).replace(b"index 5", b"index 6"))
    assert main(["receipt", str(proof), "--vkey", log.signer.vkey]) == 1
    assert capsys.readouterr().err.startswith("error: inclusion proof")
    assert main(["receipt", str(proof), "--vkey", "garbage"]) == 1
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["receipt", str(tmp_path / "absent"), "--vkey", log.signer.vkey]) == 1
    assert capsys.readouterr().err.startswith("error: cannot read input")


def test_usage_errors() -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["receipt", "file"])  # --vkey is required
    assert info.value.code == 2


def test_installed_program(bundle: Path, log: PetitionLog, tmp_path: Path) -> None:
    assert AUDIT.exists(), "samleng-audit is not installed in the virtualenv"
    done = subprocess.run(
        [str(AUDIT), "verify", str(bundle)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "count 9"
    proof = tmp_path / "p"
    proof.write_bytes(log.receipt_proof(log.signatures[0]))
    done = subprocess.run(
        [str(AUDIT), "receipt", str(proof), "--vkey", log.signer.vkey],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (
        0,
        f"counted: leaf 1 in checkpoint of size 10 of {log.origin}\n",
    )
    (bundle / "leaves.bin").write_bytes(b"")
    done = subprocess.run(
        [str(AUDIT), "verify", str(bundle)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1 and done.stderr.startswith("error: SHA256SUMS: ")


# Runs the CLI in a fresh interpreter and reports its peak memory. VmHWM belongs to the
# process's own address space; getrusage's ru_maxrss would also count the parent's memory,
# which the child inherits across fork and exec.
_MEASURED = """
import sys
import time
from samleng.crypto.audit import main
from samleng.crypto.leaf import LeafKind, encode_leaf
status = main(sys.argv[1:])
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print("peak", peak[0].split()[1], file=sys.stderr)
sys.exit(status)
"""


@pytest.mark.slow
def test_million_leaves_in_bounded_memory(tmp_path: Path) -> None:
    from tests.crypto.test_bundle import write_large_bundle

    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux /proc to measure peak memory")
    count, _root = write_large_bundle(tmp_path / "big", 999_999, [1, 500_000, 999_000])
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, "verify", str(tmp_path / "big")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"count {count}"
    assert "leaves: 1000000/1000000 read" in done.stderr
    # 81 MB of leaves are never held at once: the set of commitments dominates (~100 MB).
    # The bound leaves room yet fails if leaves.bin or every leaf hash were kept in memory.
    peak_mib = int(done.stderr.split("peak ")[1].split()[0]) / 1024
    assert peak_mib < 250, peak_mib


@pytest.mark.parametrize(
    ("vkey", "said"),
    [
        ("https://petitions.example.org/p/free-them/vkey", "not a URL: download the bundle's"),
        ("no-such-file.vkey", "is neither a file nor a verifier key"),
    ],
)
def test_receipt_vkey_says_what_it_takes(
    log: PetitionLog, tmp_path: Path, capsys: pytest.CaptureFixture[str], vkey: str, said: str
) -> None:
    proof = tmp_path / "receipt.tlog-proof"
    proof.write_bytes(log.receipt_proof(log.signatures[4]))
    assert main(["receipt", str(proof), "--vkey", vkey]) == 1
    err = capsys.readouterr().err
    assert said in err and "'+'-separated" not in err
