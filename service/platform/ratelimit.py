"""Rate limits that work over Tor: who a client is, the page limits, and their storage.

Who a client is: on the clearnet, the address ProxyFix reports for the configured number of
trusted proxies (an IPv4 address; for IPv6 the whole /64, since one subscriber gets a /64 and
can use any address in it; the /48 around it is limited too); on the onion listener, the Tor
circuit that nginx forwards from tor's PROXY header, believed only when the request comes
straight from a configured proxy address. Each is turned into an HMAC under a key that
changes every UTC day, so no address or circuit ID is ever held in clear, not in memory
stores and not in Redis.

If the limiter's storage fails, every limit falls back to per-process memory limits: the
service never fails open and never answers 500 because Redis is down.

Signing counts its own limits on the same storage (signing.limits), and so does the busiest
page, the petition page (ClientLimits); their views are marked ``own_limits`` so that
flask-limiter passes them by.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, request
from flask_limiter import Limit, Limiter
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.limits import TIME_TYPES
from limits.storage import RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException, TooManyRequests
from werkzeug.middleware.proxy_fix import ProxyFix

from samleng.service.platform.config import Config
from samleng.service.platform.context import services

T = TypeVar("T")
log = logging.getLogger(__name__)
CIRCUIT_HEADER = "X-Samleng-Circuit"


def environ_name(header: str) -> str:
    """Where a request header is in a WSGI environ."""
    return "HTTP_" + header.upper().replace("-", "_")


_CIRCUIT = environ_name(CIRCUIT_HEADER)
# Storage calls must fail fast so that a dead Redis degrades to fallback limits quickly.
_REDIS_OPTIONS = {"socket_timeout": 0.25, "socket_connect_timeout": 0.25}


def window_seconds(key: str) -> int:
    """The window of the limit a limits key was made for: its last two parts are the limit's
    multiples and granularity (``RateLimitItem.key_for``)."""
    multiples, granularity = key.rsplit("/", 2)[-2:]
    return int(multiples) * TIME_TYPES[granularity].seconds


# Where windows are counted from: the Unix epoch. The test suite moves it to the start of
# each test, so that no window ends in the middle of a test that counts hits.
WINDOW_ORIGIN = 0


def aligned_window(now: float, seconds: int) -> tuple[int, int]:
    """The window of ``seconds`` that ``now`` falls in, counted from the Unix epoch, and the
    time it ends. Windows are the same for every key, so an expiry says only which window
    a counter is in, never when its first hit came."""
    window = int((now - WINDOW_ORIGIN) // seconds)
    return window, WINDOW_ORIGIN + (window + 1) * seconds


# A remembered name (a used form token) is kept until its lifetime ends, rounded up to this:
# its expiry then dates its use no closer than that.
REMEMBER_ROUNDING = 600


def _rounded_up(until: float) -> int:
    return -(-int(until) // REMEMBER_ROUNDING) * REMEMBER_ROUNDING


class AlignedMemoryStorage(Storage):
    """Fixed windows aligned on the clock, in this process's memory (``memory://``).

    A counter lives under its key and window number and expires with its window; expired
    counters are swept inline, at most once a second, which bounds memory without a thread.
    """

    STORAGE_SCHEME = ["samleng-memory"]
    SWEEP_SECONDS = 1.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: str):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._swept = 0.0

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        """Nothing in memory fails as a storage does."""
        return ()

    def _sweep(self, now: float) -> None:
        if now - self._swept < self.SWEEP_SECONDS:
            return
        self._swept = now
        for name in [n for n, (_, end) in self._counts.items() if end <= now]:
            del self._counts[name]

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to ``key``'s counter in the current window of ``expiry`` seconds."""
        now = time.time()
        window, end = aligned_window(now, expiry)
        name = f"{key}/{window}"
        with self._lock:
            self._sweep(now)
            count = self._counts.get(name, (0, end))[0] + amount
            self._counts[name] = (count, end)
        return count

    def get(self, key: str) -> int:
        """``key``'s counter in its current window."""
        now = time.time()
        window, _ = aligned_window(now, window_seconds(key))
        count, end = self._counts.get(f"{key}/{window}", (0, 0.0))
        return count if end > now else 0

    def get_expiry(self, key: str) -> float:
        """When ``key``'s current window ends."""
        return float(aligned_window(time.time(), window_seconds(key))[1])

    def remember(self, name: str, until: float) -> bool:
        """Keep ``name`` until ``until`` (rounded up); False if it was kept already."""
        now = time.time()
        with self._lock:
            self._sweep(now)
            kept = self._counts.get(name)
            if kept is not None and kept[1] > now:
                return False
            self._counts[name] = (1, _rounded_up(until))
        return True

    def names(self) -> list[str]:
        """The names of the counters and remembered names held now."""
        with self._lock:
            return list(self._counts)

    def check(self) -> bool:
        """Memory is always there."""
        return True

    def reset(self) -> int | None:
        """Forget every counter."""
        with self._lock:
            count = len(self._counts)
            self._counts.clear()
        return count

    def clear(self, key: str) -> None:
        """Forget ``key``'s counter in its current window."""
        window, _ = aligned_window(time.time(), window_seconds(key))
        with self._lock:
            self._counts.pop(f"{key}/{window}", None)


