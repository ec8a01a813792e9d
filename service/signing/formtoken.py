"""Form tokens: the sign form carries its petition, issue time and a nonce under an HMAC.

No cookie: a token proves the form was fetched from us for this petition between
``min_seconds`` and ``max_age`` ago (bots that post at once are refused; Tor users who read
slowly are not). Each token is good for one submission: :class:`UsedFormTokens` keeps an
HMAC of every token sent, for the tokens' lifetime, so that a bot cannot fetch one form and
post it again and again, and the minimum fill time holds for every signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from samleng.service.platform.errors import Error
from samleng.service.platform.ratelimit import AlignedRedisStorage, SharedStorage

_LABEL = b"samleng-form/v2\n"
_USED_LABEL = b"samleng-form-used/v1\n"
_NONCE_BYTES = 9
# issue time (Unix seconds, ASCII digits), nonce, MAC: what issue_form_token makes, no more.
_TOKEN = re.compile(r"\A([0-9]{1,12})\.([A-Za-z0-9_-]{12})\.([A-Za-z0-9_-]{24})\Z")


class FormTokenError(Error):
    """A form token that is missing, forged, too young, too old, or for another petition."""


class FormTokenUsed(FormTokenError):
    """A form token that was sent before: each token is good for one submission."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def _mac(key: bytes, slug: str, issued: int, nonce: str) -> str:
    message = _LABEL + f"{slug}\n{issued}\n{nonce}".encode()
    return _b64(hmac.new(key, message, hashlib.sha256).digest()[:18])


def issue_form_token(key: bytes, slug: str, now: float | None = None) -> str:
    """A fresh token for the sign form of petition ``slug`` (no two are alike)."""
    issued = int(time.time() if now is None else now)
    nonce = _b64(secrets.token_bytes(_NONCE_BYTES))
    return f"{issued}.{nonce}.{_mac(key, slug, issued, nonce)}"


def check_form_token(
    key: bytes,
    slug: str,
    token: str,
    *,
    min_seconds: int,
    max_age: int,
    now: float | None = None,
) -> None:
    """Raise FormTokenError unless ``token`` is ours, for ``slug``, and of an acceptable age.

    Whether it was used before is :class:`UsedFormTokens`' question, asked after this one.
    """
    parts = _TOKEN.match(token)
    if parts is None:
        raise FormTokenError("malformed form token")
    issued_text, nonce, mac = parts.groups()
    issued = int(issued_text)
    if not hmac.compare_digest(mac, _mac(key, slug, issued, nonce)):
        raise FormTokenError("form token does not match this petition")
    age = (time.time() if now is None else now) - issued
    if age < min_seconds:
        raise FormTokenError("form sent too soon after it was loaded")
    if age > max_age:
        raise FormTokenError("form token expired")


# When nginx fronts the app (deploy/nginx), it keeps the petition page for a second and gives
# every visitor's copy a token of its own, minted by deploy/nginx/samleng-app.conf under the
# same key and in the same format as issue_form_token. It asks for the page with this request
# header; the app then puts NGINX_FORM_SLOT where the token goes and marks the answer with
# NGINX_FORM_MARK, without which nginx keeps nothing. The slot is an entity reference, so no
# text of a petition can put it in a page (Jinja writes "&" as "&amp;").
NGINX_FORM_REQUEST = "X-Samleng-Form-Slot"
NGINX_FORM_SLOT = "&samleng-form-token;"
NGINX_FORM_MARK = ("X-Samleng-Form", "slot")


def nginx_form_key_conf(key: bytes) -> str:
    """The nginx include (/etc/nginx/samleng/samleng-form-key.conf) that gives
    samleng-app.conf's petition-page location the form-token key ``key``."""
    return f'set $samleng_form_key "{key.hex()}";\n'


def used_token_key(key: bytes, token: str) -> str:
    """The name under which a sent token is remembered: an HMAC of the token alone, so the
    store holds nothing that says which petition, when, or from whom."""
    digest = hmac.new(key, _USED_LABEL + token.encode(), hashlib.sha256).digest()
    return "form-used:" + _b64(digest[:18])


class RecentKeys:
    """A bounded set of names, each forgotten ``seconds`` after it was added.

    The in-process store of used tokens. When full, the oldest names go first: pushing a
    token out takes ``capacity`` fresh forms fetched and sent within its lifetime, and a bot
    that can do that gains nothing by sending an old one again.
    """

    def __init__(
        self,
        seconds: float,
        capacity: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.capacity = capacity
        self._clock = clock
        self._expires: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, name: str) -> bool:
        """Add ``name``; False if it was there already (and has not expired)."""
        now = self._clock()
        with self._lock:
            expires = self._expires.get(name)
            if expires is not None and expires > now:
                return False
            self._expires.pop(name, None)
            # Names are added in time order, so the expired ones are at the front.
            while self._expires and (
                len(self._expires) >= self.capacity or next(iter(self._expires.values())) <= now
            ):
                self._expires.popitem(last=False)
            self._expires[name] = now + self.seconds
            return True

    def __len__(self) -> int:
        return len(self._expires)


class UsedFormTokens:
    """The sign-form tokens sent already, each kept (as ``used_token_key``, an
    HMAC of the token alone) for the tokens' lifetime, then forgotten.

    In Redis when the limiter uses it, so that every worker sees every token; otherwise, and
    while Redis fails, in this process's bounded memory (RecentKeys).
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


@dataclass(frozen=True)
class FormTokens:
    """The sign form's tokens of one app: issued under ``key``, each accepted once, between
    ``min_seconds`` and ``max_age`` after it was issued."""

    key: bytes = field(repr=False)
    used: UsedFormTokens
    min_seconds: int
    max_age: int

    def issue(self, slug: str) -> str:
        """A fresh token for ``slug``'s sign form."""
        return issue_form_token(self.key, slug)

    def spend(self, slug: str, token: str) -> None:
        """Accept ``token`` for one submission: FormTokenError if it is not a valid token of
        ``slug``'s form of an acceptable age, FormTokenUsed if it was sent before."""
        check_form_token(self.key, slug, token, min_seconds=self.min_seconds, max_age=self.max_age)
        if not self.used.first_use(used_token_key(self.key, token)):
            raise FormTokenUsed("this form was sent before")
