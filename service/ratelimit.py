"""Rate limits that work over Tor, and the bound on Argon2 work in flight.

Who a client is: on the clearnet, the address ProxyFix reports for the configured number of
trusted proxies; on the onion listener, the Tor circuit that nginx forwards from tor's PROXY
header, believed only when the request comes straight from a configured proxy address. Either
is turned into an HMAC under a key that changes every UTC day, so no address or circuit ID is
ever held in clear, not in memory stores and not in Redis.

If the limiter's storage fails, every limit falls back to per-process memory limits: the
service never fails open and never answers 500 because Redis is down.

Signing is limited by ``SigningLimits`` rather than flask-limiter (same storage, strategy and
keys): flask-limiter's generic work per request cost a signature more CPU than the two
storage hits themselves (bench/README.md).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from queue import SimpleQueue
from typing import Any, ParamSpec, TypeVar

from flask import Flask, current_app, request
from flask_limiter import Limiter
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage, Storage
from limits.strategies import SlidingWindowCounterRateLimiter
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException, TooManyRequests
from werkzeug.middleware.proxy_fix import ProxyFix

from samleng.service.config import Config
from samleng.service.errors import Error
from samleng.service.keys import derive_key

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger(__name__)
CIRCUIT_HEADER = "X-Samleng-Circuit"
# Storage calls must fail fast so that a dead Redis degrades to fallback limits quickly.
_REDIS_OPTIONS = {"socket_timeout": 0.25, "socket_connect_timeout": 0.25}


class Overloaded(Error):
    """Too much Argon2 work is in flight in this process; the request is shed with a 503."""


class WorkGate:
    """A bound on concurrent expensive work (Argon2) in one process, and threads to run it on.

    One slot per core is the fastest layout: more hashes at once than cores only take turns
    on the cores and evict each other's 19 MiB from the caches. A request that finds every
    slot taken waits up to ``wait`` seconds (a few hashes' time, so that a burst is smoothed
    rather than refused) and is shed after that.

    The hash itself runs on the gate's own threads (``run``), started with the app and used
    for nothing else. Measured on an AVX-512 machine (bench/README.md): OpenSSL's AVX-512
    ChaCha20, which seals details and unwraps keys on request threads, leaves a thread's
    vector registers in a state in which libargon2's SSE code runs about 45 % slower, and a
    thread started from such a thread inherits it; hashing on request threads, or on threads
    they start, made a signature cost 1.5 hashes. Dedicated threads also keep Argon2's
    19 MiB in one malloc arena each, instead of one arena per request thread (300 MiB).

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


class SweptMemoryStorage(MemoryStorage):
    """limits' memory storage, with expired keys swept at most once a second, inline.

    The library's own sweeps every 10 ms on a timer thread that ends after each sweep and is
    started again by the next hit: under load, one new thread per request (bench/README.md).
    Reads check expiry themselves, so sweeping less often changes no limit; it only bounds
    memory, and one sweep a second does that as well.
    """

    STORAGE_SCHEME = ["samleng-memory"]
    SWEEP_SECONDS = 1.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: str):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._swept = time.monotonic()
        self._sweeping = threading.Lock()

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - overrides the private hook
        now = time.monotonic()
        if now - self._swept < self.SWEEP_SECONDS or not self._sweeping.acquire(blocking=False):
            return
        try:
            self._swept = now
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]
        finally:
            self._sweeping.release()


class SigningLimits:
    """The limits on signing, per client and per petition, checked on the limiter's storage.

    The same strategy (sliding-window counter) and storage keys as flask-limiter would use,
    without its per-request machinery: resolving a route's limits, exemptions and its request
    context cost more CPU than the storage hits. While the storage fails, signing falls back
    like every other route: ``fallback`` per client in this process's memory, and the storage
    is tried again every ``RETRY_SECONDS``.
    """

    RETRY_SECONDS = 5.0
    SCOPE = "public.sign"

    def __init__(
        self, storage: Storage, *, per_client: str, per_petition: str, fallback: str
    ) -> None:
        self._shared = SlidingWindowCounterRateLimiter(storage)
        self._local = SlidingWindowCounterRateLimiter(SweptMemoryStorage())
        self._per_client = parse_many(per_client)
        self._per_petition = parse_many(per_petition)
        self._fallback = parse_many(fallback)
        self._retry_at = 0.0  # while the storage fails: when to try it again

    def hit(self, client: str, slug: str) -> None:
        """Count one signature; TooManyRequests (with retry_after) if a limit is exceeded."""
        if time.monotonic() >= self._retry_at:
            try:
                self._count(self._shared, self._per_client, client)
                self._count(self._shared, self._per_petition, "petition:" + slug)
            except (RedisError, StorageError) as exc:
                if not self._retry_at:
                    name = type(exc).__name__
                    log.warning("rate-limit storage failed (%s): signing limits in memory", name)
                self._retry_at = time.monotonic() + self.RETRY_SECONDS
            else:
                if self._retry_at:
                    log.warning("rate-limit storage answers again: signing limits shared")
                    self._retry_at = 0.0
                return
        self._count(self._local, self._fallback, client)

    def _count(
        self, strategy: SlidingWindowCounterRateLimiter, items: list[RateLimitItem], key: str
    ) -> None:
        for item in items:
            if not strategy.hit(item, "samleng", key, self.SCOPE):
                reset = strategy.get_window_stats(item, "samleng", key, self.SCOPE).reset_time
                raise TooManyRequests(retry_after=max(1, int(reset - time.time()) + 1))

    def limit(self, view: Callable[P, T]) -> Callable[P, T]:
        """``view`` (with a ``slug`` argument), refused with 429 beyond the limits."""

        @functools.wraps(view)
        def limited(*args: P.args, **kwargs: P.kwargs) -> T:
            self.hit(client_key(), str(kwargs.get("slug", "")))
            return view(*args, **kwargs)

        return limited


