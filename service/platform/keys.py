"""The instance's secrets: the master key file and the keys derived from it.

One 32-byte master key (a file in the instance folder, mode 0600) from which the service's
other long-lived keys are derived with HKDF, one label per purpose, so that there is a single
such secret to back up. Keys that must die on purpose are not derived: they are key files of
their own (service/platform/vault.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from samleng.crypto import symmetric
from samleng.crypto.keywrap import new_master_key

MASTER_KEY_FILE = "master.key"
_LABEL = b"samleng-service/v1\n"


def derive_key(master_key: bytes, purpose: str) -> bytes:
    """A 32-byte key for one named purpose (e.g. ``form-token``), derived from the master key."""
    return symmetric.derive_key(master_key, _LABEL, purpose.encode())


def write_secret_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 holding ``data``; never overwrite an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure_master_key(instance_path: Path) -> bool:
    """Create the master key file if it does not exist. Returns True when it was created."""
    path = instance_path / MASTER_KEY_FILE
    if path.exists():
        return False
    write_secret_file(path, new_master_key())
    return True
