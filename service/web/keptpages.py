"""The kept petition page answered before Flask.

A viral petition's page is asked for thousands of times a second, and within a second every
answer is the same but for its form token (web.pagecache). Once the app has answered it,
headers and all, this WSGI layer answers the next requests for the same page from that copy
for as long as that page is kept: it counts the page limits (platform.ratelimit.ClientLimits),
fills in a fresh form token (or nginx's slot) and sends the kept status and headers. Flask's
request context, routing and response hooks, which cost a kept page more than the page
itself, run once a second instead of on every request (bench/README.md, page_rps.py).

A request is answered here only if nothing besides its key can change the answer: a GET
without a query string, a cookie, credentials or the admin listener's header. The key is
every part of the request the page depends on: its path, the address it was made to (the
page shows it, the transport warning and Onion-Location follow from it), whether it came
through tor2web, and whether nginx asked for its microcache. Who the client is matters only
to the limits, which are counted here. A request refused by the limits goes on to Flask,
which shows the refusal in the visitor's language as on any other page.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

from flask import Flask
from werkzeug.exceptions import TooManyRequests

from samleng.service.platform.context import services
from samleng.service.platform.ratelimit import client_in, environ_name
from samleng.service.signing.formtoken import NGINX_FORM_REQUEST, NGINX_FORM_SLOT
from samleng.service.web.security import ADMIN_LISTENER_HEADER, TOR2WEB_HEADER

# Set by the petition view on a page it kept: (slug, the value filled in, for nginx, when
# the kept page runs out).
KEEP = "samleng.keep_page"
# Set here: the page limits were counted, and refused the request (a TooManyRequests).
REFUSED = "samleng.page_refused"
PAGE_SCOPE = "public.petition"


# What makes a request's answer depend on more than its key: then Flask answers it.
_PERSONAL = tuple(environ_name(h) for h in ("Cookie", "Authorization", ADMIN_LISTENER_HEADER))
_TOR2WEB = environ_name(TOR2WEB_HEADER)
_FOR_NGINX = environ_name(NGINX_FORM_REQUEST)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def request_key(environ: dict[str, Any]) -> Hashable | None:
    """What a kept answer to this request depends on; None if it must not be kept."""
    if environ.get("REQUEST_METHOD") != "GET" or environ.get("QUERY_STRING"):
        return None
    if any(name in environ for name in _PERSONAL):
        return None
    return (
        environ.get("PATH_INFO", ""),
        environ.get("SCRIPT_NAME", ""),
        environ.get("wsgi.url_scheme", ""),
        environ.get("HTTP_HOST", ""),
        environ.get("SERVER_NAME", ""),
        environ.get("SERVER_PORT", ""),
        _TOR2WEB in environ,
        environ.get(_FOR_NGINX, ""),
    )


class KeptPages:
    """WSGI middleware around the Flask app's own WSGI callable (inside ProxyFix, so that
    the client and the address are the ones the app sees)."""

    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self._app = app
        self._wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer from a kept copy, or let the app answer (and perhaps keep its answer)."""
        key = request_key(environ)
        if key is None:
            return self._wsgi_app(environ, start_response)
        found = services(self._app)
        kept = found.pages.responses.get(key)
        if kept is None:
            return self._answer_and_keep(key, environ, start_response)
        client = client_in(environ, found.config, found.rate_limits.pseudonyms)
        try:
            found.rate_limits.pages.hit(client, PAGE_SCOPE)
        except TooManyRequests as refusal:
            environ[REFUSED] = refusal
            return self._wsgi_app(environ, start_response)
        value = NGINX_FORM_SLOT if kept.for_nginx else found.form_tokens.issue(kept.slug)
        body = kept.body(value)
        start_response(kept.status, [*kept.headers, ("Content-Length", str(len(body)))])
        return [body]

    def _answer_and_keep(
        self, key: Hashable, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        answered: list[tuple[str, list[tuple[str, str]]]] = []

        def noting(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answered.append((status, list(headers)))
            return start_response(status, headers, exc_info)

        body = self._wsgi_app(environ, noting)
        keep = environ.get(KEEP)
        if keep is None or len(answered) != 1 or not answered[0][0].startswith("200 "):
            return body
        status, headers = answered[0]
        if any(name.lower() in ("set-cookie", "vary") for name, _ in headers):
            return body
        try:
            whole = b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        slug, value, for_nginx, until = keep
        services(self._app).pages.responses.keep(
            key, status, headers, whole, value, slug, for_nginx, until
        )
        return [whole]
