"""The bound on expensive work (Argon2) in flight in one process, and the threads it runs on.

Signing's dedup token and the admin's password hash each cost a core for tens of
milliseconds. A gate holds one slot per core (SAMLENG_ARGON2_CONCURRENCY); work that finds no
slot free within its short wait is shed at once (Overloaded, a 503 with Retry-After) rather
than queued until it times out.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from queue import SimpleQueue
from typing import Any, ParamSpec, TypeVar

from samleng.service.platform.errors import Error

P = ParamSpec("P")
T = TypeVar("T")


class Overloaded(Error):
    """Too much Argon2 work is in flight in this process; the request is shed with a 503."""


class WorkGate:
    """A bound on concurrent expensive work (Argon2) in one process, and threads to run it on.

    One slot per core is the fastest layout: more hashes at once than cores only take turns
    on the cores and evict each other's 19 MiB from the caches. A request that finds every
    slot taken waits up to ``wait`` seconds (a few hashes' time, so that a burst is smoothed
    rather than refused) and is shed after that.

    The hash itself runs on the gate's own threads (``run``), started with the app and used
    for nothing else. Measured on an AVX-512 machine (bench/README.md, signing): OpenSSL's
    AVX-512 ChaCha20, which seals details and unwraps keys on request threads, leaves a
    thread's vector registers in a state in which libargon2's SSE code runs about 45 % slower,
    and a thread started from such a thread inherits it. Dedicated threads also keep Argon2's
    19 MiB in one malloc arena each, instead of one arena per request thread (390 MiB).

    Requests queue their work and the gate's threads take the next item as soon as they are
    done, holding a slot while they work: a thread never idles waiting for the next request
    thread to be woken and scheduled (with the GIL) to hand its work over, and a request
    sleeps and wakes once. ``enter`` holds a slot on the caller's own thread (the admin
    login's password hash), which the gate's threads then wait for.
    """

    def __init__(self, limit: int, wait: float = 0.0) -> None:
        self._wait = wait
        self._limit = limit
        self._lanes = _Lanes(limit)
        weakref.finalize(self, self._lanes.close)
        # After a fork (gunicorn --preload) the child has none of these threads: start anew.
        gate = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _restart(gate))

    @contextmanager
    def enter(self) -> Iterator[None]:
        """Hold a slot for the block, or raise Overloaded when none frees up in time."""
        slots = self._lanes.slots
        free = (
            slots.acquire(timeout=self._wait) if self._wait > 0 else slots.acquire(blocking=False)
        )
        if not free:
            raise Overloaded("no Argon2 slot free")
        try:
            yield
        finally:
            slots.release()

    def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on one of the gate's threads, once a slot is free.

        Raises Overloaded when the work has not started within the wait. The slot is held
        for the hash alone: a request's other work (queries, sealing, the page) runs beside
        the next hash.
        """
        lanes = self._lanes
        if self._wait <= 0:
            # No waiting: a slot now (handed to the gate's thread with the work) or shed.
            if not lanes.slots.acquire(blocking=False):
                raise Overloaded("no Argon2 slot free")
            return lanes.submit(fn, args, kwargs, slot_taken=True).result()
        work = lanes.submit(fn, args, kwargs, slot_taken=False)
        try:
            return work.result(timeout=self._wait)
        except TimeoutError:
            if work.cancel():  # still queued: it never ran and never will
                raise Overloaded("no Argon2 slot free") from None
            return work.result()  # started within the wait


_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any], bool]


class _Lanes:
    """A gate's threads, the queue they take work from and the slots they hold while working.

    Nothing here refers to the gate, so that the threads end when the gate is collected.
    A gate's work items either all bring their slot (no wait) or none does (the threads take
    one), so a thread never waits for a slot that an item behind it holds.
    """

    def __init__(self, limit: int) -> None:
        self.slots = threading.BoundedSemaphore(limit)
        self._queue: SimpleQueue[_Work | None] = SimpleQueue()
        self._count = limit
        for i in range(limit):  # all of them now, from this thread, before any request
            threading.Thread(
                target=_serve,
                args=(self._queue, self.slots),
                name=f"samleng-argon2-{i}",
                daemon=True,
            ).start()

    def submit(
        self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any], slot_taken: bool
    ) -> Future[T]:
        work: Future[T] = Future()
        self._queue.put((work, fn, args, kwargs, slot_taken))
        return work

    def close(self) -> None:
        for _ in range(self._count):
            self._queue.put(None)


def _serve(queue: SimpleQueue[_Work | None], slots: threading.BoundedSemaphore) -> None:
    """A gate thread: run queued work, each item holding a slot, until told to stop."""
    while (item := queue.get()) is not None:
        work, fn, args, kwargs, slot_taken = item
        if not slot_taken:
            slots.acquire()
        if not work.set_running_or_notify_cancel():  # its request stopped waiting
            slots.release()
            continue
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting request, as futures do
            slots.release()  # before the request hears back, so its next run finds it free
            work.set_exception(exc)
        else:
            slots.release()
            work.set_result(result)


def _restart(gate: weakref.ReferenceType[WorkGate]) -> None:
    """In a forked child: the parent's threads, and any slot they held, did not come along."""
    alive = gate()
    if alive is not None:
        alive._lanes = _Lanes(alive._limit)
        weakref.finalize(alive, alive._lanes.close)
