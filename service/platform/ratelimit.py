"""Rate limits that work over Tor, and the bound on Argon2 work in flight.

Who a client is: on the clearnet, the address ProxyFix reports for the configured number of
trusted proxies (an IPv4 address; for IPv6 the whole /64, since one subscriber gets a /64 and
can use any address in it; the /48 around it is limited too); on the onion listener, the Tor
circuit that nginx forwards from tor's PROXY header, believed only when the request comes
straight from a configured proxy address. Each is turned into an HMAC under a key that
changes every UTC day, so no address or circuit ID is ever held in clear, not in memory
stores and not in Redis.

If the limiter's storage fails, every limit falls back to per-process memory limits: the
service never fails open and never answers 500 because Redis is down.

Signing is limited by ``SigningLimits`` rather than flask-limiter (same storage, strategy and
keys): flask-limiter's generic work per request cost a signature more CPU than the two
storage hits themselves (bench/README.md). The same storage bounds the confirmation mails
sent to one address (``MailLimits``) and remembers which form tokens were sent
(``UsedFormTokens``).
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
from typing import Any, ParamSpec, TypeVar

from flask import Flask, current_app, request
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
from samleng.service.platform.gate import WorkGate
from samleng.service.signing.formtoken import RecentKeys

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger(__name__)
CIRCUIT_HEADER = "X-Samleng-Circuit"
# Storage calls must fail fast so that a dead Redis degrades to fallback limits quickly.
_REDIS_OPTIONS = {"socket_timeout": 0.25, "socket_connect_timeout": 0.25}


def window_seconds(key: str) -> int:
    """The window of the limit a limits key was made for: its last two parts are the limit's
    multiples and granularity (``RateLimitItem.key_for``)."""
    multiples, granularity = key.rsplit("/", 2)[-2:]
    return int(multiples) * TIME_TYPES[granularity].seconds


def aligned_window(now: float, seconds: int) -> tuple[int, int]:
    """The window of ``seconds`` that ``now`` falls in, counted from the Unix epoch, and the
    time it ends. Windows are the same for every key, so an expiry says only which window
    a counter is in, never when its first hit came."""
    window = int(now // seconds)
    return window, (window + 1) * seconds


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


def _retry_after(
    strategy: FixedWindowRateLimiter, item: RateLimitItem, key: str, scope: str
) -> int:
    reset = strategy.get_window_stats(item, "samleng", key, scope).reset_time
    return max(1, int(reset - time.time()) + 1)


class SigningLimits:
    """The limits on signing, per client and per petition, checked on the limiter's storage.

    The same strategy (fixed windows aligned on the clock) and storage keys as flask-limiter
    would use,
    without its per-request machinery: resolving a route's limits, exemptions and its request
    context cost more CPU than the storage hits. While the storage fails, signing falls back
    like every other route: ``fallback`` per client (and the per-petition cap) in this
    process's memory.

    The two counts are taken at different points of a signature (service/web/public.py): every
    request counts against its client, at once; only a submission that passed every check
    of the form counts against the petition, just before its Argon2 work, so junk requests
    cannot use up a petition's signatures.
    """

    SCOPE = "public.sign"

    def __init__(
        self,
        storage: SharedStorage,
        *,
        per_client: str,
        per_petition: str,
        fallback: str,
        site_factor: int,
    ) -> None:
        self._storage = storage
        self._shared = FixedWindowRateLimiter(storage.storage)
        self._local = FixedWindowRateLimiter(AlignedMemoryStorage())
        self._per_client = parse_many(per_client)
        self._per_site = parse_many(scaled_limits(per_client, site_factor))
        self._per_petition = parse_many(per_petition)
        self._fallback = parse_many(fallback)

    def hit_client(self, client: Client) -> None:
        """Count one request to sign against its client (and an IPv6 client's /48);
        TooManyRequests (with retry_after) beyond the limits."""

        def shared() -> None:
            self._count(self._shared, self._per_client, client.key)
            if client.site is not None:
                self._count(self._shared, self._per_site, client.site)

        self._storage.run(shared, lambda: self._count(self._local, self._fallback, client.key))

    def hit_petition(self, slug: str) -> None:
        """Count one checked submission against the petition's cap; TooManyRequests beyond."""
        key = "petition:" + slug
        self._storage.run(
            lambda: self._count(self._shared, self._per_petition, key),
            lambda: self._count(self._local, self._per_petition, key),
        )

    def _count(
        self, strategy: FixedWindowRateLimiter, items: list[RateLimitItem], key: str
    ) -> None:
        for item in items:
            if not strategy.hit(item, "samleng", key, self.SCOPE):
                raise TooManyRequests(retry_after=_retry_after(strategy, item, key, self.SCOPE))


class MailLimits:
    """At most ``per_address`` confirmation mails to one address (normalised) per period.

    The key is the address's HMAC under the day's rate-limit key, as for clients. Beyond the
    bound no mail is sent, and the signer's page does not change (SECURITY.md says what this
    leaves).
    """

    SCOPE = "public.mail"

    def __init__(self, storage: SharedStorage, keys: ClientKeys, *, per_address: str) -> None:
        self._storage = storage
        self._keys = keys
        self._shared = FixedWindowRateLimiter(storage.storage)
        self._local = FixedWindowRateLimiter(AlignedMemoryStorage())
        self._per_address = parse_many(per_address)

    def allow(self, address: str) -> bool:
        """Count one mail to ``address``; False (and nothing counted) beyond the bound."""
        key = self._keys.pseudonym("mail", address)

        def count(strategy: FixedWindowRateLimiter) -> bool:
            return all(strategy.hit(item, "samleng", key, self.SCOPE) for item in self._per_address)

        return self._storage.run(lambda: count(self._shared), lambda: count(self._local))


class UsedFormTokens:
    """The sign-form tokens sent already, each kept (as ``formtoken.used_token_key``, an
    HMAC of the token alone) for the tokens' lifetime, then forgotten.

    In Redis when the limiter uses it, so that every worker sees every token; otherwise, and
    while Redis fails, in this process's bounded memory (formtoken.RecentKeys).
    """

    def __init__(self, storage: SharedStorage, seconds: int, capacity: int = 100_000) -> None:
        self._storage = storage
        self._seconds = seconds
        self._local = RecentKeys(seconds, capacity)
        self._shared = storage.storage if isinstance(storage.storage, AlignedRedisStorage) else None

    def first_use(self, name: str) -> bool:
        """Record ``name`` as sent; False if it was sent before, within the lifetime. In
        Redis it is kept until the lifetime from now, rounded up to ten minutes, so its expiry
        dates the signature no closer than that."""
        shared = self._shared
        if shared is None:
            return self._local.add(name)
        return self._storage.run(
            lambda: shared.remember(name, time.time() + self._seconds),
            lambda: self._local.add(name),
        )


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


class ClientKeys:
    """Turns a client address or circuit into a pseudonym under the day's random key."""

    def __init__(self, day_keys: DayKeys) -> None:
        self._day_keys = day_keys

    def pseudonym(self, kind: str, value: str) -> str:
        """``kind`` is ``ip`` or ``circuit``; the result names the client for one day only."""
        digest = hmac.new(self._day_keys.key(), f"{kind}\n{value}".encode(), hashlib.sha256)
        return kind + ":" + base64.urlsafe_b64encode(digest.digest()[:16]).decode().rstrip("=")


def _config() -> Config:
    cfg: Config = current_app.extensions["samleng.config"]
    return cfg


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


def client_of(address: str, keys: ClientKeys) -> Client:
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


def current_client() -> Client:
    """The client of the current request, worked out once per request."""
    known: Client | None = request.environ.get("samleng.client")
    if known is not None:
        return known
    cfg = _config()
    keys: ClientKeys = current_app.extensions["samleng.client_keys"]
    # The direct peer, before ProxyFix rewrote REMOTE_ADDR from X-Forwarded-For.
    orig = request.environ.get("werkzeug.proxy_fix.orig", {})
    peer = orig.get("REMOTE_ADDR") or request.environ.get("REMOTE_ADDR", "")
    circuit = request.headers.get(CIRCUIT_HEADER, "").strip()
    if circuit and peer in cfg.circuit_proxies:
        client = Client(keys.pseudonym("circuit", circuit[:128]))
    else:
        client = client_of(request.remote_addr or "", keys)
    request.environ["samleng.client"] = client
    return client


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
    app.extensions["samleng.argon2_gate"] = WorkGate(config.argon2_concurrency, config.argon2_wait)
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
    app.extensions["samleng.limiter"] = limiter
    app.extensions["samleng.day_keys"] = DayKeys(limiter.storage)
    app.extensions["samleng.client_keys"] = ClientKeys(app.extensions["samleng.day_keys"])
    limiter.exempt(app.view_functions["root.healthz"])
    # Signing has limits of its own, on the same storage (see SigningLimits), which sign()
    # checks itself; so do the bound on confirmation mails and the single use of form tokens.
    shared = SharedStorage(limiter.storage)
    app.extensions["samleng.signing_limits"] = SigningLimits(
        shared,
        per_client=config.ratelimit_sign,
        per_petition=config.ratelimit_petition,
        fallback=config.ratelimit_fallback,
        site_factor=config.ratelimit_ipv6_site_factor,
    )
    app.extensions["samleng.mail_limits"] = MailLimits(
        shared, app.extensions["samleng.client_keys"], per_address=config.ratelimit_mail
    )
    app.extensions["samleng.used_form_tokens"] = UsedFormTokens(shared, config.form_max_age)
    limiter.request_filter(lambda: request.endpoint == "public.sign")
    # Confirming an emailed link counts a signature, so it is limited like signing.
    confirm: Any = app.view_functions["public.confirm"]
    app.view_functions["public.confirm"] = limiter.limit(config.ratelimit_sign, methods=["POST"])(
        confirm
    )
