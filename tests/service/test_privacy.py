"""Nothing that names a signer is written anywhere: database file, PostgreSQL dump, logs.

Signs with known identifiers and details, then searches every byte the run wrote for the
identifiers as typed, their normalised forms, and the detail strings.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from samleng.service.platform.context import services
from tests.components import require_program
from tests.conftest import OpenPetition, add_petition, sign

PHONES = ["+855 12 345 678", "097 765 4321"]
EMAILS = ["Sok.Dara+news@gmail.com", "chanthy@example.org"]
DETAILS = {"name": "Sok Dara", "locality": "ភូមិព្រែកលៀប", "comment": "UniqueComment7781"}

NEEDLES = [
    *PHONES,
    "+85512345678",
    "85512345678",
    "012345678",
    "12345678",
    "+855977654321",
    "977654321",
    *EMAILS,
    "sokdara@gmail.com",
    "chanthy@example.org",
    *DETAILS.values(),
]


def needles_in(data: bytes) -> list[str]:
    """The needles found in ``data`` (UTF-8, and UTF-16 for good measure)."""
    found = []
    for needle in NEEDLES:
        if needle.encode() in data or needle.encode("utf-16-le") in data:
            found.append(needle)
    return found


def sign_everything(app: Flask, client: FlaskClient, petition: OpenPetition) -> None:
    add_petition(app, slug="mail", identifier_mode="email")
    for phone in PHONES:
        assert sign(client, petition.slug, identifier=phone, **DETAILS).status_code == 200
    for email in EMAILS:
        assert sign(client, "mail", identifier=email, **DETAILS, contact=email).status_code == 200
    # A refused submission must not leave its identifier behind either.
    assert sign(client, petition.slug, identifier=PHONES[0], consent="").status_code == 400


def test_nothing_identifying_is_stored_or_logged(
    app: Flask,
    client: FlaskClient,
    petition: OpenPetition,
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sign_everything(app, client, petition)
    services(app).engine.dispose()

    if database_url.startswith("sqlite"):
        files = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert any(p.name.startswith("samleng.sqlite3") for p in files)
        for path in files:
            assert needles_in(path.read_bytes()) == [], path
    else:
        pg_dump = require_program("pg_dump", "install postgresql-client")
        dump = subprocess.run(
            [pg_dump, "--data-only", "--inserts", database_url], capture_output=True, check=True
        ).stdout
        assert b"INSERT INTO public.pending_signature" in dump
        assert needles_in(dump) == []

    logged = "\n".join(r.getMessage() for r in caplog.records).encode()
    assert needles_in(logged) == []
