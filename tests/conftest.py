"""Fixtures shared by the service tests: the app on SQLite and (when configured) PostgreSQL.

Argon2 is made cheap here (t=1, m=8 KiB) so the suite exercises the real code path quickly;
the production parameters have their own known-answer test in tests/crypto.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import Engine, create_engine, text
from werkzeug.test import TestResponse

from crypto.details import generate_details_keypair
from crypto.tokens import Argon2Params
from service import create_app
from service.config import Config
from service.db import get_session, normalise_url, upgrade
from service.petitions import create_petition, open_petition
from tests.components import require

CHEAP_ARGON2 = Argon2Params(time_cost=1, memory_kib=8, parallelism=1)
MASTER_KEY = bytes(range(32))
ORIGIN = "petitions.example.org"
PG_URL = os.environ.get("SAMLENG_TEST_DATABASE_URL")

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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every app test runs on SQLite, and on PostgreSQL when SAMLENG_TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'samleng.sqlite3'}"
    require("PostgreSQL", PG_URL is not None, "set SAMLENG_TEST_DATABASE_URL")
    assert PG_URL is not None
    reset_postgres(PG_URL)
    return PG_URL


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
    upgrade(application.extensions["samleng.engine"])
    yield application
    application.extensions["samleng.engine"].dispose()


@pytest.fixture
def engine(app: Flask) -> Engine:
    """The app's database engine."""
    eng: Engine = app.extensions["samleng.engine"]
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
) -> OpenPetition:
    """Create (and by default open) a petition directly through the service layer."""
    private, public = generate_details_keypair()
    with app.app_context():
        session = get_session()
        petition = create_petition(
            session,
            master_key=MASTER_KEY,
            origin=ORIGIN,
            slug=slug,
            texts=texts,
            goal=100,
            identifier_mode=identifier_mode,
            verification_mode=verification_mode,
            details_public_key=public,
            argon2=CHEAP_ARGON2,
            closes_on=closes_on,
        )
        if status == "open":
            open_petition(session, petition, MASTER_KEY)
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
