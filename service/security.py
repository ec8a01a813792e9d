"""The header policy of every response, in one place.

Signers run Tor Browser at "Safest" with JavaScript off, and some are watched: pages load
nothing from elsewhere, run no script, leak no referrer, and cannot be framed.
"""

from __future__ import annotations

import base64
import hashlib

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
NO_STORE_ENDPOINTS = frozenset({"public.petition", "public.sign", "public.receipt"})


def init_app(app: Flask, stylesheet: str, onion_address: str | None) -> None:
    """Set the security headers on every response, error pages included."""
    csp = content_security_policy(stylesheet)

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = csp
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Permissions-Policy"] = "interest-cohort=()"
        if request.endpoint in NO_STORE_ENDPOINTS or response.status_code >= 400:
            response.headers["Cache-Control"] = "no-store"
        if onion_address and not request.host.endswith(".onion"):
            query = request.query_string.decode("latin-1")
            path = request.path + (f"?{query}" if query else "")
            response.headers["Onion-Location"] = f"http://{onion_address}{path}"
        response.headers.pop("Server", None)
        return response
