"""Fixtures shared by the service tests: the app on SQLite and on PostgreSQL.

PostgreSQL is the suite's own cluster (tests/components.py), started once per run, unless
``SAMLENG_TEST_DATABASE_URL`` names an existing server's database. Argon2 is made cheap here
(t=1, m=8 KiB) so the suite exercises the real code path quickly; the production parameters
have their own known-answer test in tests/crypto.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import Engine, create_engine, select, text
from werkzeug.test import TestResponse

from samleng.crypto.details import generate_details_keypair
from samleng.crypto.pending import PendingRecord, open_pending_record
from samleng.crypto.tokens import Argon2Params
from samleng.service.app import create_app
from samleng.service.petitions.lifecycle import create_petition, open_petition
from samleng.service.platform import ratelimit
from samleng.service.platform.config import Config
from samleng.service.platform.context import services
from samleng.service.platform.db import normalise_url, upgrade
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import PendingSignature, Petition
from samleng.service.tlog.epochs import epoch_private_key
from samleng.service.tlog.store import seal_all
from tests.components import (
    USED,
    PostgresServer,
    PrivatePostgres,
    program_version,
)

CHEAP_ARGON2 = Argon2Params(time_cost=1, memory_kib=8, parallelism=1)
MASTER_KEY = bytes(range(32))
ORIGIN = "petitions.example.org"
# An existing PostgreSQL database to use instead of the suite's own cluster.
EXTERNAL_PG_URL = os.environ.get("SAMLENG_TEST_DATABASE_URL")

TEXTS = {
    "km": {
        "title": "ដោះលែងសកម្មជន",
        "target": "ក្រសួងយុត្តិធម៌",
        "summary": "សេចក្ដីសង្ខេប",
        "body": "អត្ថបទ",
    },
    "en": {
        "title": "Free the activists",
        "target": "Ministry of Justice",
        "summary": "Summary",
        "body": "Body text.\n\nSecond paragraph.",
    },
}


def reset_postgres(url: str) -> None:
    """Empty the test database's public schema."""
    engine = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def within_one_clock_minute(seconds: float) -> None:
    """Wait, if need be, until the clock's minute has ``seconds`` left: for work that counts
    hits within one window where the windows are the real clock's minutes (a server in
    another process, or ``WINDOW_ORIGIN`` set back to 0)."""
    left = 60 - time.time() % 60
    if left < seconds:
        time.sleep(left + 0.05)


@pytest.fixture(autouse=True)
def windows_start_with_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rate-limit windows counted from this test's start: a test that counts hits within a
    minute would otherwise fail whenever it runs across the end of a clock minute."""
    monkeypatch.setattr(ratelimit, "WINDOW_ORIGIN", int(time.time()))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL server of this run: the suite's own cluster, started on first use."""
    if EXTERNAL_PG_URL:
        USED["PostgreSQL"] = "the server of SAMLENG_TEST_DATABASE_URL"
        yield PostgresServer(EXTERNAL_PG_URL)
        return
    cluster = PrivatePostgres()
    try:
        cluster.init()
        cluster.start()
        USED["PostgreSQL"] = f"{cluster.version()} (a private cluster on port {cluster.port})"
        yield PostgresServer(cluster.url())
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def pg_url(postgres_server: PostgresServer) -> str:
    """The URL of the database the app tests use on PostgreSQL."""
    if EXTERNAL_PG_URL:
        return EXTERNAL_PG_URL
    return postgres_server.create_database("test")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every app test runs on SQLite and on PostgreSQL (an emptied database)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'samleng.sqlite3'}"
    url: str = request.getfixturevalue("pg_url")
    reset_postgres(url)
    return url


def make_config(tmp_path: Path, database_url: str, **overrides: object) -> Config:
    """A test configuration: cheap Argon2, no minimum form fill time."""
    values: dict[str, object] = {
        "instance_path": tmp_path / "instance",
        "database_url": database_url,
        "origin": ORIGIN,
        "master_key": MASTER_KEY,
        "argon2": CHEAP_ARGON2,
        "form_min_seconds": 0,
        "testing": True,
        # Generous limits: the rate-limit tests set their own.
        "ratelimit_pages": "100000 per minute",
        "ratelimit_sign": "100000 per minute",
        "argon2_concurrency": 64,
        # Pages are rendered afresh, so that a test sees its change at once; the page cache
        # has its own tests (tests/service/test_pagecache.py).
        "page_cache_seconds": 0,
    }
    values.update(overrides)
    return Config(**values)  # type: ignore[arg-type]


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    """The app with a migrated, empty database."""
    application = create_app(make_config(tmp_path, database_url))
    upgrade(services(application).engine)
    yield application
    services(application).engine.dispose()


@pytest.fixture
def engine(app: Flask) -> Engine:
    """The app's database engine."""
    eng: Engine = services(app).engine
    return eng


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client (it keeps no cookies between requests unless the app sets some)."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """A runner for the app's CLI commands."""
    return app.test_cli_runner()


@dataclass(frozen=True)
class OpenPetition:
    """A petition created and opened for a test, with the organisers' private key."""

    slug: str
    details_private_key: bytes
    origin: str


