"""The smallest drill: the database connection dies while a page is being made.

At the end of every request the app rolls the session back; on a connection that PostgreSQL
closed (a restart, a crash) that rollback fails. The answer is made by then and must still
be sent, not replaced by the server's own bare 500 page (test_faults.py saw that happen
under load while PostgreSQL restarted).
"""

from __future__ import annotations

import time

import psycopg
import pytest
from flask import Flask
from sqlalchemy import text

from samleng.service.platform.dbsession import get_session


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_page_survives_its_connection(app: Flask, database_url: str) -> None:
    @app.get("/drill/lose-connection")
    def lose_connection() -> str:
        pid = get_session().execute(text("SELECT pg_backend_pid()")).scalar_one()
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            deadline = time.monotonic() + 10
            while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
                assert time.monotonic() < deadline, "the backend was not terminated"
                time.sleep(0.02)
        return "made before the connection was lost"

    answer = app.test_client().get("/drill/lose-connection")
    assert answer.status_code == 200
    assert answer.get_data(as_text=True) == "made before the connection was lost"
    # The dead connection was dropped, not put back in the pool.
    with app.app_context():
        assert get_session().execute(text("SELECT 1")).scalar_one() == 1
