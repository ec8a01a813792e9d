"""Configuration: secrets have no default outside demo mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from samleng.service.platform.config import DEMO_ORIGIN, Config, load_config
from samleng.service.platform.errors import ConfigError
from samleng.service.platform.keys import derive_key, ensure_master_key


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("SAMLENG_"):
            monkeypatch.delenv(name)
    path = tmp_path / "instance"
    monkeypatch.setenv("SAMLENG_INSTANCE", str(path))
    return path


def test_refuses_to_start_without_the_master_key(
    instance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAMLENG_ORIGIN", "petitions.example.org")
    with pytest.raises(ConfigError, match="missing secret: the master key file"):
        load_config()


def test_refuses_to_start_without_origin(instance: Path) -> None:
    ensure_master_key(instance)
    with pytest.raises(ConfigError, match="SAMLENG_ORIGIN"):
        load_config()


def test_refuses_a_readable_master_key(instance: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMLENG_ORIGIN", "petitions.example.org")
    ensure_master_key(instance)
    (instance / "master.key").chmod(0o644)
    with pytest.raises(ConfigError, match="0600"):
        load_config()


def test_master_key_file_is_private_and_never_overwritten(instance: Path) -> None:
    assert ensure_master_key(instance)
    key = (instance / "master.key").read_bytes()
    assert stat.S_IMODE((instance / "master.key").stat().st_mode) == 0o600
    assert not ensure_master_key(instance)
    assert (instance / "master.key").read_bytes() == key


def test_reads_prefixed_environment(instance: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_master_key(instance)
    monkeypatch.setenv("SAMLENG_ORIGIN", "petitions.example.org")
    monkeypatch.setenv("SAMLENG_SEAL_INTERVAL", "5")
    monkeypatch.setenv("SAMLENG_ARGON2_MEMORY_KIB", "8192")
    monkeypatch.setenv("SAMLENG_DEFAULT_LANG", "en")
    monkeypatch.setenv("SAMLENG_ARGON2_WAIT", "0.25")
    monkeypatch.setenv("SAMLENG_PAGE_CACHE_SECONDS", "2")
    cfg = load_config()
    assert cfg.seal_interval == 5 and cfg.argon2.memory_kib == 8192 and cfg.default_lang == "en"
    assert cfg.argon2_wait == 0.25 and cfg.page_cache_seconds == 2
    assert cfg.database_url == f"sqlite:///{instance / 'samleng.sqlite3'}"
    assert "master_key" not in repr(cfg) or repr(cfg.master_key) not in repr(cfg)


def test_demo_has_a_default_origin(instance: Path) -> None:
    ensure_master_key(instance)
    assert load_config(demo=True).origin == DEMO_ORIGIN


@pytest.mark.parametrize("origin", ["https://x.org", "x.org/p a", "x.org+1", "", "X.ORG", "x.org/"])
def test_bad_origin_is_refused(tmp_path: Path, origin: str) -> None:
    with pytest.raises(ConfigError):
        Config(
            instance_path=tmp_path, database_url="sqlite://", origin=origin, master_key=b"k" * 32
        )


def test_derived_keys_are_separate() -> None:
    master = bytes(32)
    assert derive_key(master, "form-token") != derive_key(master, "rate-limit")
    assert len(derive_key(master, "form-token")) == 32


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("argon2_wait", -1, "SAMLENG_ARGON2_WAIT must be between 0 and 30 seconds"),
        ("argon2_wait", 31, "SAMLENG_ARGON2_WAIT must be between 0 and 30 seconds"),
        ("page_cache_seconds", -0.5, "SAMLENG_PAGE_CACHE_SECONDS must be between 0 and 60"),
        ("page_cache_seconds", 61, "SAMLENG_PAGE_CACHE_SECONDS must be between 0 and 60"),
        ("argon2_concurrency", 0, "SAMLENG_ARGON2_CONCURRENCY must be at least 1"),
    ],
)
def test_out_of_range_settings_are_refused(
    tmp_path: Path, setting: str, value: float, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(
            instance_path=tmp_path,
            database_url="sqlite://",
            origin="x.org",
            master_key=b"k" * 32,
            **{setting: value},  # type: ignore[arg-type]
        )
