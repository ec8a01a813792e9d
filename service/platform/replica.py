"""The read replica: a PostgreSQL streaming replica that serves the public reads.

Pages, the log's endpoints and receipt checks read from it (platform/dbsession.py:
``get_read_session``); everything that writes stays on the primary. When the replica does
not answer, reads go to the primary, and the replica is left alone for ``RETRY_SECONDS`` so
that each request does not wait for its connection attempt; then it is tried again.

Nothing of Flask: the app's ``Services`` holds one ``ReadReplica``.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

# How long reads stay on the primary after the replica failed once.
RETRY_SECONDS = 15.0
logger = logging.getLogger(__name__)


class ReadReplica:
    """The replica's sessions, and whether it may be tried now."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self._resting_until = 0.0

    def available(self) -> bool:
        """Whether to read from the replica now (it did not fail within the last while)."""
        return time.monotonic() >= self._resting_until

    def failed(self, error: Exception) -> None:
        """The replica failed a read: reads go to the primary for ``RETRY_SECONDS``."""
        if self.available():
            # For the operator, once per rest: the kind of failure only (the message names
            # the replica's address), and nothing of the request.
            logger.warning(
                "read replica failed (%s): reads go to the primary for %.0f s",
                type(error.__cause__ or error).__name__,
                RETRY_SECONDS,
            )
        self._resting_until = time.monotonic() + RETRY_SECONDS
