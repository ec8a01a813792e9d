"""Signing through the app: receipts, dedup, sealed details, and refused input."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from crypto.details import open_details
from crypto.receipts import parse_receipt, receipt_commitment
from service.db import get_session
from service.models import DedupToken, PendingSignature
from tests.conftest import OpenPetition, add_petition, form_token, post_raw, receipt_of, sign


def rows(app: Flask) -> tuple[int, int]:
    """(dedup tokens, pending signatures) in the database."""
    with app.app_context():
        session = get_session()
        tokens = session.scalar(select(func.count()).select_from(DedupToken))
        pending = session.scalar(select(func.count()).select_from(PendingSignature))
        return int(tokens or 0), int(pending or 0)


def test_sign_shows_receipt_and_stores_one_signature(
    app: Flask, client: FlaskClient, petition: OpenPetition
) -> None:
    response = sign(client, petition.slug, identifier="012 345 678", name="Sok Dara")
    assert response.status_code == 200
    code = receipt_of(response)
    assert len(parse_receipt(code)) == 16
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    assert rows(app) == (1, 1)
    with app.app_context():
        pending = get_session().scalars(select(PendingSignature)).one()
        assert pending.commitment == receipt_commitment(petition.origin, parse_receipt(code))
        details = open_details(
            petition.details_private_key,
            petition.origin,
            pending.commitment,
            pending.details_ciphertext,
        )
    assert details == {"name": "Sok Dara"}


def test_details_are_sealed_even_when_empty(
    app: Flask, client: FlaskClient, petition: OpenPetition
) -> None:
    sign(client, petition.slug, identifier="012 345 678")
    sign(client, petition.slug, identifier="012 345 679", comment="ល្អ" * 100)
    with app.app_context():
        sizes = {len(p.details_ciphertext) for p in get_session().scalars(select(PendingSignature))}
    assert sizes == {32 + 1024 + 16}


def test_khmer_phone_forms_dedupe(app: Flask, client: FlaskClient, petition: OpenPetition) -> None:
    for form in ("+855 12 345 678", "012345678", "+85512345678", "០១២ ៣៤៥ ៦៧៨"):
        response = sign(client, petition.slug, identifier=form)
        assert response.status_code == 200
        receipt_of(response)
    assert rows(app) == (1, 1)


def test_gmail_forms_dedupe(app: Flask, client: FlaskClient) -> None:
    add_petition(app, slug="mail", identifier_mode="email")
    for form in ("A.B+x@gmail.com", "ab@gmail.com", "ab@googlemail.com"):
        assert sign(client, "mail", identifier=form).status_code == 200
    assert rows(app) == (1, 1)


def test_mode_none_counts_every_submission(app: Flask, client: FlaskClient) -> None:
    add_petition(app, slug="open-list", identifier_mode="none")
    for _ in range(3):
        assert sign(client, "open-list").status_code == 200
    assert rows(app) == (0, 3)


def test_token_depends_on_the_petition(app: Flask, client: FlaskClient) -> None:
    add_petition(app, slug="one")
    add_petition(app, slug="two")
    sign(client, "one", identifier="012345678")
    sign(client, "two", identifier="012345678")
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
    assert rows(app) == (1, 1)


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
