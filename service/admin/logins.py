"""Server-side admin sessions and their CSRF tokens.

The browser holds a random session id in a ``__Host-`` cookie; the database holds only its
SHA-256, so a dump cannot be replayed as a login. A session ends after ``idle`` seconds
without a request or ``absolute`` seconds after login, whichever comes first. Logging in
always starts a new session (no fixation). The CSRF token is an HMAC of the session id: it
is tied to the session, needs no storage, and changes at every login.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.orm import Session

from samleng.service.platform.models import Account, AdminSession, utc_now

SESSION_COOKIE = "__Host-samleng-admin"
# Set on the login page only: binds the login form's CSRF token to this browser.
LOGIN_COOKIE = "__Host-samleng-login"
# Refresh last_seen at most this often, so that a busy page does not write on every request.
TOUCH_SECONDS = 30


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    """How long a session may be idle, and how long it may last at all (seconds)."""

    idle: int
    absolute: int


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


def new_session_id() -> str:
    """A fresh random id for a cookie (256 bits)."""
    return secrets.token_urlsafe(32)


def start_session(session: Session, account: Account, previous_id: str | None) -> str:
    """Create a session for ``account`` and return its id; the previous one, if any, ends."""
    if previous_id:
        end_session(session, previous_id)
    session_id = new_session_id()
    now = utc_now()
    session.add(
        AdminSession(
            id_hash=_digest(session_id), account_id=account.id, created_at=now, last_seen=now
        )
    )
    return session_id


def load_session(
    session: Session, session_id: str, timeouts: Timeouts, now: dt.datetime | None = None
) -> Account | None:
    """The account of a live session, refreshing its last-seen time; None (and the row is
    deleted) when it is unknown, timed out, or its account was disabled."""
    if not session_id or len(session_id) > 100:
        return None
    row = session.get(AdminSession, _digest(session_id))
    if row is None:
        return None
    now = now or utc_now()
    account = session.get(Account, row.account_id)
    expired = now - row.last_seen > dt.timedelta(
        seconds=timeouts.idle
    ) or now - row.created_at > dt.timedelta(seconds=timeouts.absolute)
    if expired or account is None or not account.active:
        session.delete(row)
        session.commit()
        return None
    if now - row.last_seen > dt.timedelta(seconds=TOUCH_SECONDS):
        row.last_seen = now
        session.commit()
    return account


def end_session(session: Session, session_id: str) -> None:
    """Delete the session with this id, if it exists."""
    session.execute(delete(AdminSession).where(AdminSession.id_hash == _digest(session_id)))


def end_all_sessions(session: Session, account: Account) -> None:
    """Log ``account`` out everywhere (after a password change, or when it is disabled)."""
    session.execute(delete(AdminSession).where(AdminSession.account_id == account.id))


def csrf_token(key: bytes, bound_to: str, purpose: str = "session") -> str:
    """The CSRF token of a session id (or, with purpose ``login``, of a login cookie)."""
    mac = hmac.new(key, f"samleng-csrf/v1\n{purpose}\n{bound_to}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def csrf_valid(key: bytes, bound_to: str | None, token: str, purpose: str = "session") -> bool:
    """Whether ``token`` is the CSRF token of ``bound_to`` (constant-time)."""
    if not bound_to or not token:
        return False
    return hmac.compare_digest(csrf_token(key, bound_to, purpose).encode(), token.encode())
