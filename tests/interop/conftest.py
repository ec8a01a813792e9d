"""The Go programs of the interop tests: verify.go (GOPATH mode, Debian's x/mod), and the C2SP
reference implementations built from the Go module proxy (tests/interop/reference.py)."""

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.components import USED, program_version, require, require_program
from tests.interop.reference import (
    BUILD,
    MIN_GO,
    TOOLS,
    TORCHWOOD,
    Built,
    SSHAgent,
    build_tools,
    go_version,
    modern_go,
)

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
        # Kept between runs under build/ (gitignored), like the module tools: 20 s saved.
        "GOCACHE": str(BUILD / "cache-gopath"),
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


# --- the C2SP reference implementations (tests/interop/reference.py) ---------------------------


@pytest.fixture(scope="session")
def go_tools() -> Iterator[Built]:
    """litewitness, witnessctl, omniwitness, Tessera's fsck and witnessverify, built once."""
    go = modern_go(MIN_GO)
    require(
        f"Go {MIN_GO[0]}.{MIN_GO[1]} or later",
        go is not None,
        "the machine's Go (this kind has it in /usr/local/go); Debian 12's golang-go is 1.19",
    )
    assert go is not None
    USED["Go (for the witness tools)"] = f"{go}: Go {'.'.join(map(str, go_version(go)))}"
    started = time.monotonic()
    try:
        built = build_tools(go)
    except AssertionError as err:
        pytest.fail(str(err), pytrace=False)
    total = time.monotonic() - started
    for name, tool in TOOLS.items():
        how = "already built" if name in built.reused else f"built in {built.seconds[name]:.0f} s"
        USED[name] = f"{tool.module} {tool.version} ({how})"
    USED["witnessverify"] = (
        f"tests/interop/witnessverify on {TORCHWOOD} (Go tools ready in {total:.1f} s)"
    )
    yield built


@pytest.fixture(scope="session")
def ssh_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHAgent]:
    """A private ssh-agent for litewitness's keys."""
    agent = SSHAgent(
        require_program("ssh-agent", "apt-get install openssh-client"),
        require_program("ssh-add", "apt-get install openssh-client"),
        tmp_path_factory.mktemp("agent"),
    )
    # Neither says its version; ssh does, for the whole of OpenSSH.
    USED["ssh-agent"] = USED["ssh-add"] = program_version(["ssh", "-V"])
    yield agent
    agent.stop()