class AlignedRedisStorage(RedisStorage):
    """Fixed windows aligned on the clock, in Redis (``redis://`` becomes this).

    limits' own Redis counters expire a window after their *first hit*, so a counter's time
    to live dates the first request of a client to the millisecond. Here every counter of a
    window expires when the window ends (EXPIREAT, whole seconds): its time to live says
    which window, nothing finer.
    """

    STORAGE_SCHEME = ["samleng+redis", "samleng+rediss"]

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri.removeprefix("samleng+"), **options)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to ``key``'s counter in the current window of ``expiry`` seconds."""
        window, end = aligned_window(time.time(), expiry)
        name = self.prefixed_key(f"{key}/{window}")
        connection: Any = self.get_connection()
        pipe = connection.pipeline()
        pipe.incrby(name, amount)
        pipe.expireat(name, end)
        count, _ = pipe.execute()
        return int(count)

    def get(self, key: str) -> int:
        """``key``'s counter in its current window."""
        window, _ = aligned_window(time.time(), window_seconds(key))
        return int(self.get_connection(True).get(self.prefixed_key(f"{key}/{window}")) or 0)

    def get_expiry(self, key: str) -> float:
        """When ``key``'s current window ends."""
        return float(aligned_window(time.time(), window_seconds(key))[1])

    def clear(self, key: str) -> None:
        """Forget ``key``'s counter in its current window."""
        window, _ = aligned_window(time.time(), window_seconds(key))
        self.get_connection().delete(self.prefixed_key(f"{key}/{window}"))

    def remember(self, name: str, until: float) -> bool:
        """Keep ``name`` until ``until`` (rounded up); False if it was kept already."""
        connection: Any = self.get_connection()
        kept = connection.set(self.prefixed_key(name), 1, nx=True, exat=_rounded_up(until))
        return bool(kept)

    def day_key(self, day: dt.date) -> bytes:
        """The random key of ``day``, shared by every process through Redis: the first to
        ask makes it; it expires at the end of its day (ten minutes' grace for clocks)."""
        name = self.prefixed_key(f"day-key/{day.isoformat()}")
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
        connection: Any = self.get_connection()
        connection.set(name, secrets.token_bytes(32), nx=True, exat=int(end.timestamp()) + 600)
        key = connection.get(name)
        if not isinstance(key, bytes) or len(key) != 32:
            raise StorageError(RedisError("the day's key vanished from Redis"))
        return key


