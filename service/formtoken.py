"""Stateless form tokens: the sign form carries its petition and issue time under an HMAC.

No cookie and no server state: a token proves the form was fetched from us for this petition
between ``min_seconds`` and ``max_age`` ago (bots that post at once are refused; Tor users who
read slowly are not).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from samleng.service.errors import Error

_LABEL = b"samleng-form/v1\n"


class FormTokenError(Error):
    """A form token that is missing, forged, too young, too old, or for another petition."""


def _mac(key: bytes, slug: str, issued: int) -> str:
    digest = hmac.new(key, _LABEL + f"{slug}\n{issued}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def issue_form_token(key: bytes, slug: str, now: float | None = None) -> str:
    """A token for the sign form of petition ``slug``."""
    issued = int(time.time() if now is None else now)
    return f"{issued}.{_mac(key, slug, issued)}"


def check_form_token(
    key: bytes,
    slug: str,
    token: str,
    *,
    min_seconds: int,
    max_age: int,
    now: float | None = None,
) -> None:
    """Raise FormTokenError unless ``token`` is ours, for ``slug``, and of an acceptable age."""
    issued_text, _, mac = token.partition(".")
    if not issued_text.isdigit() or len(issued_text) > 12:
        raise FormTokenError("malformed form token")
    issued = int(issued_text)
    if not hmac.compare_digest(mac.encode(), _mac(key, slug, issued).encode()):
        raise FormTokenError("form token does not match this petition")
    age = (time.time() if now is None else now) - issued
    if age < min_seconds:
        raise FormTokenError("form sent too soon after it was loaded")
    if age > max_age:
        raise FormTokenError("form token expired")
