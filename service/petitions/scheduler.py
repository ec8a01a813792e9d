"""In-process sealing: a daemon thread per worker seals pending signatures every interval,
and another asks the witnesses to cosign what it sealed.

Several workers or servers may each run them; the sealer lock lets only one seal at a time
and the others find nothing pending, and a lock per witness keeps one request in flight per
witness. ``samleng seal --watch`` does the same as a service. Witnessing runs beside
sealing, never inside it: a witness that is slow or down delays only its cosignature.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from samleng.crypto.errors import Error as CryptoError
from samleng.service.platform.errors import Error as ServiceError
from samleng.service.platform.vault import Vault
from samleng.service.tlog.epochs import waiting_in_current_epoch
from samleng.service.tlog.store import seal_all
from samleng.service.tlog.witnesses import Backoff, ask_witness, due_witnesses
from samleng.service.tlog.witnessing import WitnessClient

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


class Witnessing:
    """Asks the due witnesses, each in a thread of a small pool, one request per witness at a
    time; looks for work every ``interval`` seconds and whenever :meth:`wake` is called."""

    def __init__(
        self, engine: Engine, client: WitnessClient, *, interval: float = 1.0, workers: int = 8
    ) -> None:
        self._engine = engine
        self._client = client
        self._interval = interval
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="samleng-witness")
        self._busy: dict[int, Future[object]] = {}
        self._backoff = Backoff()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start looking for work in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="samleng-witnessing", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look for work now (the sealer has published a checkpoint)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop looking for work; requests in flight finish within the client's timeout."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.dispatch()
            except SQLAlchemyError as exc:
                log.error("witnessing: %s", type(exc).__name__)

    def dispatch(self) -> int:
        """Hand every due witness that is not busy or backing off to the pool; return how many."""
        now = time.monotonic()
        self._busy = {w: f for w, f in self._busy.items() if not f.done()}
        with Session(self._engine) as session:
            due = due_witnesses(session)
        started = 0
        for witness_id in due:
            if witness_id in self._busy or not self._backoff.ready(witness_id, now):
                continue
            self._busy[witness_id] = self._pool.submit(self._ask, witness_id)
            started += 1
        return started

    def _ask(self, witness_id: int) -> None:
        try:
            ask_witness(self._engine, witness_id, self._client, self._backoff)
        except (SQLAlchemyError, CryptoError, ServiceError, LookupError, OSError) as exc:
            # Asked again in a later round; the witness's state is as it was.
            self._backoff.failed(witness_id, time.monotonic())
            log.error("witnessing failed: %s", type(exc).__name__)


class SealTimer:
    """When a sealing round is due: ``interval`` seconds after the last round at the latest,
    and sooner once the current epoch holds ``batch`` signatures (0: never sooner), but not
    within ``gap`` seconds of the last round.

    Under load a signature thus reaches a checkpoint within a few seconds, in a batch of at
    least ``batch`` signatures, shuffled; when few sign, a batch waits up to ``interval`` to
    grow, as before. Batches hide the order of signing (docs/formats.md §5): a smaller batch,
    or a round every second, would say more about when each signature came.
    """

    def __init__(
        self,
        interval: float,
        batch: int = 0,
        gap: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        due_now: bool = False,
    ) -> None:
        self.interval = interval
        self.batch = batch
        self.gap = gap
        self._clock = clock
        # Counted from now, or due at once (``due_now``: `samleng seal --watch` seals first).
        self._last = clock() - (interval if due_now else 0.0)

    @property
    def tick(self) -> float:
        """How often to ask :meth:`due`."""
        return min(self.gap, self.interval) if self.batch > 0 else self.interval

    def due(self, waiting: Callable[[], int]) -> bool:
        """Whether to seal now; ``waiting`` counts the current epoch's signatures (asked only
        when the batch could decide)."""
        elapsed = self._clock() - self._last
        if elapsed >= self.interval:
            return True
        return self.batch > 0 and elapsed >= self.gap and waiting() >= self.batch

    def sealed(self) -> None:
        """A round starts now."""
        self._last = self._clock()


def waiting_signatures(engine: Engine) -> int:
    """The current epoch's signatures (what the next round would seal)."""
    with Session(engine) as session:
        return waiting_in_current_epoch(session)


class SealScheduler:
    """Starts its threads on first use, i.e. inside the worker process after any fork."""

    def __init__(
        self,
        engine: Engine,
        vault: Vault,
        interval: float,
        witnessing: Witnessing | None = None,
        batch: int = 0,
    ) -> None:
        self._engine = engine
        self._vault = vault
        self._timer = SealTimer(interval, batch)
        self._witnessing = witnessing
        self._started = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start_once(self) -> None:
        """Start the sealing (and witnessing) threads unless they run already."""
        if self._started:
            return
        with self._lock:
            if not self._started:
                self._thread = threading.Thread(
                    target=self._run, name="samleng-sealer", daemon=True
                )
                self._thread.start()
                if self._witnessing is not None:
                    self._witnessing.start()
                self._started = True

    def stop(self, timeout: float = 0) -> None:
        """Ask the threads to finish after their current round; with a ``timeout``, wait up
        to that long for the sealing thread's round to end, for a caller about to close the
        engine (a round cut off by that would hand its connection back to a closed pool)."""
        self._stop.set()
        if self._witnessing is not None:
            self._witnessing.stop()
        if timeout and self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        timer = self._timer
        while not self._stop.wait(timer.tick):
            try:
                if not timer.due(lambda: waiting_signatures(self._engine)):
                    continue
                timer.sealed()
                close_expired_petitions(self._engine)
                sealed = seal_all(self._engine, self._vault)
                destroy_forgotten_keys(self._engine, self._vault)
            except (SQLAlchemyError, CryptoError, ServiceError, LookupError, OSError) as exc:
                # Pending signatures stay pending and are sealed in a later round.
                log.error("sealing failed: %s", type(exc).__name__)
                continue
            if sealed and self._witnessing is not None:
                self._witnessing.wake()
