"""Where the service's own log lines go: stderr, with the level journald understands.

Under systemd (JOURNAL_STREAM is set) each line starts with its syslog priority, ``<2>`` for
critical, so that ``journalctl -p crit`` and any alert on priorities finds the split-view
alarm; elsewhere the level is written out. Log lines never hold an address, an identifier
or a signing time (DESIGN §8); this only chooses how they are printed.
"""

from __future__ import annotations

import logging
import os
import sys

# Python's levels as syslog priorities (RFC 5424): critical 2, error 3, warning 4, info 6.
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class JournalFormatter(logging.Formatter):
    """``<priority>logger: message``, journald's way of giving a line its level."""

    def format(self, record: logging.LogRecord) -> str:
        """Prefix the line with its syslog priority."""
        priority = _PRIORITY.get(record.levelno, 6)
        return f"<{priority}>{record.name}: {super().format(record)}"


def configure_logging() -> None:
    """Send warnings and worse to stderr, once per process (a no-op if already set up)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
