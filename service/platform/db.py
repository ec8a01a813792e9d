"""The database: the engine, migrations, exclusive sessions, and wiping what was deleted.

Nothing of Flask: the session of a request or command is platform/dbsession.py's."""

from __future__ import annotations

import os
import select
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.orm import Session

MIGRATIONS = Path(__file__).parent / "migrations"
EXCLUSIVE = "samleng_exclusive"
# Seconds (libpq's connect_timeout, at least 2) a connection to the read replica may take.
REPLICA_CONNECT_TIMEOUT = "2"


def normalise_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs (SQLAlchemy's default driver is psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _create_private_file(database: str | None) -> None:
    """Create an SQLite database file with mode 0600 if it does not exist yet: SQLite gives
    its -wal and -shm files the database file's mode, so all three stay the owner's."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys, a busy timeout and WAL journaling."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        _create_private_file(make_url(url).database)
        # hide_parameters: a failed statement must never print a token or ciphertext to a log.
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # SQLAlchemy emits BEGIN itself (below), so that a sealer can ask for IMMEDIATE.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            # Deleted rows (forgotten tokens) are overwritten, not left in free pages.
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Connection) -> None:
            exclusive = connection.get_execution_options().get(EXCLUSIVE, False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if exclusive else "BEGIN")

        return engine
    return _postgresql_engine(url)


def make_replica_engine(url: str) -> Engine:
    """An engine for a PostgreSQL read replica: the primary's settings, every transaction
    read-only (even if the URL names a primary by mistake), and a connection attempt given up
    after ``REPLICA_CONNECT_TIMEOUT`` seconds, so that a replica that does not answer delays a
    read by that much before it goes to the primary (platform/replica.py)."""
    parsed = make_url(normalise_url(url))
    given = parsed.query.get("options", ())
    options = [given] if isinstance(given, str) else list(given)
    return _postgresql_engine(
        parsed.update_query_dict(
            {
                "options": " ".join([*options, "-c default_transaction_read_only=on"]),
                "connect_timeout": parsed.query.get("connect_timeout", REPLICA_CONNECT_TIMEOUT),
            }
        )
    )


def _postgresql_engine(url: str | URL) -> Engine:
    engine = create_engine(url, hide_parameters=True)  # as above: no parameter in a log
    event.listen(engine, "checkout", _check_alive)
    return engine


def _check_alive(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled PostgreSQL connection that the server has ended (the pool then opens
    a new one), without a round trip.

    An idle connection has nothing to read unless the server spoke unasked, and in this app
    that is almost always its goodbye (a restart, a terminated backend: a FATAL message, then
    EOF); on the rare harmless message (a notice) the connection is replaced all the same.
    This replaces SQLAlchemy's pool_pre_ping, whose ``SELECT 1`` was one more round trip to
    PostgreSQL for every connection a signature took from the pool.
    """
    if dbapi_connection.closed or dbapi_connection.broken:
        raise DisconnectionError("the connection is closed")
    poller = select.poll()  # not select.select: it fails on descriptors above 1023
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):
        raise DisconnectionError("the server spoke on an idle connection: ended or ending")


@contextmanager
def exclusive_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction is the database's only writer on SQLite (BEGIN IMMEDIATE).

    On PostgreSQL this is an ordinary session; callers take an advisory lock for exclusion.
    """
    with Session(engine, expire_on_commit=False) as session:
        session.connection(execution_options={EXCLUSIVE: True})
        yield session


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration."""
    # Imported here: Alembic weighs about 11 MB, which a serving worker never needs.
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def vacuum_sqlite(engine: Engine) -> None:
    """Rewrite an SQLite database file and empty its WAL (secure_delete is on, so freed
    pages are zeroed). On the driver's connection: VACUUM cannot run inside the
    transaction that SQLAlchemy would begin."""
    pooled = engine.raw_connection()
    try:
        cursor = pooled.driver_connection.cursor()  # type: ignore[union-attr]
        for statement in ("PRAGMA wal_checkpoint(TRUNCATE)", "VACUUM"):
            cursor.execute(statement)
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.close()
    finally:
        pooled.close()


def scrub(engine: Engine) -> list[str]:
    """Leave no copy of deleted rows where the database itself still keeps them, after a
    forget: SQLite's WAL and free pages (secure_delete zeroes what VACUUM frees); PostgreSQL's
    dead tuples, index entries and old table files (VACUUM FULL writes new ones and unlinks
    the old) and, after a CHECKPOINT, the WAL that held them is no longer needed (it is
    removed by later checkpoints: deploy/postgresql/samleng.conf keeps little of it).

    Returns what could not be done, for the operator (CHECKPOINT needs the pg_checkpoint
    role, or superuser).
    """
    if engine.dialect.name == "sqlite":
        vacuum_sqlite(engine)
        return []
    problems = []
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM FULL dedup_token, petition")
        try:
            connection.exec_driver_sql("CHECKPOINT")
        except SQLAlchemyError:
            problems.append(
                "PostgreSQL refused CHECKPOINT (grant the role pg_checkpoint to Samleng's "
                "database user): the old WAL stays until the next timed checkpoint"
            )
    return problems
