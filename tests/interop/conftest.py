"""The Go verifier built from tests/interop/verify.go, shared by the interop tests."""

import os
import subprocess
from pathlib import Path

import pytest

from tests.components import require, require_program

GO_SOURCE = Path(__file__).with_name("verify.go")
GOPATH = os.environ.get("SAMLENG_GOPATH", "/usr/share/gocode")
HINT = "apt-get install golang-go golang-golang-x-mod-dev"


@pytest.fixture(scope="session")
def go_verify(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build verify.go and return the binary."""
    go = require_program("go", HINT)
    x_mod = Path(GOPATH) / "src" / "golang.org" / "x" / "mod" / "sumdb"
    require(
        "golang.org/x/mod sumdb/note and sumdb/tlog sources",
        (x_mod / "note" / "note.go").is_file() and (x_mod / "tlog" / "tlog.go").is_file(),
        HINT,
    )
    work = tmp_path_factory.mktemp("go")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "GOPATH": GOPATH,
        "GO111MODULE": "off",  # GOPATH mode: packages come from the Debian tree, never a proxy
        "GOPROXY": "off",
        "GOFLAGS": "",
        "GOTOOLCHAIN": "local",
        "GOCACHE": str(work / "cache"),
        "CGO_ENABLED": "0",
    }
    binary = work / "verify"
    built = subprocess.run(
        [go, "build", "-o", str(binary), str(GO_SOURCE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return binary


def run(binary: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )
