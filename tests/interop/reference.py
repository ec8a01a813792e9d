"""The reference implementations of the C2SP witness and tile specs, built and run on loopback.

Built from the Go module proxy with ``go install module/cmd@version`` (each tool with the
dependency versions its own go.mod pins), once: the binaries, the module cache and the build
cache live under build/interop-go/ (gitignored), and a binary whose embedded module version is
the pinned one is used again as it is. ``witnessverify`` (tests/interop/witnessverify, our own
small program on torchwood's library) is rebuilt every run, which the build cache makes quick.

Pinned versions are the newest whose ``go`` directive this machine's Go (1.25 or later) meets:
torchwood v0.10.0 asks for Go 1.27, and transparency-dev/witness has no tags, only pseudo-
versions. A tool that does not build fails the tests that need it, with Go's message.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from samleng.crypto.cosignature import WitnessVerifier
from samleng.crypto.note import NoteSigner
from samleng.service.tlog.witnessing import WitnessEndpoint
from tests.components import REPO, free_port, stop_process, wait_for_port

BUILD = REPO / "build" / "interop-go"
WITNESSVERIFY_SOURCE = Path(__file__).with_name("witnessverify")
MIN_GO = (1, 25)  # transparency-dev/witness's go directive is 1.25.0


@dataclass(frozen=True)
class GoTool:
    """One pinned command of a module on the Go module proxy."""

    module: str
    version: str
    package: str  # the command's package path inside the module

    @property
    def spec(self) -> str:
        """Return the ``go install`` argument."""
        return f"{self.module}/{self.package}@{self.version}"


TORCHWOOD = "filippo.io/torchwood"
TOOLS = {
    "litewitness": GoTool(TORCHWOOD, "v0.9.0", "cmd/litewitness"),
    "witnessctl": GoTool(TORCHWOOD, "v0.9.0", "cmd/witnessctl"),
    "omniwitness": GoTool(
        "github.com/transparency-dev/witness",
        "v0.0.0-20260720115447-2e1c6971d19e",
        "cmd/omniwitness",
    ),
    # Tessera's checker of tlog-tiles logs: it refetches every tile and recomputes the root.
    "fsck": GoTool("github.com/transparency-dev/tessera", "v1.0.4", "cmd/fsck"),
}


def go_env() -> dict[str, str]:
    """The environment of every go command: caches under build/, modules from GOPROXY."""
    env = dict(os.environ)  # GOPROXY and any proxy settings come from the environment
    env.update(
        {
            "GOPATH": str(BUILD / "gopath"),
            "GOMODCACHE": str(BUILD / "mod"),
            "GOCACHE": str(BUILD / "cache"),
            "GOBIN": str(BUILD / "bin"),
            # -modcacherw: the module cache stays deletable, so `make clean` (rm -rf build)
            # works without root.
            "GOFLAGS": "-mod=mod -modcacherw",
            "GOTOOLCHAIN": "local",
            "CGO_ENABLED": "0",
            "GO111MODULE": "on",
        }
    )
    return env


# Where a newer Go may be besides PATH: Debian's golang-go (1.19 on Debian 12) may come first
# on PATH, and the machine's own Go lives in /usr/local/go.
_GO_ELSEWHERE = ("/usr/local/go/bin/go", "/usr/lib/go/bin/go")


def modern_go(minimum: tuple[int, int]) -> str | None:
    """The first Go toolchain, on PATH and then in the usual places, at least ``minimum``."""
    seen: list[str] = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        seen.append(os.path.join(folder, "go"))
    seen += [*_GO_ELSEWHERE, *sorted(glob.glob("/usr/lib/go-1.*/bin/go"), reverse=True)]
    for candidate in seen:
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            try:
                if go_version(candidate) >= minimum:
                    return candidate
            except AssertionError:
                continue
    return None


def go_version(go: str) -> tuple[int, int]:
    """Return the (major, minor) version of the Go toolchain ``go``."""
    done = subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60, check=False
    )
    match = re.match(r"go(\d+)\.(\d+)", done.stdout.strip())
    assert match, f"cannot tell the version of {go}: {done.stdout!r} {done.stderr!r}"
    return int(match.group(1)), int(match.group(2))


def built_version(go: str, binary: Path, module: str) -> str | None:
    """Return the version of ``module`` a Go binary was built from, or None."""
    if not binary.is_file():
        return None
    done = subprocess.run(
        [go, "version", "-m", str(binary)], capture_output=True, text=True, timeout=60, check=False
    )
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0] == "mod" and fields[1] == module:
            return fields[2]
    return None


@dataclass
class Built:
    """The binaries, and how long building them took this run (0 when cached)."""

    paths: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    reused: set[str] = field(default_factory=set)  # binaries of the pinned version found built


def build_tools(go: str) -> Built:
    """Build (or reuse) every pinned tool and witnessverify; AssertionError with Go's message."""
    built = Built()
    env = go_env()
    BUILD.mkdir(parents=True, exist_ok=True)
    for name, tool in TOOLS.items():
        binary = BUILD / "bin" / name
        started = time.monotonic()
        if built_version(go, binary, tool.module) == tool.version:
            built.reused.add(name)
        else:
            done = subprocess.run(
                [go, "install", tool.spec],
                env=env,
                cwd=BUILD,
                capture_output=True,
                text=True,
                timeout=1200,
                check=False,
            )
            assert done.returncode == 0, f"go install {tool.spec} failed:\n{done.stderr}"
        built.paths[name] = binary
        built.seconds[name] = time.monotonic() - started
    started = time.monotonic()
    binary = BUILD / "bin" / "witnessverify"
    done = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        env=env,
        cwd=WITNESSVERIFY_SOURCE,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, f"building tests/interop/witnessverify failed:\n{done.stderr}"
    built.paths["witnessverify"] = binary
    built.seconds["witnessverify"] = time.monotonic() - started
    return built


