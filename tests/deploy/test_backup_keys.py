"""deploy/samleng-backup keys: the petitions' key files, backed up apart from the database."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

from tests.deploy.render import DEPLOY

SCRIPT = DEPLOY / "samleng-backup"


def run(*args: str, instance: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SAMLENG_INSTANCE=str(instance))
    env.pop("SAMLENG_BACKUP_RECIPIENT", None)
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_key_backups_hold_petition_keys_only_and_never_beside_dumps(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    keys = instance / "keys"
    keys.mkdir(parents=True, mode=0o700)
    for name in ("dedup-00aa.key", "dedup-11bb.key", "epoch-7.key"):
        (keys / name).write_bytes(os.urandom(32))
    (instance / "master.key").write_bytes(os.urandom(32))

    backups = tmp_path / "keys-backups"
    done = run("keys", str(backups), instance=instance)
    assert done.returncode == 0, done.stderr
    (archive,) = backups.iterdir()
    assert archive.name.startswith("samleng-keys-") and archive.stat().st_mode & 0o077 == 0
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["dedup-00aa.key", "dedup-11bb.key"]

    inside = run("keys", str(instance / "backups"), instance=instance)
    assert inside.returncode == 2 and "inside the instance folder" in inside.stderr

    dumps = tmp_path / "db-backups"
    dumps.mkdir()
    (dumps / "samleng-2026-12-01.dump").write_bytes(b"PGDMP")
    beside = run("keys", str(dumps), instance=instance)
    assert beside.returncode == 2 and "database backups" in beside.stderr
    assert [p.name for p in dumps.iterdir()] == ["samleng-2026-12-01.dump"]

    database = run("backup", str(backups), instance=instance)
    assert database.returncode == 2 and "key backups" in database.stderr
