"""Reads on a PostgreSQL streaming replica, writes on the primary (platform/replica.py).

Two private clusters on loopback: a primary of this module's own (a replica copies a whole
cluster, so not the suite's shared one) and a hot standby made from it with pg_basebackup.
Replay is paused to make the replica lag, and the replica is stopped to make it fail.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, event, text

from samleng.crypto.receipts import (
    format_receipt,
    new_receipt_secret,
    parse_receipt,
    receipt_commitment,
)
from samleng.service.app import create_app
from samleng.service.petitions.lifecycle import close_petition
from samleng.service.platform import replica as replica_module
from samleng.service.platform.config import Config, load_config
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from samleng.service.platform.dbsession import get_read_session, get_session
from samleng.service.platform.errors import ConfigError
from samleng.service.platform.keys import ensure_master_key
from samleng.service.platform.models import get_petition
from samleng.service.tlog.store import find_receipt
from tests.components import USED, PostgresServer, PrivatePostgres, PrivateReplica
from tests.conftest import (
    MASTER_KEY,
    OpenPetition,
    add_petition,
    make_config,
    receipt_of,
    reset_postgres,
    seal,
    sign,
)

pytestmark = pytest.mark.postgres

COUNTED = "Your signature is counted."
WAITING = "This receipt code is not in the log yet."


@pytest.fixture(scope="module")
def clusters() -> Iterator[tuple[str, PrivateReplica]]:
    """The primary's database URL, and the replica (its database is the same)."""
    primary = PrivatePostgres()
    standby: PrivateReplica | None = None
    try:
        primary.init()
        primary.start()
        url = PostgresServer(primary.url()).create_database("samleng")
        standby = PrivateReplica(primary)
        standby.init()
        standby.start()
        USED["PostgreSQL streaming replica"] = f"{standby.version()} (pg_basebackup -R)"
        yield url, standby
    finally:
        if standby is not None:
            standby.destroy()
        primary.destroy()


@pytest.fixture
def replica(clusters: tuple[str, PrivateReplica]) -> Iterator[PrivateReplica]:
    """The replica, caught up, replaying and running; left so for the next test."""
    standby = clusters[1]
    yield standby
    if not standby.running():
        standby.start()
    standby.resume_replay()


@pytest.fixture
def app(tmp_path: Path, clusters: tuple[str, PrivateReplica]) -> Iterator[Flask]:
    """The app on the primary with its reads on the replica, an empty schema on both."""
    url, standby = clusters
    reset_postgres(url)
    application = create_app(
        make_config(tmp_path, url, database_replica_url=standby.url("samleng"))
    )
    upgrade(services(application).engine)
    standby.caught_up()
    yield application
    services(application).engine.dispose()
    read_replica = services(application).replica
    assert read_replica is not None
    read_replica.engine.dispose()


@pytest.fixture
def petition(app: Flask, replica: PrivateReplica) -> OpenPetition:
    """An open petition, replayed on the replica."""
    opened = add_petition(app)
    replica.caught_up()
    return opened


