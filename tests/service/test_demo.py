"""The quick start: ``samleng demo`` serves a petition that can be signed over HTTP.

Runs the real console script and gunicorn in a subprocess, signs with plain HTTP like curl
would, then checks that the instance folder and the server's output hold nothing identifying.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.components import free_port, require_program
from tests.service.test_privacy import needles_in

SAMLENG = Path(sys.executable).parent / "samleng"


def start_demo(instance: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMLENG_")}
    env.update(
        SAMLENG_INSTANCE=str(instance),
        SAMLENG_PORT=str(port),
        SAMLENG_ARGON2_MEMORY_KIB="1024",
        SAMLENG_ARGON2_TIME_COST="1",
        SAMLENG_SEAL_INTERVAL="1",
    )
    with log.open("ab") as out:
        proc = subprocess.Popen([str(SAMLENG), "demo"], env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the demo did not start:\n" + log.read_text())


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[Path, int, Path]]:
    instance, port, log = tmp_path / "instance", free_port(), tmp_path / "demo.log"
    proc = start_demo(instance, port, log)
    try:
        yield instance, port, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def sign_over_http(port: int, phone: str, name: str) -> str:
    base = f"http://127.0.0.1:{port}"
    page = urllib.request.urlopen(f"{base}/km/p/demo").read().decode()
    token = re.search(r'name="form_token" value="([^"]+)"', page)
    assert token, page
    time.sleep(3)  # the demo keeps the real minimum fill time
    body = urllib.parse.urlencode(
        {"form_token": token.group(1), "identifier": phone, "name": name, "consent": "yes"}
    ).encode()
    answer = urllib.request.urlopen(f"{base}/km/p/demo/sign", data=body)
    assert "Set-Cookie" not in answer.headers
    html = answer.read().decode()
    receipt = re.search(r'<p class="receipt">([A-Z2-7-]+)</p>', html)
    assert receipt, html
    return receipt.group(1)


def test_demo_serves_signs_and_keeps_nothing(tmp_path: Path, demo: tuple[Path, int, Path]) -> None:
    instance, port, log = demo
    for name in ("master.key", "demo-details.key"):
        assert stat.S_IMODE((instance / name).stat().st_mode) == 0o600
    sign_over_http(port, "+855 12 345 678", "Sok Dara")
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/en/p/demo").read().decode()
    assert "End impunity" in page
    # The in-process sealer puts the signature into the log within a few intervals.
    deadline = time.monotonic() + 20
    count = 0
    while count == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/p/demo/count.json") as answer:
            count = json.load(answer)["count"]
    assert count >= 1
    for path in [p for p in tmp_path.rglob("*") if p.is_file() and p != log]:
        assert needles_in(path.read_bytes()) == [], path
    assert needles_in(log.read_bytes()) == []


def test_demo_is_idempotent(tmp_path: Path) -> None:
    instance, log = tmp_path / "instance", tmp_path / "demo.log"
    for _ in range(2):
        proc = start_demo(instance, free_port(), log)
        proc.terminate()
        proc.wait(timeout=30)
    assert log.read_text().count("Samleng demo: http://127.0.0.1:") == 2
    assert "Traceback" not in log.read_text()


def only_instance(instance: Path, **extra: str) -> dict[str, str]:
    """The environment of "another shell": no SAMLENG_ setting but the instance folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMLENG_")}
    env.update(SAMLENG_INSTANCE=str(instance), **extra)
    return env


def run(
    command: list[str | Path], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip


def test_the_demo_instance_seals_exports_and_closes_from_another_shell(
    tmp_path: Path, demo: tuple[Path, int, Path]
) -> None:
    """The quick start's walk-through: with only SAMLENG_INSTANCE set, and no system font
    at all (an empty fontconfig configuration), the demo's bundle is sealed, exported with
    its delivery.pdf in the shipped fonts, and verified."""
    instance, port, _ = demo
    sign_over_http(port, "+855 12 345 679", "Sok Dara")
    empty_fonts = tmp_path / "fonts.conf"
    empty_fonts.write_text('<?xml version="1.0"?>\n<fontconfig></fontconfig>\n')
    env = only_instance(instance, FONTCONFIG_FILE=str(empty_fonts))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    sealed = run([SAMLENG, "seal"], env, elsewhere)
    assert sealed.returncode == 0, sealed.stderr
    bundle = tmp_path / "b"
    exported = run([SAMLENG, "export", "demo", bundle], env, elsewhere)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert "verified: count 1" in exported.stdout
    audited = run([SAMLENG.with_name("samleng-audit"), "verify", bundle], env, elsewhere)
    assert audited.returncode == 0, audited.stderr
    assert audited.stdout.strip().splitlines()[-1] == "count 1"

    pdffonts = require_program("pdffonts", "apt-get install poppler-utils")
    fonts = run([pdffonts, bundle / "delivery.pdf"], env, elsewhere).stdout
    assert "+Samleng-Text " in fonts and "+Samleng-Mono " in fonts, fonts
    assert all(" yes yes " in line for line in fonts.splitlines()[2:]), fonts  # embedded

    closed = run([SAMLENG, "petition", "close", "demo"], env, elsewhere)
    assert closed.returncode == 0, closed.stderr
    assert "petition demo is closed" in closed.stdout


def test_help_needs_no_settings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMLENG_")}
    for tool in ("samleng", "samleng-audit"):
        shown = run([SAMLENG.with_name(tool), "--help"], env, tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert shown.stderr == ""
        assert "Usage" in shown.stdout or "usage" in shown.stdout
    listed = run([SAMLENG, "--help"], env, tmp_path).stdout
    for command in ("demo", "petition", "seal", "export", "export-details", "admin", "keys"):
        assert f"  {command} " in listed, command
    # Flask's own options and the groups extensions add are not the operator's business.
    for hidden in ("--app", "--debug", "-e, --env-file", "limiter"):
        assert hidden not in listed, hidden
