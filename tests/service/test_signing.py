"""Signing through the app: receipts, dedup, sealed details, and refused input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from samleng.crypto.custody import single_key_custody
from samleng.crypto.details import open_details
from samleng.crypto.receipts import parse_receipt, receipt_commitment
from samleng.crypto.tokens import DEFAULT_ARGON2
from samleng.service.app import create_app
from samleng.service.petitions.lifecycle import close_petition, forget_petition
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import (
    DedupToken,
    Leaf,
    PendingSignature,
    get_petition,
    utc_today,
)
from samleng.service.signing.signatures import KeptSigningMaterial, SigningMaterial
from tests.conftest import (
    OpenPetition,
    add_petition,
    form_token,
    make_config,
    pending_records,
    post_raw,
    receipt_of,
    seal,
    sign,
)


def rows(app: Flask) -> tuple[int, int]:
    """(dedup tokens, pending signatures) in the database."""
    with app.app_context():
        session = get_session()
        tokens = session.scalar(select(func.count()).select_from(DedupToken))
        pending = session.scalar(select(func.count()).select_from(PendingSignature))
        return int(tokens or 0), int(pending or 0)


def leaves(app: Flask) -> int:
    """Leaves in every log, headers included."""
    with app.app_context():
        return int(get_session().scalar(select(func.count()).select_from(Leaf)) or 0)


def test_sign_shows_receipt_and_stores_one_signature(
    app: Flask, client: FlaskClient, petition: OpenPetition
) -> None:
    response = sign(client, petition.slug, identifier="012 345 678", name="Sok Dara")
    assert response.status_code == 200
    code = receipt_of(response)
    assert len(parse_receipt(code)) == 16
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    # Signing writes one sealed row and nothing else; the sealer writes the token.
    assert rows(app) == (0, 1)
    (pending,) = pending_records(app)
    assert pending.commitment == receipt_commitment(petition.origin, parse_receipt(code))
    details = open_details(
        petition.details_private_key,
        petition.origin,
        pending.commitment,
        pending.details_ciphertext,
    )
    assert details == {"name": "Sok Dara"}
    seal(app)
    assert rows(app) == (1, 0)
    assert leaves(app) == 2


def test_details_are_sealed_even_when_empty(
    app: Flask, client: FlaskClient, petition: OpenPetition
) -> None:
    sign(client, petition.slug, identifier="012 345 678")
    sign(client, petition.slug, identifier="012 345 679", comment="ល្អ" * 100)
    assert {len(p.details_ciphertext) for p in pending_records(app)} == {32 + 1024 + 16}
    with app.app_context():
        sealed = {len(p.sealed) for p in get_session().scalars(select(PendingSignature))}
    assert len(sealed) == 1  # and so are the rows that carry them


def test_khmer_phone_forms_dedupe(app: Flask, client: FlaskClient, petition: OpenPetition) -> None:
    for form in ("+855 12 345 678", "012345678", "+85512345678", "០១២ ៣៤៥ ៦៧៨"):
        response = sign(client, petition.slug, identifier=form)
        assert response.status_code == 200
        receipt_of(response)
    assert rows(app) == (0, 4)
    seal(app)
    assert rows(app) == (1, 0)
    assert leaves(app) == 2


def test_gmail_forms_dedupe(app: Flask, client: FlaskClient) -> None:
    add_petition(app, slug="mail", identifier_mode="email")
    for form in ("A.B+x@gmail.com", "ab@gmail.com", "ab@googlemail.com"):
        assert sign(client, "mail", identifier=form).status_code == 200
    seal(app)
    assert rows(app) == (1, 0)
    assert leaves(app) == 2


def test_mode_none_counts_every_submission(app: Flask, client: FlaskClient) -> None:
    add_petition(app, slug="open-list", identifier_mode="none")
    for _ in range(3):
        assert sign(client, "open-list").status_code == 200
    assert rows(app) == (0, 3)
    seal(app)
    assert rows(app) == (0, 0)
    assert leaves(app) == 4


def test_token_depends_on_the_petition(app: Flask, client: FlaskClient) -> None:
    add_petition(app, slug="one")
    add_petition(app, slug="two")
    sign(client, "one", identifier="012345678")
    sign(client, "two", identifier="012345678")
    seal(app)
    with app.app_context():
        tokens = get_session().scalars(select(DedupToken.token)).all()
    assert len(tokens) == 2 and tokens[0] != tokens[1]


def test_repeat_answer_looks_like_a_first_answer(
    app: Flask, client: FlaskClient, petition: OpenPetition
) -> None:
    first = sign(client, petition.slug, identifier="012345678")
    again = sign(client, petition.slug, identifier="012345678")
    strip = lambda r: r.get_data(as_text=True).replace(receipt_of(r), "")  # noqa: E731
    assert first.status_code == again.status_code == 200
    assert strip(first) == strip(again)
    assert receipt_of(first) != receipt_of(again)
    seal(app)
    assert rows(app) == (1, 0)


BAD_INPUT = [
    ({"identifier": "1" * 400}, "identifier", "too long"),
    ({"identifier": "12"}, "identifier", "phone number does not look right"),
    ({"identifier": "+1 202 555 0100x"}, "identifier", "phone number does not look right"),
    ({"identifier": ""}, "identifier", "enter your phone number"),
    ({"identifier": "012345678", "consent": ""}, "consent", "tick the box"),
    ({"identifier": "012345678", "website": "http://spam"}, "form", "could not be accepted"),
    ({"identifier": "012345678", "name": "x" * 101}, "name", "too long"),
    ({"identifier": "012345678", "name": "a\x00b"}, "name", "cannot read"),
    ({"identifier": "012345678", "contact": "not-an-email"}, "contact", "does not look right"),
    ({"identifier": "012345678", "form_token": "123.forged"}, "form", "too old"),
    ({"identifier": "012345678", "form_token": ""}, "form", "too old"),
]


@pytest.mark.parametrize(("fields", "field", "message"), BAD_INPUT)
def test_bad_input_is_refused_and_nothing_stored(
    app: Flask,
    client: FlaskClient,
    petition: OpenPetition,
    fields: dict[str, str],
    field: str,
    message: str,
) -> None:
    response = sign(client, petition.slug, **fields)
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message in body
    assert 'class="receipt"' not in body
    assert 'role="alert"' in body
    assert rows(app) == (0, 0)


def test_details_too_large_together(
    app: Flask, client: FlaskClient, petition: OpenPetition
) -> None:
    khmer = "ក" * 100
    response = sign(
        client,
        petition.slug,
        identifier="012345678",
        name=khmer,
        locality=khmer,
        comment="ខ" * 500,
    )
    assert response.status_code == 400
    assert "shorten the comment" in response.get_data(as_text=True)
    assert rows(app) == (0, 0)


@pytest.mark.parametrize(
    "body",
    [
        b"identifier=012345678&name=\xff\xfe",
        b"identifier=012345678&identifier=012345679",
        b"identifier=012345678&name=a&name=b",
    ],
    ids=["non-utf8", "repeated-identifier", "repeated-detail"],
)
def test_malformed_body_is_refused(
    app: Flask, client: FlaskClient, petition: OpenPetition, body: bytes
) -> None:
    response = post_raw(client, petition.slug, body)
    assert response.status_code == 400
    assert 'role="alert"' in response.get_data(as_text=True)
    assert rows(app) == (0, 0)


def test_file_upload_is_refused(app: Flask, client: FlaskClient, petition: OpenPetition) -> None:
    import io

    response = client.post(
        f"/en/p/{petition.slug}/sign",
        data={
            "form_token": form_token(client, petition.slug),
            "consent": "yes",
            "identifier": "012345678",
            "name": (io.BytesIO(b"x"), "a.txt"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "does not accept files" in response.get_data(as_text=True)
    assert rows(app) == (0, 0)


def test_huge_body_is_refused_with_413(
    app: Flask, client: FlaskClient, petition: OpenPetition
) -> None:
    response = client.post(
        f"/en/p/{petition.slug}/sign",
        data={"identifier": "012345678", "comment": "x" * 100_000, "consent": "yes"},
    )
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)
    assert rows(app) == (0, 0)


def test_form_for_another_petition_is_refused(app: Flask, client: FlaskClient) -> None:
    add_petition(app, slug="one")
    add_petition(app, slug="two")
    response = client.post(
        "/en/p/two/sign",
        data={"form_token": form_token(client, "one"), "consent": "yes", "identifier": "012345678"},
    )
    assert response.status_code == 400
    assert rows(app) == (0, 0)


def test_closed_and_draft_petitions(app: Flask, client: FlaskClient) -> None:
    add_petition(app, slug="draft", status="draft")
    assert client.get("/en/p/draft").status_code == 404
    assert client.post("/en/p/draft/sign", data={}).status_code == 404
    assert client.get("/en/p/nothing-here").status_code == 404


def test_errors_are_translated_pages_without_trace(client: FlaskClient) -> None:
    response = client.get("/km/p/nothing-here")
    body = response.get_data(as_text=True)
    assert response.status_code == 404
    assert '<html lang="km">' in body
    assert "Traceback" not in body
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")


def _stop_accepting(app: Flask, slug: str, how: str) -> None:
    """Change the petition in the database only, behind the worker's kept keys."""
    with app.app_context():
        session = get_session()
        petition = get_petition(session, slug)
        if how == "past its last day":
            petition.closes_on = utc_today() - dt.timedelta(days=1)
        else:
            close_petition(session, petition)
        session.commit()
    if how == "forgotten":
        seal(app)  # forget waits until nothing is pending
        with app.app_context():
            session = get_session()
            forget_petition(session, get_petition(session, slug), services(app).vault)
            session.commit()