def add_petition(
    app: Flask,
    slug: str = "free-them",
    identifier_mode: str = "phone",
    status: str = "open",
    texts: Mapping[str, Mapping[str, str]] = TEXTS,
    closes_on: dt.date | None = None,
    verification_mode: str = "none",
    photos: str = "off",
) -> OpenPetition:
    """Create (and by default open) a petition directly through the service layer."""
    private, public = generate_details_keypair()
    with app.app_context():
        session = get_session()
        petition = create_petition(
            session,
            vault=services(app).vault,
            origin=ORIGIN,
            slug=slug,
            texts=texts,
            goal=100,
            identifier_mode=identifier_mode,
            verification_mode=verification_mode,
            details_public_key=public,
            argon2=CHEAP_ARGON2,
            closes_on=closes_on,
            photos=photos,
        )
        if status == "open":
            open_petition(
                session, petition, services(app).vault, can_mail=services(app).mailer is not None
            )
        session.commit()
        return OpenPetition(slug=slug, details_private_key=private, origin=petition.origin)


@pytest.fixture
def petition(app: Flask) -> OpenPetition:
    """An open phone-mode petition ``free-them``."""
    return add_petition(app)


FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')
RECEIPT = re.compile(r'<p class="receipt">([A-Z2-7-]+)</p>')


def form_token(client: FlaskClient, slug: str, lang: str = "en") -> str:
    """Fetch the sign form like a browser would and return its form token."""
    page = client.get(f"/{lang}/p/{slug}")
    assert page.status_code == 200, page.status_code
    match = FORM_TOKEN.search(page.get_data(as_text=True))
    assert match, "the petition page has no form token"
    return match.group(1)


def post_raw(client: FlaskClient, slug: str, body: bytes) -> TestResponse:
    """Post a hand-made urlencoded body, after a fresh form token, to the sign endpoint."""
    token = form_token(client, slug).encode()
    return client.post(
        f"/en/p/{slug}/sign",
        data=b"form_token=" + token + b"&consent=yes&" + body,
        content_type="application/x-www-form-urlencoded",
    )


def sign(client: FlaskClient, slug: str, lang: str = "en", **fields: str) -> TestResponse:
    """Fetch the sign form like a browser would, then post it with ``fields``."""
    data = {"form_token": form_token(client, slug, lang), "consent": "yes", "website": ""}
    data.update(fields)
    return client.post(f"/{lang}/p/{slug}/sign", data=data)


def receipt_of(response: TestResponse) -> str:
    """The receipt code shown on an answer page."""
    match = RECEIPT.search(response.get_data(as_text=True))
    assert match, "the answer page shows no receipt code"
    return match.group(1)


# What the run uses, said at its start and its end.
_PROGRAMS = {
    "Redis": ["redis-server", "--version"],
    "Chromium": ["chromium", "--version"],
    "chromedriver": ["chromedriver", "--version"],
    "nginx": ["nginx", "-v"],
    "tor": ["tor", "--version"],
    "Go": ["go", "version"],
}


def pytest_report_header(config: pytest.Config) -> list[str]:
    """One line naming the real components this run finds."""
    postgres = (
        "SAMLENG_TEST_DATABASE_URL"
        if EXTERNAL_PG_URL
        else "a private cluster of " + program_version([_postgres_binary(), "--version"])
    )
    found = [f"PostgreSQL: {postgres}"]
    found += [f"{name}: {program_version(command)}" for name, command in _PROGRAMS.items()]
    return ["components: " + "; ".join(found)]


def _postgres_binary() -> str:
    from tests.components import pg_program

    try:
        return str(Path(pg_program("pg_ctl")).with_name("postgres"))
    except BaseException:  # pytest's Failed outside a test: report it as missing
        return "postgres"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Which real components ran, and a failure when any test was skipped."""
    if USED:
        terminalreporter.section("real components this run used")
        for name, version in sorted(USED.items(), key=lambda item: item[0].lower()):
            terminalreporter.write_line(f"{name}: {version}")
    skipped = len(terminalreporter.stats.get("skipped", []))
    if skipped:
        terminalreporter.write_line(
            f"{skipped} test(s) skipped: every test must run (make test installs every "
            "component); this run fails",
            red=True,
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run with a skipped test fails: a skip would hide a component that never ran."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and reporter.stats.get("skipped") and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def seal(app: Flask) -> dict[str, int]:
    """Run one sealing round of the app's database and vault."""
    return seal_all(services(app).engine, services(app).vault)


def pending_records(app: Flask) -> list[PendingRecord]:
    """Every pending signature, opened with its epoch's key file, as the sealer would."""
    vault = services(app).vault
    with app.app_context():
        session = get_session()
        rows = session.execute(
            select(PendingSignature.epoch_id, PendingSignature.sealed, Petition.origin).join(
                Petition, Petition.id == PendingSignature.petition_id
            )
        ).all()
    return [
        open_pending_record(epoch_private_key(vault, epoch), origin, sealed)
        for epoch, sealed, origin in rows
    ]
