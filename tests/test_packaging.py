"""The two distributions: samleng (the service) and samleng-audit (crypto/, for auditors and key
holders, installable on an air-gapped machine without the web service)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

from tests.crypto.logfactory import make_log

REPO = Path(__file__).resolve().parents[1]


def run(command: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=600,
        check=False, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


def test_every_service_package_is_installed() -> None:
    """pyproject.toml lists samleng.service's packages by hand (they live under another
    folder name): a new subpackage must be added there, or the installed app lacks it."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        "samleng." + ".".join(path.parent.relative_to(REPO).parts)
        for path in (REPO / "service").rglob("*.py")
        if "translations" not in path.parts
    }
    assert found == listed


def test_the_audit_tools_install_offline_without_the_service(tmp_path: Path) -> None:
    """make wheelhouse, then a fresh venv with no index: samleng-audit installs and verifies a
    bundle, and nothing of the web service (Flask, SQLAlchemy) comes with it."""
    wheelhouse = tmp_path / "wheelhouse"
    made = run(["make", "-C", REPO, "wheelhouse", f"WHEELHOUSE={wheelhouse}"])
    assert made.returncode == 0, made.stdout + made.stderr
    assert any(wheelhouse.glob("samleng_audit-*.whl")), list(wheelhouse.iterdir())

    offline = tmp_path / "venv"
    venv.create(offline, with_pip=True)
    python = offline / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    installed = run(
        [python, "-m", "pip", "install", "-q", "--no-index", "--find-links", wheelhouse,
         "samleng-audit"],
        env=env,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    listed = run([python, "-m", "pip", "list", "--format=freeze"], env=env).stdout.lower()
    assert "samleng-audit==" in listed
    for absent in ("flask", "sqlalchemy", "werkzeug", "phonenumbers", "weasyprint"):
        assert f"\n{absent}==" not in "\n" + listed, absent

    bundle = make_log(5).write_bundle(tmp_path / "bundle", history=[3])
    verified = run([offline / "bin" / "samleng-audit", "verify", bundle], env=env, cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip().splitlines()[-1] == "count 5"
    # The installed package is the wheel's copy, not this checkout's folder.
    where = run([python, "-c", "import samleng.crypto; print(samleng.crypto.__file__)"], env=env)
    assert str(offline) in where.stdout, where.stdout + where.stderr
    assert sys.prefix not in where.stdout