class ClientKeys:
    """Turns a client address or circuit into a pseudonym that rotates every UTC day."""

    def __init__(self, master_key: bytes, today: Callable[[], dt.date] | None = None) -> None:
        self._base = derive_key(master_key, "rate-limit")
        self._today = today or (lambda: dt.datetime.now(dt.UTC).date())
        self._day = ""
        self._key = b""

    def _daily_key(self) -> bytes:
        day = self._today().isoformat()
        if day != self._day:
            self._key = hmac.new(self._base, day.encode(), hashlib.sha256).digest()
            self._day = day
        return self._key

    def pseudonym(self, kind: str, value: str) -> str:
        """``kind`` is ``ip`` or ``circuit``; the result names the client for one day only."""
        digest = hmac.new(self._daily_key(), f"{kind}\n{value}".encode(), hashlib.sha256)
        return kind + ":" + base64.urlsafe_b64encode(digest.digest()[:16]).decode().rstrip("=")


def _config() -> Config:
    cfg: Config = current_app.extensions["samleng.config"]
    return cfg


def _restart(gate: weakref.ReferenceType[WorkGate]) -> None:
    """In a forked child: the parent's threads, and any slot they held, did not come along."""
    alive = gate()
    if alive is not None:
        alive._lanes = _Lanes(alive._limit)
        weakref.finalize(alive, alive._lanes.close)


def client_key() -> str:
    """The rate-limit key of the current request (never an address in clear)."""
    cfg = _config()
    keys: ClientKeys = current_app.extensions["samleng.client_keys"]
    # The direct peer, before ProxyFix rewrote REMOTE_ADDR from X-Forwarded-For.
    orig = request.environ.get("werkzeug.proxy_fix.orig", {})
    peer = orig.get("REMOTE_ADDR") or request.environ.get("REMOTE_ADDR", "")
    circuit = request.headers.get(CIRCUIT_HEADER, "").strip()
    if circuit and peer in cfg.circuit_proxies:
        return keys.pseudonym("circuit", circuit[:128])
    return keys.pseudonym("ip", request.remote_addr or "")


def retry_after_seconds(app: Flask, refusal: HTTPException) -> int:
    """Seconds until the limit that refused the current request resets (at least 1)."""
    if isinstance(refusal, TooManyRequests) and isinstance(refusal.retry_after, int):
        return refusal.retry_after  # from SigningLimits
    limiter: Limiter = app.extensions["samleng.limiter"]
    current = limiter.current_limit
    if current is None:
        return 60
    return max(1, int(current.reset_at - time.time()) + 1)


def init_app(app: Flask, config: Config) -> None:
    """Attach ProxyFix, the limiter with its limits, the client keys and the Argon2 gate."""
    if config.trusted_proxies > 0:
        n = config.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    app.extensions["samleng.client_keys"] = ClientKeys(config.master_key)
    app.extensions["samleng.argon2_gate"] = WorkGate(config.argon2_concurrency, config.argon2_wait)
    options: dict[str, Any] = {}
    storage_uri = config.ratelimit_storage_uri
    if storage_uri.startswith(("redis://", "rediss://")):
        options = dict(_REDIS_OPTIONS)
    elif storage_uri == "memory://":
        storage_uri = "samleng-memory://"
    limiter = Limiter(
        client_key,
        app=app,
        default_limits=[config.ratelimit_pages],
        storage_uri=storage_uri,
        storage_options=options,
        strategy="sliding-window-counter",
        key_prefix="samleng",
        headers_enabled=False,
        in_memory_fallback_enabled=True,
        in_memory_fallback=[config.ratelimit_fallback],
        swallow_errors=False,
    )
    app.extensions["samleng.limiter"] = limiter
    limiter.exempt(app.view_functions["root.healthz"])
    # Signing has limits of its own, on the same storage (see SigningLimits).
    signing = SigningLimits(
        limiter.storage,
        per_client=config.ratelimit_sign,
        per_petition=config.ratelimit_petition,
        fallback=config.ratelimit_fallback,
    )
    limiter.request_filter(lambda: request.endpoint == "public.sign")
    sign: Any = app.view_functions["public.sign"]
    app.view_functions["public.sign"] = signing.limit(sign)
    # Confirming an emailed link counts a signature, so it is limited like signing.
    confirm: Any = app.view_functions["public.confirm"]
    app.view_functions["public.confirm"] = limiter.limit(config.ratelimit_sign, methods=["POST"])(
        confirm
    )