@pytest.mark.parametrize("mode", ["phone", "none"])
@pytest.mark.parametrize("how", ["closed", "past its last day", "forgotten"])
def test_the_write_refuses_a_petition_that_stopped_behind_the_kept_keys(
    app: Flask, client: FlaskClient, mode: str, how: str
) -> None:
    """The worker keeps an open petition's keys, not its status: the write checks that."""
    add_petition(app, slug="kept", identifier_mode=mode)
    first = {"identifier": "012 345 678"} if mode == "phone" else {}
    assert sign(client, "kept", **first).status_code == 200
    kept: KeptSigningMaterial = services(app).signing_material
    assert kept.get("kept") is not None
    token = form_token(client, "kept")
    before = rows(app)
    _stop_accepting(app, "kept", how)
    second = {"identifier": "012 345 679"} if mode == "phone" else {}
    response = client.post(
        "/en/p/kept/sign", data={"form_token": token, "consent": "yes", **second}
    )
    # A forgotten petition is closed to the public too (it outlives its keys): never a 404.
    assert response.status_code == 409
    assert "This petition is closed." in response.get_data(as_text=True)
    assert kept.get("kept") is None
    after = rows(app)
    # A forgotten petition's tokens are gone (its one signature sealed first); nothing else
    # changed.
    assert after == ((0, 0) if how == "forgotten" else before)


