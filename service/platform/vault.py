"""The instance's secrets: the master key, and the key files that must die on purpose.

A key that must not outlive its purpose never goes into the database, whose WAL, free pages,
indexes, replicas and backups keep copies nobody can reliably erase. It lives in a small file
of its own under ``<instance>/keys/`` (mode 0600, fsynced), and what it protects may be
copied anywhere: destroying the file (overwritten, fsynced, unlinked) makes every copy
useless. Such keys are each petition's key-encryption key (its dedup key dies with it at
``forget``) and each sealing epoch's private key (dies once the epoch's signatures are
sealed). See SECURITY.md, "What a seized server holds".

Nothing here imports Flask or SQLAlchemy.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from samleng.service.platform.errors import Error

KEYS_FOLDER = "keys"
_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{0,120}$")
_MAX_KEY_FILE_BYTES = 4096


class KeyFileError(Error):
    """A key file that is missing, unreadable or not private to its owner."""


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Vault:
    """The master key and the key files of one instance folder."""

    instance_path: Path
    master_key: bytes = field(repr=False)

    @property
    def folder(self) -> Path:
        """Where the key files live: ``<instance>/keys``, mode 0700."""
        return self.instance_path / KEYS_FOLDER

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ValueError(f"not a key file name: {name!r}")
        return self.folder / f"{name}.key"

    def create(self, name: str, key: bytes) -> None:
        """Write the new key file ``name`` (0600) and make it durable; never overwrites."""
        path = self._path(name)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_folder(self.folder)

    def create_random(self, name: str, length: int = 32) -> bytes:
        """Create the key file ``name`` holding ``length`` fresh random bytes; returns them."""
        key = secrets.token_bytes(length)
        self.create(name, key)
        return key

    def read(self, name: str) -> bytes:
        """The key in file ``name``; KeyFileError if it is missing or readable by others."""
        path = self._path(name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise KeyFileError(f"the key file {path} does not exist") from None
        except OSError as exc:
            raise KeyFileError(f"cannot read the key file {path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as file:
            if os.fstat(file.fileno()).st_mode & 0o077:
                raise KeyFileError(f"the key file {path} must be readable by its owner only")
            key = file.read(_MAX_KEY_FILE_BYTES + 1)
        if not key or len(key) > _MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"the key file {path} is empty or too large")
        return key

    def exists(self, name: str) -> bool:
        """Whether the key file ``name`` exists."""
        return self._path(name).exists()

    def destroy(self, name: str) -> bool:
        """Overwrite, fsync and unlink the key file ``name``. False if there was none.

        The overwrite matters on file systems that write in place; on copy-on-write or
        journalled ones, and on SSDs, old blocks may survive it, which is why SECURITY.md
        asks for full-disk encryption with the key off the disk.
        """
        path = self._path(name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return False
        try:
            size = os.fstat(fd).st_size
            os.write(fd, bytes(size))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            path.unlink()
        except FileNotFoundError:
            return False  # another process destroyed it meanwhile
        _fsync_folder(self.folder)
        return True

    def names(self, prefix: str) -> list[str]:
        """The names of the key files that start with ``prefix``."""
        if not self.folder.is_dir():
            return []
        return sorted(
            path.name.removesuffix(".key")
            for path in self.folder.iterdir()
            if path.name.startswith(prefix) and path.name.endswith(".key")
        )