class BatchedRedisStorage(Storage):
    """Counters in Redis, added to in batches: each process counts its hits in memory and
    sends them at most every ``BATCH_SECONDS``, in one round trip that also brings back
    every process's totals. For the page limits only: with a round trip per petition page the
    page's CPU ratio to a minimal Flask page was 0.57, in batches 0.93 (bench/README.md,
    page_rps.py). Within one process a count is
    exact; the other processes' hits show up within ``BATCH_SECONDS`` (plus the round
    trip), so a client spreading requests over N processes gets at most about
    N x its rate x BATCH_SECONDS past a limit before every process refuses it.

    Counters and windows are :class:`AlignedRedisStorage`'s, under the same names. A failed
    round trip raises (for :class:`SharedStorage`, which then counts in memory) and keeps
    the batch, to be sent once Redis answers again.

    Memory: of the totals Redis gives back, a process keeps only those of at least
    ``keep_from`` (half the smallest limit: see :class:`ClientLimits`). The many clients far
    below a limit cost nothing once their batch is sent (100,000 viewers a minute would be
    100,000 counters). A client whose total was forgotten is counted from its hits since, for
    one round trip, so the count that decides can be low by less than ``keep_from``: never
    enough to let a client reach the limit unseen, unless it makes ``keep_from`` hits within
    one batch.
    """

    BATCH_SECONDS = 0.05

    def __init__(self, redis: AlignedRedisStorage, keep_from: int = 0) -> None:
        super().__init__(None)
        self._redis = redis
        self._keep_from = keep_from
        self._lock = threading.Lock()
        # counter name -> (count, end of its window): the total Redis gave at the last round
        # trip; hits on their way in the round trip now; hits not yet sent.
        self._known: dict[str, tuple[int, int]] = {}
        self._sending: dict[str, tuple[int, int]] = {}
        self._pending: dict[str, tuple[int, int]] = {}
        self._due = 0.0

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        """What a failed round trip raises."""
        return self._redis.base_exceptions

    def _count(self, name: str) -> int:
        held = (self._known, self._sending, self._pending)
        return sum(counts.get(name, (0, 0))[0] for counts in held)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to ``key``'s counter in the current window of ``expiry`` seconds;
        the total as far as this process knows it."""
        now = time.time()
        window, end = aligned_window(now, expiry)
        name = self._redis.prefixed_key(f"{key}/{window}")
        with self._lock:
            self._pending[name] = (self._pending.get(name, (0, end))[0] + amount, end)
            count = self._count(name)
            due = now >= self._due
        if due:  # and with the round trip, the other processes' hits: this request counts them
            self.flush()
            with self._lock:
                count = self._count(name)
        return count

    def flush(self) -> None:
        """Send the hits not yet sent now, unless a round trip is under way."""
        now = time.time()
        with self._lock:
            if self._sending or not self._pending:
                return
            self._due = now + self.BATCH_SECONDS
            self._sending, self._pending = self._pending, {}
        self._send(now)

    def _send(self, now: float) -> None:
        batch = [(name, held) for name, held in self._sending.items() if held[1] > now]
        try:
            connection: Any = self._redis.get_connection()
            pipe = connection.pipeline(transaction=False)
            for name, (amount, end) in batch:
                pipe.incrby(name, amount)
                pipe.expireat(name, end)
            totals = pipe.execute()[::2] if batch else []
        except Exception:
            with self._lock:
                for name, (amount, end) in batch:
                    self._pending[name] = (self._pending.get(name, (0, end))[0] + amount, end)
                self._sending = {}
            raise
        with self._lock:
            for (name, (_, end)), total in zip(batch, totals, strict=True):
                self._known[name] = (int(total), end)
            keep = self._keep_from
            self._known = {n: h for n, h in self._known.items() if h[1] > now and h[0] >= keep}
            self._sending = {}

    def held(self) -> int:
        """How many totals this process keeps now."""
        with self._lock:
            return len(self._known)

    def get(self, key: str) -> int:
        """``key``'s counter in its current window, as far as this process knows it."""
        window, _ = aligned_window(time.time(), window_seconds(key))
        with self._lock:
            return self._count(self._redis.prefixed_key(f"{key}/{window}"))

    def get_expiry(self, key: str) -> float:
        """When ``key``'s current window ends."""
        return self._redis.get_expiry(key)

    def check(self) -> bool:
        """Whether Redis answers."""
        return self._redis.check()

    def reset(self) -> int | None:
        """Forget this process's counts (Redis keeps its own)."""
        with self._lock:
            count = len(self._known) + len(self._pending)
            self._known, self._sending, self._pending = {}, {}, {}
        return count

    def clear(self, key: str) -> None:
        """Forget ``key``'s counter in its current window, here and in Redis."""
        window, _ = aligned_window(time.time(), window_seconds(key))
        name = self._redis.prefixed_key(f"{key}/{window}")
        with self._lock:
            for held in (self._known, self._sending, self._pending):
                held.pop(name, None)
        self._redis.clear(key)


