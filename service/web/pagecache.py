"""Busy pages rendered at most once a second per worker, with one value filled in per request.

A viral petition is read far more often than it changes: its text changes only through the
admin, its count only when the sealer publishes a checkpoint. Rendering the petition page
costs a few milliseconds (two queries, the Markdown body, about sixty translated strings);
serving a kept copy costs a dictionary lookup. Where nginx fronts the app it keeps the
petition page too and mints each visitor's form token itself (deploy/nginx/samleng-app.conf);
this cache serves its misses and every path without nginx. The worker keeps the page split
around the one value that differs between requests and fills it in every time: the form
token on the petition page, the receipt code on the "thank you" page (which is kept only as
rendered around a placeholder, so no receipt code is ever kept).

What a kept page depends on is all in its key: the page, the petition, the language, the
address the request was made to (pages show their own address, and the transport warning
depends on it). A change to the petition shows within ``seconds``. The number of kept pages
is bounded, so that requests for many host names cannot grow the worker.

The petition page is also kept whole, as the app answered it, headers and all
(``KeptResponses``): web.keptpages answers the next requests for it before Flask, with the
page limits counted and a fresh form token filled in, until the page in it runs out.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

# When it runs out, the page before the form token, and the rest (None: no form on the page).
_Kept = tuple[float, str, str | None]


class PageCache:
    """Rendered pages split around their one per-request value, each kept for ``seconds``."""

    def __init__(
        self, seconds: float, max_pages: int = 64, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self._max = max_pages
        self._clock = clock
        self._pages: dict[Hashable, _Kept] = {}
        self._rendering: set[Hashable] = set()
        self._lock = threading.Lock()
        self.responses = KeptResponses(max_pages, clock)
        # What the template gets as the value while a page is rendered for keeping:
        # nothing Jinja escapes, and unknown outside this process, so that no petition text or
        # forged Host header can put it in a page a second time.
        self._slot = "slot" + secrets.token_hex(16)

    def page(self, key: Hashable, render: Callable[[str], str], value: str) -> str:
        """The page for ``key`` with ``value`` in it; ``render(slot)`` makes it when needed.

        ``render`` may raise (a 404, say): nothing is kept then. With ``seconds`` at 0 every
        call renders. ``value`` goes in as it is, never escaped (a token, a receipt code, or
        the entity that nginx replaces with a token).
        """
        if self.seconds <= 0:
            return self._fresh(render, value)
        kept = self._pages.get(key)
        if kept is None or kept[0] <= self._clock():
            with self._lock:
                # One thread renders a page that ran out; the others serve it a moment longer.
                mine = key not in self._rendering
                if mine:
                    self._rendering.add(key)
            if mine or kept is None:
                try:
                    kept = self._render(key, render)
                finally:
                    if mine:
                        with self._lock:
                            self._rendering.discard(key)
            if kept is None:  # the page could not be kept (see _render)
                return self._fresh(render, value)
        _, head, tail = kept
        return head if tail is None else head + value + tail

    def expires(self, key: Hashable) -> float | None:
        """When the page kept for ``key`` runs out (on this cache's clock); None if none is."""
        kept = self._pages.get(key)
        return kept[0] if kept is not None and kept[0] > self._clock() else None

    def _fresh(self, render: Callable[[str], str], value: str) -> str:
        """``render``'s page made for this request alone, ``value`` filled in as when kept."""
        return render(self._slot).replace(self._slot, value)

    def _render(self, key: Hashable, render: Callable[[str], str]) -> _Kept | None:
        html = render(self._slot)
        parts = html.split(self._slot)
        if len(parts) > 2:  # cannot happen (see __init__); if it did, keep nothing
            return None
        # A page without the slot (a closed petition has no form) has nothing to fill in.
        kept = (self._clock() + self.seconds, parts[0], parts[1] if len(parts) == 2 else None)
        with self._lock:
            if len(self._pages) >= self._max:
                self._pages.clear()
            self._pages[key] = kept
        return kept

    def clear(self) -> None:
        """Forget every kept page (the admin changed a petition in this process)."""
        with self._lock:
            self._pages.clear()
        self.responses.clear()


@dataclass(frozen=True)
class KeptResponse:
    """A whole answer, split around its one per-request value: the form token of petition
    ``slug`` (``None``: no form on the page), or nginx's slot for it (``for_nginx``)."""

    until: float
    status: str
    headers: tuple[tuple[str, str], ...]  # without Content-Length
    head: bytes
    tail: bytes | None
    slug: str
    for_nginx: bool

    def body(self, value: str) -> bytes:
        """The page with ``value`` filled in."""
        return self.head if self.tail is None else self.head + value.encode() + self.tail


class KeptResponses:
    """Whole answers, each kept as long as the page it carries, under the parts of a request
    they depend on."""

    def __init__(self, max_pages: int = 64, clock: Callable[[], float] = time.monotonic) -> None:
        self._max = max_pages
        self._clock = clock
        self._kept: dict[Hashable, KeptResponse] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> KeptResponse | None:
        """The answer kept for ``key``, if it has not run out."""
        kept = self._kept.get(key)
        return kept if kept is not None and kept.until > self._clock() else None

    def keep(
        self,
        key: Hashable,
        status: str,
        headers: list[tuple[str, str]],
        body: bytes,
        value: str,
        slug: str,
        for_nginx: bool,
        until: float,
    ) -> None:
        """Keep the answer ``status``, ``headers``, ``body``, in which ``value`` (the request's
        own form token or slot) appears once, or not at all, until ``until`` (when the page
        in it runs out); anything else is not kept."""
        parts = body.split(value.encode())
        if len(parts) > 2 or until <= self._clock():
            return
        headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
        kept = KeptResponse(
            until,
            status,
            tuple(headers),
            parts[0],
            parts[1] if len(parts) == 2 else None,
            slug,
            for_nginx,
        )
        with self._lock:
            if len(self._kept) >= self._max:
                self._kept.clear()
            self._kept[key] = kept

    def clear(self) -> None:
        """Forget every kept answer."""
        with self._lock:
            self._kept.clear()