def test_a_repeated_identifier_is_written_like_a_first_and_dropped_when_sealed(
    app: Flask, client: FlaskClient, petition: OpenPetition
) -> None:
    first = sign(client, petition.slug, identifier="012 345 678")
    again = sign(client, petition.slug, identifier="+855 12 345 678")
    assert first.status_code == again.status_code == 200
    assert receipt_of(first) != receipt_of(again)
    assert rows(app) == (0, 2)
    with app.app_context():
        sizes = {len(p.sealed) for p in get_session().scalars(select(PendingSignature))}
    assert len(sizes) == 1
    seal(app)
    assert rows(app) == (1, 0)
    assert leaves(app) == 2
    # A later repeat is dropped against the token already written.
    sign(client, petition.slug, identifier="012345678")
    seal(app)
    assert (rows(app), leaves(app)) == ((1, 0), 2)


def test_a_signature_is_one_statement_on_postgresql(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the page, the keys and the epoch kept, nothing is read before the hash, and the
    write is a single statement (on PostgreSQL a CTE that also says whether the petition
    accepts signatures)."""
    application = create_app(make_config(tmp_path, database_url, page_cache_seconds=60))
    engine = services(application).engine
    upgrade(engine)
    add_petition(application, slug="one")
    client = application.test_client()
    assert sign(client, "one", identifier="012 345 600").status_code == 200  # warms both
    token = form_token(client, "one")
    statements: list[str] = []
    # What goes through SQLAlchemy (SQLite's BEGIN is sent by the app itself,
    # service/platform/db.py; PostgreSQL's by the driver), and what the signing write sends to
    # psycopg directly.
    event.listen(
        engine,
        "before_cursor_execute",
        lambda *a: a[2].startswith("BEGIN") or statements.append(a[2]),
    )
    real_execute = psycopg.Connection.execute

    def execute(connection: psycopg.Connection[Any], query: Any, *args: Any, **kw: Any) -> Any:
        statements.append(str(query))
        return real_execute(connection, query, *args, **kw)

    monkeypatch.setattr(psycopg.Connection, "execute", execute)
    response = client.post(
        "/en/p/one/sign", data={"form_token": token, "consent": "yes", "identifier": "012 345 601"}
    )
    assert response.status_code == 200
    assert len(statements) == 1, statements
    assert all(s.lstrip().startswith(("WITH", "INSERT")) for s in statements), statements
    assert rows(application) == (0, 2)
    engine.dispose()


def test_kept_keys_run_out_are_bounded_and_can_be_dropped() -> None:
    now = [0.0]
    kept = KeptSigningMaterial(seconds=10, max_petitions=2, clock=lambda: now[0])
    keys = [_keys(slug) for slug in ("a", "b", "c")]
    kept.keep(keys[0])
    assert kept.get("a") is keys[0]
    now[0] = 9.9
    assert kept.get("a") is keys[0]
    now[0] = 10.0
    assert kept.get("a") is None
    kept.keep(keys[0])
    kept.keep(keys[1])
    kept.keep(keys[2])  # full: the others go
    assert (kept.get("a"), kept.get("b"), kept.get("c")) == (None, None, keys[2])
    kept.drop("c")
    assert kept.get("c") is None
    kept.keep(keys[0])
    kept.clear()
    assert kept.get("a") is None
    never = KeptSigningMaterial(seconds=0)
    never.keep(keys[0])
    assert never.get("a") is None


def test_kept_keys_do_not_show_secrets_in_their_repr() -> None:
    keys = _keys("a")
    assert keys.dedup_key.hex() not in repr(keys) and "dedup_key" not in repr(keys)


def _keys(slug: str) -> SigningMaterial:
    return SigningMaterial(
        petition_id=1,
        slug=slug,
        origin="https://example.org/p/" + slug,
        identifier_mode="phone",
        verification_mode="none",
        region="KH",
        argon2=DEFAULT_ARGON2,
        salt=bytes(16),
        dedup_key=bytes(range(32)),
        details_public_key=bytes(32),
        custody=single_key_custody(bytes(32)),
    )