class Statements:
    """The statements an engine runs, counted."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: object) -> None:
        self.count += 1


def count(client: FlaskClient, slug: str) -> int:
    answer = client.get(f"/p/{slug}/count.json")
    assert answer.status_code == 200, answer.status_code
    value: int = answer.json["count"]  # type: ignore[index]
    return value


def check_receipt(client: FlaskClient, slug: str, code: str) -> str:
    answer = client.post(f"/en/p/{slug}/receipt", data={"receipt": code, "format": "page"})
    assert answer.status_code == 200, answer.status_code
    return answer.get_data(as_text=True)


def test_the_read_session_is_the_replica_s(app: Flask, replica: PrivateReplica) -> None:
    with app.test_request_context():
        assert get_read_session().scalar(text("SELECT pg_is_in_recovery()")) is True
        assert get_session().scalar(text("SELECT pg_is_in_recovery()")) is False
        # Read-only, even if the URL named a primary by mistake.
        assert get_read_session().scalar(text("SHOW default_transaction_read_only")) == "on"


def test_public_reads_come_from_the_replica(
    app: Flask, client: FlaskClient, petition: OpenPetition, replica: PrivateReplica
) -> None:
    code = receipt_of(sign(client, petition.slug, identifier="012 345 678"))
    seal(app)
    replica.caught_up()
    on_primary = Statements(services(app).engine)
    size = client.get(f"/p/{petition.slug}/count.json").json["size"]  # type: ignore[index]
    for path in (
        f"/en/p/{petition.slug}",
        "/en/",
        "/petitions.json",
        f"/p/{petition.slug}/checkpoint",
        f"/p/{petition.slug}/tile/0/000.p/{size}",
        f"/p/{petition.slug}/proof/consistency?old=1",
        f"/en/p/{petition.slug}/updates",
    ):
        assert client.get(path).status_code == 200, path
    assert COUNTED in check_receipt(client, petition.slug, code)
    assert on_primary.count == 0


def test_a_lagging_replica_shows_the_older_count(
    app: Flask, client: FlaskClient, petition: OpenPetition, replica: PrivateReplica
) -> None:
    replica.pause_replay()
    # Writes go to the primary: signing and sealing work while the replica replays nothing.
    assert sign(client, petition.slug, identifier="012 345 678").status_code == 200
    assert seal(app) == {petition.slug: 2}
    assert count(client, petition.slug) == 0
    assert "0 of 100 signatures" in client.get(f"/en/p/{petition.slug}").get_data(as_text=True)
    replica.resume_replay()
    assert count(client, petition.slug) == 1
    assert "1 of 100 signatures" in client.get(f"/en/p/{petition.slug}").get_data(as_text=True)


def test_a_receipt_the_replica_has_not_replayed_is_answered_by_the_primary(
    app: Flask, client: FlaskClient, petition: OpenPetition, replica: PrivateReplica
) -> None:
    replica.pause_replay()
    code = receipt_of(sign(client, petition.slug, identifier="012 345 678"))
    seal(app)
    # The replica alone would say the code is not in the log yet.
    commitment = receipt_commitment(petition.origin, parse_receipt(code))
    with app.test_request_context():
        session = get_read_session()
        lagging = get_petition(session, petition.slug)
        assert find_receipt(session, lagging, commitment, parse_receipt(code)).state == "waiting"
    page = check_receipt(client, petition.slug, code)
    assert COUNTED in page and WAITING not in page
    proof = client.post(f"/en/p/{petition.slug}/receipt", data={"receipt": code, "format": "proof"})
    assert proof.status_code == 200 and proof.mimetype == "text/plain"


def test_a_closed_petition_s_unknown_code_is_not_found(
    app: Flask, client: FlaskClient, petition: OpenPetition, replica: PrivateReplica
) -> None:
    with app.app_context():
        session = get_session()
        close_petition(session, get_petition(session, petition.slug))
        session.commit()
    replica.caught_up()
    page = check_receipt(client, petition.slug, format_receipt(new_receipt_secret()))
    assert "This receipt code was not found in this petition." in page


def test_a_stopped_replica_sends_the_reads_to_the_primary(
    app: Flask,
    client: FlaskClient,
    petition: OpenPetition,
    replica: PrivateReplica,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(replica_module, "RETRY_SECONDS", 1.0)
    code = receipt_of(sign(client, petition.slug, identifier="012 345 678"))
    seal(app)
    replica.caught_up()
    assert count(client, petition.slug) == 1  # pools a connection to the replica
    replica.stop()
    read_replica = services(app).replica
    assert read_replica is not None
    attempts = Statements(services(app).engine)
    tries: list[object] = []
    event.listen(read_replica.engine, "do_connect", lambda *args: tries.append(args))
    page = client.get(f"/en/p/{petition.slug}")
    assert page.status_code == 200 and "Free the activists" in page.get_data(as_text=True)
    assert tries, "the replica was not tried"
    assert count(client, petition.slug) == 1
    assert client.get(f"/p/{petition.slug}/tile/0/000.p/2").status_code == 200
    assert COUNTED in check_receipt(client, petition.slug, code)
    assert attempts.count > 0
    # Within the rest, the replica is not tried again: no request waits for it.
    assert len(tries) == 1
    # The operator is told once, with nothing of the request.
    warnings = [r.getMessage() for r in caplog.records if r.name == replica_module.__name__]
    assert len(warnings) == 1 and "OperationalError" in warnings[0]
    assert "127.0.0.1" not in warnings[0] and petition.slug not in warnings[0]

    replica.start()
    time.sleep(1.1)
    before = attempts.count
    assert count(client, petition.slug) == 1
    assert attempts.count == before, "reads did not go back to the replica"


def test_a_replica_failing_in_the_middle_of_a_read_is_read_again_on_the_primary(
    app: Flask, client: FlaskClient, petition: OpenPetition, replica: PrivateReplica
) -> None:
    read_replica = services(app).replica
    assert read_replica is not None

    ended: list[int] = []

    @event.listens_for(read_replica.engine, "before_cursor_execute")
    def _terminate(conn: Connection, *_args: object) -> None:
        # The view's first statement: its backend is ended under it, from outside.
        if ended:
            return
        ended.append(conn.connection.dbapi_connection.info.backend_pid)  # type: ignore[union-attr]
        with psycopg.connect(replica.url(), autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s, 10000)", (ended[0],))

    answer = client.get(f"/p/{petition.slug}/count.json")
    assert answer.status_code == 200 and answer.json["count"] == 0  # type: ignore[index]
    assert ended and not read_replica.available()


def test_a_replica_that_does_not_answer_costs_one_timeout(
    tmp_path: Path, clusters: tuple[str, PrivateReplica]
) -> None:
    url = clusters[0]
    reset_postgres(url)
    # Something that accepts connections and never says a word, like a hung server.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        application = create_app(
            make_config(
                tmp_path, url, database_replica_url=f"postgresql://postgres@127.0.0.1:{port}/x"
            )
        )
        upgrade(services(application).engine)
        add_petition(application)
        client = application.test_client()
        started = time.monotonic()
        assert count(client, "free-them") == 0
        first = time.monotonic() - started
        started = time.monotonic()
        assert count(client, "free-them") == 0
        second = time.monotonic() - started
    services(application).engine.dispose()
    assert 1.5 < first < 5, first
    assert second < 0.5, second


def test_the_replica_url_is_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAMLENG_INSTANCE", str(tmp_path))
    monkeypatch.setenv("SAMLENG_ORIGIN", "petitions.example.org")
    monkeypatch.setenv("SAMLENG_DATABASE_URL", "postgresql://samleng@db1/samleng")
    monkeypatch.delenv("SAMLENG_DATABASE_REPLICA_URL", raising=False)
    ensure_master_key(tmp_path)
    assert load_config().database_replica_url is None
    monkeypatch.setenv("SAMLENG_DATABASE_REPLICA_URL", "postgresql://samleng@db2/samleng")
    assert load_config().database_replica_url == "postgresql://samleng@db2/samleng"


def test_without_a_replica_everything_is_on_the_primary(tmp_path: Path) -> None:
    application = create_app(make_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}"))
    assert services(application).replica is None
    with application.test_request_context():
        assert get_read_session() is get_session()


@pytest.mark.parametrize(
    ("primary", "replica"),
    [
        ("sqlite:///x.sqlite3", "postgresql://db2/samleng"),
        ("postgresql://db/samleng", "sqlite:///x.sqlite3"),
    ],
)
def test_a_replica_needs_postgresql(tmp_path: Path, primary: str, replica: str) -> None:
    with pytest.raises(ConfigError, match="SAMLENG_DATABASE_REPLICA_URL"):
        Config(
            instance_path=tmp_path,
            database_url=primary,
            database_replica_url=replica,
            origin="x.org",
            master_key=MASTER_KEY,
        )
