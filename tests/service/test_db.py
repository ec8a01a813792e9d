"""The connection pool on PostgreSQL: a connection the server ended is replaced before use,
without a round trip to ask, and a live one is kept."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from sqlalchemy import Engine, text

from samleng.service.app import create_app
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from tests.conftest import add_petition, make_config, reset_postgres, sign


@pytest.fixture
def pg_app(tmp_path: Path, pg_url: str) -> Iterator[Flask]:
    reset_postgres(pg_url)
    application = create_app(make_config(tmp_path, pg_url))
    upgrade(services(application).engine)
    yield application
    services(application).engine.dispose()


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def end_other_backends(pg_url: str) -> None:
    """What a PostgreSQL restart does to the app's idle connections."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        others = "datname = current_database() AND pid <> pg_backend_pid()"
        admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {others}")  # noqa: S608
        for _ in range(100):
            left = admin.execute(f"SELECT count(*) FROM pg_stat_activity WHERE {others}")  # noqa: S608
            if left.fetchone() == (0,):
                return
            time.sleep(0.05)
    raise AssertionError("the backends did not end")


def test_a_live_connection_is_kept(pg_app: Flask) -> None:
    engine: Engine = services(pg_app).engine
    assert backend_pid(engine) == backend_pid(engine)


def test_connections_the_server_ended_are_replaced_unseen(pg_app: Flask, pg_url: str) -> None:
    engine: Engine = services(pg_app).engine
    add_petition(pg_app)
    client = pg_app.test_client()
    assert sign(client, "free-them", identifier="012 345 601").status_code == 200
    before = backend_pid(engine)
    end_other_backends(pg_url)
    # The page (a read through the session) and the signature (the write's own connection).
    assert sign(client, "free-them", identifier="012 345 602").status_code == 200
    assert backend_pid(engine) != before
    end_other_backends(pg_url)
    assert sign(client, "free-them", identifier="012 345 603").status_code == 200
    with engine.connect() as connection:
        counted = connection.execute(text("SELECT count(*) FROM pending_signature")).scalar_one()
    assert counted == 3