class SharedStorage:
    """The limiter's storage, used by the checks below, with this process's memory standing
    in while it fails: never fail open, never a 500 because Redis is down. The storage is
    tried again every ``RETRY_SECONDS``.
    """

    RETRY_SECONDS = 5.0

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._retry_at = 0.0  # while the storage fails: when to try it again

    def run(self, shared: Callable[[], T], local: Callable[[], T]) -> T:
        """``shared()`` (which uses the storage), or ``local()`` while the storage fails."""
        if time.monotonic() >= self._retry_at:
            try:
                result = shared()
            except (RedisError, StorageError) as exc:
                if not self._retry_at:
                    name = type(exc).__name__
                    log.warning("rate-limit storage failed (%s): checks in memory", name)
                self._retry_at = time.monotonic() + self.RETRY_SECONDS
            else:
                if self._retry_at:
                    log.warning("rate-limit storage answers again: checks shared")
                    self._retry_at = 0.0
                return result
        return local()


def hit_all(
    strategy: FixedWindowRateLimiter, items: list[RateLimitItem], key: str, scope: str
) -> None:
    """Count one hit of ``key`` in ``scope`` against each of ``items``; TooManyRequests, with
    the seconds until the refusing window ends as ``retry_after``, beyond one of them."""
    for item in items:
        if not strategy.hit(item, "samleng", key, scope):
            reset = strategy.get_window_stats(item, "samleng", key, scope).reset_time
            raise TooManyRequests(retry_after=max(1, int(reset - time.time()) + 1))


class ClientLimits:
    """Limits per client, counted by a view on the limiter's storage: ``per_client`` against
    the client, and against an IPv6 client's /48 at the site factor; ``fallback`` per client
    in this process's memory while the storage fails. Signing counts its limits so
    (signing.limits), and the petition page its page limits (``RateLimits.pages``): for
    either, flask-limiter's per-request resolving of a route's limits and exemptions cost
    more CPU than the work (bench/README.md, sign_throughput.py and page_rps.py).
    """

    def __init__(
        self,
        storage: SharedStorage,
        *,
        per_client: str,
        site_factor: int,
        fallback: str,
        batched: bool = False,
    ) -> None:
        self._storage = storage
        self._per_client = parse_many(per_client)
        self._per_site = parse_many(scaled_limits(per_client, site_factor))
        # In Redis, the busiest limits count in batches (BatchedRedisStorage), keeping the
        # totals of clients past half a limit.
        self.counters = storage.storage
        if batched and isinstance(self.counters, AlignedRedisStorage):
            half = min(item.amount for item in self._per_client + self._per_site) // 2
            self.counters = BatchedRedisStorage(self.counters, keep_from=half)
        self._shared = FixedWindowRateLimiter(self.counters)
        self._local = FixedWindowRateLimiter(AlignedMemoryStorage())
        self._fallback = parse_many(fallback)

    def hit(self, client: Client, scope: str, *, site: bool = True) -> None:
        """Count one request in ``scope`` (an endpoint) against ``client``, and against its
        /48 unless ``site`` is False; TooManyRequests (with retry_after) beyond."""

        def shared() -> None:
            hit_all(self._shared, self._per_client, client.key, scope)
            if site and client.site is not None:
                hit_all(self._shared, self._per_site, client.site, scope)

        self._storage.run(shared, lambda: hit_all(self._local, self._fallback, client.key, scope))


