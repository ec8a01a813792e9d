"""``samleng-audit sample``: the sample audit's indices and detection probability."""

import hashlib
from pathlib import Path

import pytest

from samleng.crypto.audit import main
from samleng.crypto.checkpoint import Checkpoint
from samleng.crypto.sample import sample_indices
from tests.crypto.logfactory import PetitionLog, make_log, reseal

DRAW = "Cambodia lottery 2026-03-01: 482913"
# The seed is the hash of the final checkpoint, published first, then the value drawn later.
LOG = make_log(200)
FINAL_HASH = hashlib.sha256(LOG.checkpoint()).hexdigest()
SEED = f"{FINAL_HASH} {DRAW}"


@pytest.fixture(scope="module")
def log() -> PetitionLog:
    return LOG


@pytest.fixture
def bundle(log: PetitionLog, tmp_path: Path) -> Path:
    return log.write_bundle(tmp_path / "bundle", history=[50])


def sample(bundle: Path, *extra: str) -> int:
    return main(["sample", "--bundle", str(bundle), "--seed", SEED, *extra])


def test_sample_prints_the_indices_of_the_final_checkpoint(
    log: PetitionLog, bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sample(bundle, "-k", "12") == 0
    out, err = capsys.readouterr()
    final = Checkpoint(origin=log.origin, size=log.size, root=log.tree.root(log.size))
    assert [int(line) for line in out.splitlines()] == sample_indices(final, SEED, 12)
    assert "sample of 12 of 200 signature leaves" in err
    # 2 fabricated of 200 (1%), 12 drawn: 1 - C(198, 12)/C(200, 12) = 1 - 188*187/(200*199).
    assert (
        "detection probability 0.1167: the chance that the sample holds at least one "
        "fabricated leaf if 2 of the 200 (0.01 of them) were fabricated"
    ) in err


def test_same_seed_same_indices(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sample(bundle, "-k", "30") == 0
    first = capsys.readouterr().out
    assert sample(bundle, "-k", "30") == 0
    assert capsys.readouterr().out == first
    assert main(["sample", "--bundle", str(bundle), "--seed", SEED + "!", "-k", "30"]) == 0
    assert capsys.readouterr().out != first


def test_fake_fraction(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sample(bundle, "-k", "50", "--fake-fraction", "0.1") == 0
    assert "if 20 of the 200 (0.1 of them)" in capsys.readouterr().err


def test_k_beyond_the_signatures(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sample(bundle, "-k", "201") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "error: k must be between 1 and the number of signatures (200)" in err


@pytest.mark.parametrize("args", [["-k", "0"], ["-k", "x"], ["-k", "3", "--fake-fraction", "2"]])
def test_bad_arguments(bundle: Path, args: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        sample(bundle, *args)
    assert exited.value.code == 2


def test_bundle_must_verify(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (bundle / "checkpoints" / "50").write_bytes((bundle / "checkpoint").read_bytes())
    reseal(bundle)
    assert sample(bundle, "-k", "3") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[-1].startswith("error: historical checkpoint signatures")


def test_out_is_written_only_when_the_sample_is_drawn(
    log: PetitionLog, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused = tmp_path / "too-many.txt"
    assert sample(bundle, "-k", "300", "--out", str(refused)) == 1
    assert "error: " in capsys.readouterr().err
    assert not refused.exists()

    drawn = tmp_path / "sample.txt"
    assert sample(bundle, "-k", "12", "--out", str(drawn)) == 0
    assert capsys.readouterr().out == ""
    final = Checkpoint(origin=log.origin, size=log.size, root=log.tree.root(log.size))
    assert [int(line) for line in drawn.read_text().splitlines()] == sample_indices(final, SEED, 12)
    assert sample(bundle, "-k", "12", "--out", str(drawn)) == 1  # never overwrites
    assert "exists; refusing to overwrite" in capsys.readouterr().err


def refused(bundle: Path, seed: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> str:
    """Run sample with ``seed``, expecting a refusal that writes nothing; return stderr."""
    out_file = tmp_path / "refused.txt"
    argv = ["sample", "--bundle", str(bundle), "--seed", seed, "-k", "3", "--out", str(out_file)]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and not out_file.exists()
    return err


@pytest.mark.parametrize("seed", [DRAW, "", f"{DRAW} {FINAL_HASH}", FINAL_HASH[:16] + " " + DRAW])
def test_a_seed_without_the_final_checkpoint_hash_is_refused(
    bundle: Path, seed: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    err = refused(bundle, seed, capsys, tmp_path)
    # The message gives the hash to publish and the procedure.
    assert f"\n  {FINAL_HASH}\n" in err
    assert "publish" in err and f'--seed "{FINAL_HASH} <random value>"' in err


def test_a_seed_naming_another_checkpoint_is_refused(
    log: PetitionLog, bundle: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The operator announced one final checkpoint and hands over a bundle with another."""
    announced = hashlib.sha256(log.checkpoint(150)).hexdigest()
    err = refused(bundle, f"{announced} {DRAW}", capsys, tmp_path)
    assert f"the seed starts with the SHA-256 {announced}" in err
    assert f"this bundle's final checkpoint has SHA-256 {FINAL_HASH}" in err
    assert "not the checkpoint that was announced" in err


@pytest.mark.parametrize("rest", ["", " ", "   \t"])
def test_a_seed_without_a_random_value_is_refused(
    bundle: Path, rest: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    err = refused(bundle, f"{FINAL_HASH}{rest}", capsys, tmp_path)
    assert "no random value after the final checkpoint's hash" in err


def test_an_upper_case_hash_is_refused(
    bundle: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """One spelling per published hash: another would give another sample."""
    err = refused(bundle, f"{FINAL_HASH.upper()} {DRAW}", capsys, tmp_path)
    assert "lower-case" in err


def test_the_hash_is_the_checkpoint_files_line_in_sha256sums(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert f"{FINAL_HASH}  checkpoint\n" in (bundle / "SHA256SUMS").read_text()
