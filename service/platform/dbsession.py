"""The database session of the current request or CLI command: opened on first use, closed
at the end of the app context."""

from __future__ import annotations

from flask import Flask, g
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from samleng.service.platform.context import services


def get_session() -> Session:
    """The session of the current request or command, opened on first use."""
    if "db_session" not in g:
        g.db_session = services().sessions()
    session: Session = g.db_session
    return session


def close_session(_exc: BaseException | None = None) -> None:
    """Close the session at the end of the request; uncommitted work is rolled back."""
    session = g.pop("db_session", None)
    if session is not None:
        try:
            session.close()
        except SQLAlchemyError:
            # The rollback failed: the database went away during the request (a restart).
            # Drop the connection instead of raising here, after the answer was made, where
            # the server would replace it with its own bare 500 page.
            session.invalidate()


def init_app(app: Flask) -> None:
    """Close each request's or command's session at its end."""
    app.teardown_appcontext(close_session)
