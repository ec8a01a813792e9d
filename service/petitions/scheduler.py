"""In-process sealing: a daemon thread per worker seals pending signatures every interval.

Several workers or servers may each run one; the sealer lock lets only one seal at a time
and the others find nothing pending. ``samleng seal --watch`` does the same as a service.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from samleng.crypto.errors import Error as CryptoError
from samleng.service.platform.errors import Error as ServiceError
from samleng.service.platform.vault import Vault
from samleng.service.tlog.store import seal_all

log = logging.getLogger(__name__)


def close_expired_petitions(engine: Engine) -> list[str]:
    """Close the open petitions whose deadline has passed (each sealing round does)."""
    from sqlalchemy.orm import Session

    from samleng.service.petitions.lifecycle import close_expired
    from samleng.service.platform.models import utc_today

    with Session(engine, expire_on_commit=False) as session:
        return close_expired(session, utc_today())


def destroy_forgotten_keys(engine: Engine, vault: Vault) -> list[str]:
    """Destroy this machine's copies of forgotten petitions' key files (each round does)."""
    from sqlalchemy.orm import Session

    from samleng.service.signing.dedup import destroy_forgotten_key_files

    with Session(engine) as session:
        return destroy_forgotten_key_files(session, vault)


class SealScheduler:
    """Starts its thread on first use, i.e. inside the worker process after any fork."""

    def __init__(self, engine: Engine, vault: Vault, interval: float) -> None:
        self._engine = engine
        self._vault = vault
        self._interval = interval
        self._started = False
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start_once(self) -> None:
        """Start the sealing thread unless it runs already."""
        if self._started:
            return
        with self._lock:
            if not self._started:
                threading.Thread(target=self._run, name="samleng-sealer", daemon=True).start()
                self._started = True

    def stop(self) -> None:
        """Ask the thread to finish after its current round."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                close_expired_petitions(self._engine)
                seal_all(self._engine, self._vault)
                destroy_forgotten_keys(self._engine, self._vault)
            except (SQLAlchemyError, CryptoError, ServiceError, LookupError, OSError) as exc:
                # Pending signatures stay pending and are sealed in a later round.
                log.error("sealing failed: %s", type(exc).__name__)
