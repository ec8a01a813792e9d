"""``samleng-audit keygen``: the organisers' key pair on disk."""

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from samleng.crypto.audit import main
from samleng.crypto.keyfile import open_private_key
from samleng.crypto.tokens import Argon2Params

PASSPHRASE = "seven random words make a fine passphrase"


@pytest.fixture(autouse=True)
def cheap_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keygen with the cheapest Argon2id, so the tests take milliseconds."""
    monkeypatch.setattr(
        "samleng.crypto.audit.KEYFILE_ARGON2",
        Argon2Params(time_cost=1, memory_kib=8, parallelism=1),
    )


@pytest.fixture
def passphrase_file(tmp_path: Path) -> Path:
    path = tmp_path / "passphrase"
    path.write_text(PASSPHRASE + "\r\nsecond line ignored\n", encoding="utf-8")
    return path


def test_keygen_writes_a_matching_pair(
    tmp_path: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = tmp_path / "organisers"
    assert main(["keygen", "--out", str(prefix), "--passphrase-file", str(passphrase_file)]) == 0
    private_path, public_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    assert private_path.stat().st_mode & 0o777 == 0o600
    public_text = public_path.read_text(encoding="ascii")
    assert public_text.endswith("\n") and public_text.count("\n") == 1
    public = base64.b64decode(public_text.strip(), validate=True)
    private = open_private_key(private_path.read_bytes(), PASSPHRASE)
    assert X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw() == public
    out = capsys.readouterr().out
    assert f"public key {public_text.strip()}" in out
    assert base64.b64encode(private).decode() not in out


@pytest.mark.parametrize("existing", ["key", "pub"])
def test_keygen_refuses_to_overwrite(
    tmp_path: Path, passphrase_file: Path, existing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = tmp_path / "organisers"
    Path(f"{prefix}.{existing}").write_text("keep me\n")
    assert main(["keygen", "--out", str(prefix), "--passphrase-file", str(passphrase_file)]) == 1
    assert "exists; refusing to overwrite a key" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.glob("organisers.*")) == [f"organisers.{existing}"]
    assert Path(f"{prefix}.{existing}").read_text() == "keep me\n"


def test_keygen_prompts_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    typed = iter([PASSPHRASE, PASSPHRASE])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(typed))
    assert main(["keygen", "--out", str(tmp_path / "k")]) == 0
    assert open_private_key((tmp_path / "k.key").read_bytes(), PASSPHRASE)


def test_keygen_refuses_different_passphrases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    typed = iter([PASSPHRASE, PASSPHRASE + "!"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(typed))
    assert main(["keygen", "--out", str(tmp_path / "k")]) == 1
    assert "the two passphrases differ; nothing was written" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_keygen_refuses_a_short_passphrase(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    short = tmp_path / "short"
    short.write_text("hunter2\n")
    assert main(["keygen", "--out", str(tmp_path / "k"), "--passphrase-file", str(short)]) == 1
    assert "at least 12 characters" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["short"]


def test_a_short_passphrase_is_refused_before_it_is_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts: list[str] = []

    def typed(prompt: str) -> str:
        prompts.append(prompt)
        return "short"

    monkeypatch.setattr("getpass.getpass", typed)
    assert main(["keygen", "--out", str(tmp_path / "organisers")]) == 1
    assert len(prompts) == 1
    assert "nothing was written" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