def scaled_limits(limits: str, factor: int) -> str:
    """``limits`` (flask-limiter notation) with every amount multiplied by ``factor``."""
    return "; ".join(
        f"{item.amount * factor} per {item.multiples} {item.GRANULARITY.name}"
        for item in parse_many(limits)
    )


class DayKeys:
    """A random key for each UTC day, never derived from the master key nor stored beside
    it, and gone at the end of its day: the rate limits' pseudonyms of a day cannot be
    recomputed from anything the instance keeps.

    With Redis every process shares the day's key through it (it expires with its day);
    with limits in memory, and while Redis fails, each process has one of its own (its
    counters are its own then anyway).
    """

    def __init__(self, storage: Storage, today: Callable[[], dt.date] | None = None) -> None:
        self._shared = storage if isinstance(storage, AlignedRedisStorage) else None
        self._today = today or (lambda: dt.datetime.now(dt.UTC).date())
        self._day: dt.date | None = None
        self._key = b""
        self._local = False
        self._retry_at = 0.0

    def key(self) -> bytes:
        """Today's key."""
        day = self._today()
        fresh = day != self._day
        if not fresh and not (self._local and time.monotonic() >= self._retry_at):
            return self._key
        if self._shared is not None:
            try:
                self._key, self._local = self._shared.day_key(day), False
                self._day = day
                return self._key
            except (RedisError, StorageError):
                self._retry_at = time.monotonic() + SharedStorage.RETRY_SECONDS
        if fresh or not self._local:
            self._key, self._local, self._day = secrets.token_bytes(32), True, day
        return self._key


class ClientPseudonyms:
    """Turns a client address or circuit into a pseudonym under the day's random key."""

    def __init__(self, day_keys: DayKeys) -> None:
        self._day_keys = day_keys

    def pseudonym(self, kind: str, value: str) -> str:
        """``kind`` is ``ip`` or ``circuit``; the result names the client for one day only."""
        digest = hmac.new(self._day_keys.key(), f"{kind}\n{value}".encode(), hashlib.sha256)
        return kind + ":" + base64.urlsafe_b64encode(digest.digest()[:16]).decode().rstrip("=")


@dataclass(frozen=True)
class Client:
    """Who a request is, for the limits: ``key`` names the client (its IPv4 address, its
    IPv6 /64, or its Tor circuit); ``site`` an IPv6 client's /48, which is limited too.
    Both are day-long pseudonyms, never an address."""

    key: str
    site: str | None = None


# One subscriber gets a whole IPv6 /64 (RFC 6177): any address in it is the same client.
# A /48 is one site's allocation; together its /64s get SAMLENG_RATELIMIT_IPV6_SITE_FACTOR
# times each per-client limit.
CLIENT_PREFIX = 64
SITE_PREFIX = 48


