"""The benches in bench/ stay runnable: each script imports what it names and parses its options.

They measure the targets recorded in bench/README.md and no other test runs them (a run takes
minutes and a quiet machine), so a change to a module they import could break them unseen.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(path.name for path in BENCH.glob("*.py") if "\ndef main(" in path.read_text())


def test_the_benches_are_found() -> None:
    assert {"sign_floor.py", "read_path.py", "verify_10m.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_bench_starts(script: str) -> None:
    """``--help`` imports the script and everything it imports, and builds its options."""
    done = subprocess.run(
        [sys.executable, script, "--help"],
        cwd=BENCH, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: "), done.stdout
