"""The login throttles: what a client may try, and what failures on one account may cost.

Three counters, all on the limiter's storage (Redis in production), in fixed windows aligned
on the clock, all keyed by HMACs under the day's random key (ratelimit.DayKeys), so that no
key can be recomputed from the master key:

- per client (``SAMLENG_RATELIMIT_LOGIN``): every attempt that passed the form's CSRF
  check, before any password is hashed. It bounds what one client may try, and the hashing
  it may cause.
- failures per account name from one client (``SAMLENG_RATELIMIT_LOGIN_ACCOUNT``): beyond
  it that client is refused for that name without a hash. Counting only the same client's
  failures is what keeps a stranger from locking an organiser out: their failures fill
  their own counter, never the organiser's.
- failures per account name from every client (``SAMLENG_RATELIMIT_LOGIN_ACCOUNT_ALL``):
  many circuits guessing one account. Beyond it the account is *contested*: every login
  for it is answered "too many attempts" unless the password *and* a fresh authenticator
  code are right. A guesser learns nothing from a right password any more, and an
  organiser with an authenticator always gets in; one without can be held off by a
  distributed flood, which is why the admin asks everyone to set one up.

Imports nothing of Flask: the views pass the client's pseudonym and the typed name. Like
the signing limits, a failing storage falls back to this process's memory, retried every
``RETRY_SECONDS``: never open, never a 500.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter
from redis.exceptions import RedisError

from samleng.service.platform.ratelimit import AlignedMemoryStorage, DayKeys

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LoginLimits:
    """The three limits, in flask-limiter's notation (``5 per minute;30 per hour``)."""

    per_client: str
    per_account_client: str
    per_account: str


class LoginThrottles:
    """The login throttles on one storage, with a per-process fallback."""

    RETRY_SECONDS = 5.0
    SCOPE = "admin.login"

    def __init__(self, storage: Storage, limits: LoginLimits, *, day_keys: DayKeys) -> None:
        self._shared = FixedWindowRateLimiter(storage)
        self._local = FixedWindowRateLimiter(AlignedMemoryStorage())
        self._per_client = parse_many(limits.per_client)
        self._per_account_client = parse_many(limits.per_account_client)
        self._per_account = parse_many(limits.per_account)
        self._day_keys = day_keys
        self._retry_at = 0.0  # while the storage fails: when to try it again

    def account_key(self, name: str) -> str:
        """The per-account key: an HMAC of the normalised typed name, never the name."""
        normalised = name[:100].strip().lower()
        label = b"admin-login\n" + normalised.encode()
        digest = hmac.new(self._day_keys.key(), label, hashlib.sha256).hexdigest()
        return f"login-account:{digest[:32]}"

    def attempt(self, client: str) -> int | None:
        """Count one attempt of ``client``; the seconds to wait if it is over its limit."""
        return self._storage(lambda s: _hit(s, self._per_client, f"login-client:{client}"))

    def refused(self, client: str, name: str) -> int | None:
        """Seconds to wait if ``client`` failed too often on this name, else None."""
        key = f"{self.account_key(name)}:{client}"
        return self._storage(lambda s: _test(s, self._per_account_client, key))

    def contested(self, name: str) -> int | None:
        """Seconds until this name is no longer contested (too many failures from every
        client together), else None."""
        key = self.account_key(name)
        return self._storage(lambda s: _test(s, self._per_account, key))

    def failed(self, client: str, name: str) -> None:
        """Count one failed login on this name, from ``client`` and from everyone."""
        account = self.account_key(name)

        def count(strategy: FixedWindowRateLimiter) -> int | None:
            _hit(strategy, self._per_account_client, f"{account}:{client}")
            _hit(strategy, self._per_account, account)
            return None

        self._storage(count)

    def _storage(self, use: Callable[[FixedWindowRateLimiter], int | None]) -> int | None:
        if time.monotonic() >= self._retry_at:
            try:
                answer = use(self._shared)
            except (RedisError, StorageError) as exc:
                if not self._retry_at:
                    name = type(exc).__name__
                    log.warning("rate-limit storage failed (%s): login throttles in memory", name)
                self._retry_at = time.monotonic() + self.RETRY_SECONDS
            else:
                if self._retry_at:
                    log.warning("rate-limit storage answers again: login throttles shared")
                    self._retry_at = 0.0
                return answer
        return use(self._local)


def _hit(strategy: FixedWindowRateLimiter, items: list[RateLimitItem], key: str) -> int | None:
    """Count one against every item; the seconds to wait for the first one exceeded."""
    for item in items:
        if not strategy.hit(item, "samleng", key, LoginThrottles.SCOPE):
            return _wait(strategy, item, key)
    return None


def _test(strategy: FixedWindowRateLimiter, items: list[RateLimitItem], key: str) -> int | None:
    """Whether one more would exceed an item, without counting it: the seconds to wait."""
    for item in items:
        if not strategy.test(item, "samleng", key, LoginThrottles.SCOPE):
            return _wait(strategy, item, key)
    return None


def _wait(strategy: FixedWindowRateLimiter, item: RateLimitItem, key: str) -> int:
    reset = strategy.get_window_stats(item, "samleng", key, LoginThrottles.SCOPE).reset_time
    return max(1, int(reset - time.time()) + 1)