def client_of(address: str, keys: ClientPseudonyms) -> Client:
    """The client an address belongs to (IPv6: its /64, and its /48 as the site)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return Client(keys.pseudonym("ip", address))
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return Client(keys.pseudonym("ip", str(ip.ipv4_mapped)))
        network = ipaddress.IPv6Network((ip, CLIENT_PREFIX), strict=False)
        site = ipaddress.IPv6Network((ip, SITE_PREFIX), strict=False)
        return Client(keys.pseudonym("ip", str(network)), keys.pseudonym("site", str(site)))
    return Client(keys.pseudonym("ip", str(ip)))


def client_in(environ: dict[str, Any], config: Config, keys: ClientPseudonyms) -> Client:
    """The client of the request ``environ`` describes, worked out once per request (after
    ProxyFix, if the app has one)."""
    known: Client | None = environ.get("samleng.client")
    if known is not None:
        return known
    # The direct peer, before ProxyFix rewrote REMOTE_ADDR from X-Forwarded-For.
    orig = environ.get("werkzeug.proxy_fix.orig", {})
    peer = orig.get("REMOTE_ADDR") or environ.get("REMOTE_ADDR", "")
    circuit = environ.get(_CIRCUIT, "").strip()
    if circuit and peer in config.circuit_proxies:
        client = Client(keys.pseudonym("circuit", circuit[:128]))
    else:
        client = client_of(environ.get("REMOTE_ADDR") or "", keys)
    environ["samleng.client"] = client
    return client


def current_client() -> Client:
    """The client of the current request."""
    return client_in(request.environ, services().config, services().rate_limits.pseudonyms)


def client_key() -> str:
    """The rate-limit key of the current request (never an address in clear)."""
    return current_client().key


def _site_key() -> str:
    return current_client().site or ""


def _not_ipv6() -> bool:
    return current_client().site is None


def retry_after_seconds(app: Flask, refusal: HTTPException) -> int:
    """Seconds until the limit that refused the current request resets (at least 1)."""
    if isinstance(refusal, TooManyRequests) and isinstance(refusal.retry_after, int):
        return refusal.retry_after  # from signing.limits
    current = services(app).rate_limits.limiter.current_limit
    if current is None:
        return 60
    return max(1, int(current.reset_at - time.time()) + 1)


OWN_LIMITS = "samleng_own_limits"
V = TypeVar("V", bound=Callable[..., Any])


def own_limits(view: V) -> V:
    """Mark a view that the page limits pass by: it counts its own limits (signing's, in
    signing.limits), or has none (the health check)."""
    setattr(view, OWN_LIMITS, True)
    return view


@dataclass(frozen=True)
class RateLimits:
    """The limiter with its storage, and the day's key that names clients in it."""

    limiter: Limiter
    shared: SharedStorage
    day_keys: DayKeys
    pseudonyms: ClientPseudonyms
    pages: ClientLimits  # the petition page's page limits, counted by its view


def init_app(app: Flask, config: Config) -> RateLimits:
    """Attach ProxyFix and the limiter with the page limits to ``app``.

    The limiter passes by the views marked ``own_limits``.
    """
    if config.trusted_proxies > 0:
        n = config.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    options: dict[str, Any] = {}
    storage_uri = config.ratelimit_storage_uri
    if storage_uri.startswith(("redis://", "rediss://")):
        # Aligned windows and the day's key in Redis (AlignedRedisStorage, DayKeys).
        options = dict(_REDIS_OPTIONS)
        storage_uri = "samleng+" + storage_uri
    elif storage_uri == "memory://":
        storage_uri = "samleng-memory://"
    limiter = Limiter(
        client_key,
        app=app,
        default_limits=[
            Limit(config.ratelimit_pages),
            Limit(
                scaled_limits(config.ratelimit_pages, config.ratelimit_ipv6_site_factor),
                key_function=_site_key,
                exempt_when=_not_ipv6,
                scope="site",
            ),
        ],
        storage_uri=storage_uri,
        storage_options=options,
        strategy="fixed-window",
        key_prefix="samleng",
        headers_enabled=False,
        in_memory_fallback_enabled=True,
        in_memory_fallback=[config.ratelimit_fallback],
        swallow_errors=False,
    )

    def has_own_limits() -> bool:
        view = app.view_functions.get(request.endpoint or "")
        return bool(getattr(view, OWN_LIMITS, False))

    limiter.request_filter(has_own_limits)
    day_keys = DayKeys(limiter.storage)
    shared = SharedStorage(limiter.storage)
    pages = ClientLimits(
        shared,
        per_client=config.ratelimit_pages,
        site_factor=config.ratelimit_ipv6_site_factor,
        fallback=config.ratelimit_fallback,
        batched=True,
    )
    return RateLimits(limiter, shared, day_keys, ClientPseudonyms(day_keys), pages)