# --- running the witnesses ---------------------------------------------------------------------


class SSHAgent:
    """A private ssh-agent holding Ed25519 witness keys, as litewitness wants its key."""

    def __init__(self, ssh_agent: str, ssh_add: str, directory: Path) -> None:
        """Start the agent on a socket in ``directory``."""
        self.ssh_add = ssh_add
        self.directory = directory
        self.socket = directory / "agent.sock"
        self.process = subprocess.Popen(
            [ssh_agent, "-D", "-a", str(self.socket)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            assert self.process.poll() is None, "ssh-agent exited"
            assert time.monotonic() < deadline, "ssh-agent made no socket"
            time.sleep(0.02)

    def add_key(self, name: str, seed: bytes) -> str:
        """Load an Ed25519 key; return its SHA256 fingerprint, as litewitness's -key takes it."""
        key = Ed25519PrivateKey.from_private_bytes(seed)
        path = self.directory / f"key-{hashlib.sha256(seed).hexdigest()[:8]}"
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        path.write_bytes(pem)
        path.chmod(0o600)
        done = subprocess.run(
            [self.ssh_add, str(path)],
            env={**os.environ, "SSH_AUTH_SOCK": str(self.socket)},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        blob = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        wire = base64.b64decode(blob.split()[1])
        return "SHA256:" + base64.b64encode(hashlib.sha256(wire).digest()).decode().rstrip("=")

    def stop(self) -> None:
        """Stop the agent."""
        stop_process(self.process)


@dataclass
class RunningWitness:
    """A witness process on a loopback port, with the key it cosigns with."""

    kind: str
    url: str
    verifier: WitnessVerifier
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def endpoint(self) -> WitnessEndpoint:
        """Return what the witness client needs to reach it."""
        return WitnessEndpoint(url=self.url, verifier=self.verifier)

    def output(self) -> str:
        """Return what the witness logged so far."""
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """Stop the witness."""
        stop_process(self.process)


def _start(command: list[str], directory: Path, port: int, what: str) -> subprocess.Popen[bytes]:
    """Start a server process logging to ``directory``/log and wait for its port."""
    with (directory / "log").open("wb") as log:
        process = subprocess.Popen(
            command, cwd=directory, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        wait_for_port(port, process, what)
    except BaseException:
        stop_process(process)
        raise
    return process


def start_litewitness(
    tools: Built,
    agent: SSHAgent,
    directory: Path,
    *,
    name: str,
    seed: bytes,
    logs: list[tuple[str, str]],
    port: int | None = None,
) -> RunningWitness:
    """Run litewitness with key ``seed`` (via the agent), knowing each ``(origin, vkey)`` log,
    on ``port`` (a free one when None)."""
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "litewitness.db"
    for origin, vkey in logs:
        for args in (["add-log", "-origin", origin], ["add-key", "-origin", origin, "-key", vkey]):
            done = subprocess.run(
                [str(tools.paths["witnessctl"]), args[0], "-db", str(db), *args[1:]],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr
    fingerprint = agent.add_key(name, seed)
    port = port or free_port()
    command = [
        str(tools.paths["litewitness"]),
        "-name", name,
        "-db", str(db),
        "-ssh-agent", str(agent.socket),
        "-key", fingerprint,
        "-listen", f"127.0.0.1:{port}",
    ]  # fmt: skip
    process = _start(command, directory, port, "litewitness")
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    return RunningWitness(
        kind="litewitness",
        url=f"http://127.0.0.1:{port}",
        verifier=WitnessVerifier.from_public_key(name, public),
        process=process,
        log=directory / "log",
    )


def start_omniwitness(
    tools: Built,
    directory: Path,
    *,
    name: str,
    seed: bytes,
    logs: list[tuple[str, str]],
    port: int | None = None,
) -> RunningWitness:
    """Run omniwitness with key ``seed``, knowing each ``(origin, vkey)`` log besides its own list.

    Its embedded list of public logs is only configuration: this version polls no log (feeding
    is the separate feedwitness command), so it runs without the internet, fed by add-checkpoint.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "witness.key"
    key.write_text(NoteSigner(name=name, seed=seed).skey + "\n")
    key.chmod(0o600)
    logs_yaml = directory / "logs.yaml"
    logs_yaml.write_text(
        "Logs:\n"
        + "".join(
            f"  - Origin: {origin}\n    PublicKey: {vkey}\n    URL: https://{origin}/\n"
            for origin, vkey in logs
        )
    )
    port = port or free_port()
    command = [
        str(tools.paths["omniwitness"]),
        "--listen", f"127.0.0.1:{port}",
        "--metrics_listen", "",
        "--private_key_path", str(key),
        "--additional_logs", str(logs_yaml),
        "--db_file", str(directory / "omniwitness.db"),
        "--logtostderr",
    ]  # fmt: skip
    process = _start(command, directory, port, "omniwitness")
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    return RunningWitness(
        kind="omniwitness",
        url=f"http://127.0.0.1:{port}",
        verifier=WitnessVerifier.from_public_key(name, public),
        process=process,
        log=directory / "log",
    )


def run_tool(
    binary: Path, *args: str | Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run one of the Go tools to completion."""
    return subprocess.run(
        [str(binary), *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )
