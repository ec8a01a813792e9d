"""The service's log lines: journald priorities under systemd, the level written elsewhere."""

from __future__ import annotations

import logging
import subprocess
import sys

from samleng.service.platform.logs import JournalFormatter

SCRIPT = """
import logging
from samleng.service.platform.logs import configure_logging
configure_logging()
configure_logging()  # once only
logging.getLogger("samleng.x").critical("SPLIT VIEW on p")
logging.getLogger("samleng.x").info("not shown")
"""


def run(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True
    )
    return done.stderr


def test_under_systemd_a_critical_line_has_priority_2() -> None:
    assert run({"JOURNAL_STREAM": "8:1234"}) == "<2>samleng.x: SPLIT VIEW on p\n"


def test_elsewhere_the_level_is_written_out() -> None:
    assert run({}) == "CRITICAL samleng.x: SPLIT VIEW on p\n"


def test_every_level_has_its_priority() -> None:
    formatter = JournalFormatter()
    for level, priority in ((logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6)):
        record = logging.LogRecord("n", level, __file__, 1, "m", None, None)
        assert formatter.format(record) == f"<{priority}>n: m"
