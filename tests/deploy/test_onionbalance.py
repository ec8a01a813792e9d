"""deploy/onionbalance: one front onion address over several Samleng back ends, checked
statically like the torrc.

Debian's Onionbalance loads the rendered config.yaml with its own code (the validation and
key loading it does at start, without a tor to talk to); tor --verify-config accepts the
back end's torrc with HiddenServiceOnionbalanceInstance and its ob_config, and the front's
torrc. Nothing goes on the network: publishing needs the Tor network, which a test does not
have.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.components import free_port, require, require_program
from tests.deploy.render import DEPLOY, render_torrc, rewrite

ONIONBALANCE = DEPLOY / "onionbalance"
SYSTEM_PYTHON = "/usr/bin/python3"
# Onionbalance's own start-up checks, run by the system's Python where Debian installs it.
# Its instances ask the singleton for a tor controller when they are made: a static check has
# none to give (nothing is sent to it here).
_LOAD = """
import sys, types
from onionbalance.hs_v3 import onionbalance as ob, service
path = sys.argv[1]
ob.my_onionbalance.config_path = path
data = ob.my_onionbalance.load_config_file()
ob.my_onionbalance.controller = types.SimpleNamespace(controller=None)
try:
    loaded = [service.OnionbalanceService(s, path) for s in data["services"]]
except service.BadServiceInit:
    sys.exit("refused: BadServiceInit")
for s in loaded:
    print(s.onion_address.replace(".onion", ""), *[i.onion_address for i in s.instances])
"""


def onion_address(public_key: bytes) -> str:
    """The v3 onion address of an ed25519 public key (rend-spec-v3, "Encoding onion addresses")."""
    checksum = hashlib.sha3_256(b".onion checksum" + public_key + b"\x03").digest()[:2]
    return base64.b32encode(public_key + checksum + b"\x03").decode("ascii").lower()


def new_onion() -> tuple[Ed25519PrivateKey, str]:
    key = Ed25519PrivateKey.generate()
    return key, onion_address(key.public_key().public_bytes_raw())


def render_front(root: Path, backends: list[str]) -> tuple[Path, str]:
    """config.yaml with ``backends`` and a front key made as the operator makes it, by
    ``onionbalance-config`` (its file is named after the front address)."""
    tool = require_program("onionbalance-config", "apt-get install onionbalance")
    root.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        [tool, "--hs-version", "v3", "--no-interactive", "--output", str(root / "made")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    [key] = (root / "made").glob("*.key")
    front = key.stem
    assert len(front) == 56 and onion_address(base64.b32decode(front.upper())[:32]) == front
    config = rewrite(
        (ONIONBALANCE / "config.yaml").read_text(),
        [
            ("/etc/onionbalance/private_keys/samleng-front.key", str(key)),
            ("BACKEND-1", backends[0]),
            ("BACKEND-2", backends[1]),
        ],
        "onionbalance/config.yaml",
    )
    path = root / "config.yaml"
    path.write_text(config)
    return path, front


def load(config: Path) -> subprocess.CompletedProcess[str]:
    require_program("onionbalance", "apt-get install onionbalance")
    require(
        "Onionbalance's Python modules",
        Path(SYSTEM_PYTHON).exists(),
        "apt-get install onionbalance",
    )
    return subprocess.run(
        [SYSTEM_PYTHON, "-c", _LOAD, str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=config.parent,
        env={**os.environ, "ONIONBALANCE_LOG_LOCATION": str(config.parent / "ob.log")},
    )


def test_onionbalance_loads_the_front_and_its_back_ends(tmp_path: Path) -> None:
    backends = [new_onion()[1], new_onion()[1]]
    config, front = render_front(tmp_path / "front", backends)
    loaded = load(config)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert loaded.stdout.split() == [front, *backends]


def test_onionbalance_refuses_what_it_cannot_serve(tmp_path: Path) -> None:
    # The placeholders left in, and the front named as one of its own back ends.
    unedited = tmp_path / "unedited"
    unedited.mkdir()
    (unedited / "config.yaml").write_text((ONIONBALANCE / "config.yaml").read_text())
    refused = load(unedited / "config.yaml")
    assert refused.returncode != 0 and "BACKEND-1.onion" in refused.stderr
    first = new_onion()[1]
    config, front = render_front(tmp_path / "loop", [first, new_onion()[1]])
    config.write_text(config.read_text().replace(first, front))
    looped = load(config)
    assert looped.returncode != 0 and "BadServiceInit" in looped.stderr


def test_tor_accepts_a_back_end_and_the_front(tmp_path: Path) -> None:
    tor = require_program("tor", "apt-get install tor")
    front = new_onion()[1]
    torrc = render_torrc(tmp_path / "backend")
    public = "HiddenServicePort 80 127.0.0.1:"
    text = torrc.read_text()
    at = text.index(public)
    end = text.index("\n", at) + 1
    torrc.write_text(text[:end] + "HiddenServiceOnionbalanceInstance 1\n" + text[end:])
    service_dir = tmp_path / "backend" / "tor" / "samleng"
    service_dir.mkdir(mode=0o700, parents=True)
    ob_config = rewrite(
        (ONIONBALANCE / "ob_config").read_text(), [("FRONT", front)], "onionbalance/ob_config"
    )
    (service_dir / "ob_config").write_text(ob_config)
    for config in (torrc, render_front_torrc(tmp_path / "front")):
        result = subprocess.run(
            [tor, "--verify-config", "-f", str(config), "--defaults-torrc", os.devnull],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (config, result.stdout + result.stderr)
    # The back end's tor reads ob_config: a wrong front address is refused.
    (service_dir / "ob_config").write_text("MasterOnionAddress not-an-onion.onion\n")
    bad = subprocess.run(
        [tor, "--verify-config", "-f", str(torrc), "--defaults-torrc", os.devnull],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0, bad.stdout


def render_front_torrc(root: Path) -> Path:
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    torrc = rewrite(
        (ONIONBALANCE / "torrc").read_text(),
        [
            ("/var/lib/tor", str(root / "tor")),
            ("/run/tor", str(root / "run")),
            ("127.0.0.1:6666", f"127.0.0.1:{free_port()}"),
        ],
        "onionbalance/torrc",
    )
    path = root / "torrc"
    path.write_text(torrc)
    return path
