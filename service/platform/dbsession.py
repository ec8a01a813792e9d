"""The database sessions of the current request or CLI command: opened on first use, closed
at the end of the app context.

``get_session`` is the primary's, for everything. ``get_read_session`` is the read replica's
when one is configured and answers (platform/replica.py), for the views marked
``@reads_replica``, which read public data and write nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import Flask, g
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from samleng.service.platform.context import services

P = ParamSpec("P")
R = TypeVar("R")


def get_session() -> Session:
    """The session of the current request or command, opened on first use."""
    if "db_session" not in g:
        g.db_session = services().sessions()
    session: Session = g.db_session
    return session


def get_read_session() -> Session:
    """A session for reading public data: on the read replica when one is configured and
    answers, else the primary's (``get_session``). Reads on it may lag the primary by the
    replica's replay lag; it must never write."""
    if "read_session" not in g:
        replica = services().replica
        g.read_session = None
        if replica is not None and replica.available():
            session = replica.sessions()
            try:
                # Connect now: a replica that is down is found here, before the view
                # has read anything, and the view's reads go to the primary instead.
                session.connection()
            except OperationalError as exc:
                _close(session)
                replica.failed(exc)
            else:
                g.read_session = session
    read: Session | None = g.read_session
    return get_session() if read is None else read


def on_replica() -> bool:
    """Whether this request's reads (``get_read_session``) are on the read replica."""
    return g.get("read_session") is not None


def reads_replica(view: Callable[P, R]) -> Callable[P, R]:
    """Mark a view that reads public data with ``get_read_session`` and writes nothing.

    If the replica fails in the middle of it (it stopped, its connection broke), the replica
    rests (platform/replica.py) and the view runs once more, on the primary: the reader gets
    the page, not an error.
    """

    @functools.wraps(view)
    def on_either(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return view(*args, **kwargs)
        except OperationalError as exc:
            replica = services().replica
            if not on_replica() or replica is None:
                raise
            replica.failed(exc)
            _close(g.pop("read_session"))
            g.read_session = None
            return view(*args, **kwargs)

    return on_either


def _close(session: Session) -> None:
    try:
        session.close()
    except SQLAlchemyError:
        # The rollback failed: the database went away during the request (a restart).
        # Drop the connection instead of raising here, after the answer was made, where
        # the server would replace it with its own bare 500 page.
        session.invalidate()


def close_session(_exc: BaseException | None = None) -> None:
    """Close the sessions at the end of the request; uncommitted work is rolled back."""
    read = g.pop("read_session", None)
    if read is not None:
        _close(read)
    session = g.pop("db_session", None)
    if session is not None:
        _close(session)


def init_app(app: Flask) -> None:
    """Close each request's or command's sessions at its end."""
    app.teardown_appcontext(close_session)
