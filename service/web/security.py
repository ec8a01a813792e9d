"""The header policy of every response, in one place.

Signers run Tor Browser at "Safest" with JavaScript off, and some are watched: pages load
nothing from elsewhere, run no script, leak no referrer, and cannot be framed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

from flask import Flask, Response, request


def style_hash(stylesheet: str) -> str:
    """The CSP source expression allowing exactly this inline stylesheet."""
    digest = hashlib.sha256(stylesheet.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def content_security_policy(stylesheet: str) -> str:
    """No script source at all; the one inline stylesheet by hash; forms post only to us."""
    return (
        f"default-src 'none'; style-src {style_hash(stylesheet)}; img-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


# Pages that show or accept something personal: never kept by the browser or a proxy.
NO_STORE_ENDPOINTS = frozenset(
    {
        "public.petition",
        "public.sign",
        "public.receipt",
        "public.confirm",
        "public.endorse",
        "public.withdraw",
    }
)
# Names on which plain HTTP never leaves the machine (the demo, the tests).
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# Set by nginx's admin listener only (deploy/nginx/samleng.conf), to the shared secret; every
# public server of nginx clears whatever a client sent under this name.
ADMIN_LISTENER_HEADER = "X-Samleng-Admin"
# The header that tor2web proxies add to every request they forward.
TOR2WEB_HEADER = "X-Tor2web"


def request_hostname() -> str:
    """The host name this request was sent to, without port or brackets, lower case."""
    host = request.host.lower()
    if host.startswith("["):  # an IPv6 literal, maybe with a port
        return host[1:].split("]", 1)[0]
    return host.split(":", 1)[0]


def direct_peer() -> str:
    """The address of whoever opened this connection (nginx, behind a proxy), before ProxyFix
    replaced it with the address nginx reported."""
    orig = request.environ.get("werkzeug.proxy_fix.orig", {})
    return str(orig.get("REMOTE_ADDR") or request.environ.get("REMOTE_ADDR") or "")


def from_admin_listener(secret: str | None, proxies: tuple[str, ...]) -> bool:
    """Whether nginx's admin listener forwarded this request (always true without a secret).

    The Host header proves nothing (a client names any host it likes, and the onion listener
    takes every ``.onion`` name), so the request must carry the secret that only nginx and
    the app hold, and come straight from nginx's address.
    """
    if secret is None:
        return True
    sent = request.headers.get(ADMIN_LISTENER_HEADER, "")
    matches = hmac.compare_digest(sent.encode("utf-8", "replace"), secret.encode())
    return matches and direct_peer() in proxies


def is_onion_request() -> bool:
    """Whether the visitor reached us through our onion service."""
    return request_hostname().endswith(".onion")


def transport_warning() -> str | None:
    """Why this connection is unsafe for a signer: ``"tor2web"``, ``"http"``, or None.

    A tor2web proxy decrypts everything between the visitor and the onion service, and plain
    HTTP on a public name shows every page and every typed word to the network.
    """
    if TOR2WEB_HEADER in request.headers:
        return "tor2web"
    if request.scheme == "http" and not is_onion_request():
        return None if request_hostname() in LOCAL_HOSTS else "http"
    return None


def _same_place() -> str:
    """This request's path and query, percent-encoded: a header value, so never a raw line
    break or control character, whatever the visitor put in the address."""
    path = quote(request.path, safe=_PATH_SAFE)
    # The query as it came, already percent-encoded by the browser: only what is not allowed
    # in a URL (a raw byte a client should have encoded) is encoded here.
    query = quote(request.query_string, safe=_QUERY_SAFE + "%")
    return path + (f"?{query}" if query else "")


# What stays as it is in a path and a query (RFC 3986 pchar, and "?" "/" in a query); "%" in
# the (decoded) path is quoted, so the header names exactly the path Flask routed.
_PATH_SAFE = "/-._~!$&'()*+,;=:@"
_QUERY_SAFE = _PATH_SAFE + "?"


def security_headers(stylesheet: str) -> list[tuple[str, str]]:
    """The headers that every response carries, the same on all."""
    return [
        ("Content-Security-Policy", content_security_policy(stylesheet)),
        ("Referrer-Policy", "no-referrer"),
        ("X-Content-Type-Options", "nosniff"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        # No other site may load our pages or files into its own as a script, an image or a
        # style sheet, where side channels could read them (frames: frame-ancestors above);
        # tools and CORS reads are not affected.
        ("Cross-Origin-Resource-Policy", "same-origin"),
        ("X-Frame-Options", "DENY"),
        ("Permissions-Policy", "interest-cohort=()"),
    ]


def init_app(app: Flask, stylesheet: str, onion_address: str | None) -> None:
    """Set the security headers on every response, error pages included."""
    # Made once, and added rather than set: no view sets any of them (each is on every route
    # exactly once, tests/service/test_pages.py), and replacing them one by one (a scan of
    # the headers each) cost a kept petition page several per cent of its CPU.
    fixed = security_headers(stylesheet)

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers.extend(fixed)
        if request.endpoint in NO_STORE_ENDPOINTS or response.status_code >= 400:
            headers["Cache-Control"] = "no-store"
        if onion_address and not is_onion_request():
            headers["Onion-Location"] = f"http://{onion_address}{_same_place()}"
        headers.pop("Server", None)
        return response

    # base.html calls it: a function, not a context processor, because templates are also
    # rendered outside requests (the export's VERIFY.txt).
    app.jinja_env.globals["transport_warning"] = transport_warning
