"""A petition outlives its keys: after close and after forget its page, count, receipt check
and bundle still answer from the public log, never 404; /petitions.json lists them."""

from __future__ import annotations

import json

from flask import Flask
from flask.testing import FlaskClient

from samleng.crypto.receipts import format_receipt, new_receipt_secret
from samleng.service.petitions.lifecycle import close_petition, forget_petition
from samleng.service.platform.context import services
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import get_petition
from samleng.service.tlog.store import seal_all
from tests.conftest import add_petition, receipt_of, sign


def _close(app: Flask, slug: str, *, forget: bool = False) -> None:
    with app.app_context():
        session = get_session()
        petition = get_petition(session, slug)
        close_petition(session, petition)
        if forget:
            forget_petition(session, petition, services(app).vault)
        session.commit()
        services(app).pages.clear()


def _check(client: FlaskClient, slug: str, code: str, lang: str = "en") -> str:
    answer = client.post(f"/{lang}/p/{slug}/receipt", data={"receipt": code, "format": "page"})
    assert answer.status_code == 200, answer.status_code
    return answer.get_data(as_text=True)


def test_after_forget_the_page_and_receipts_answer_from_the_log(
    app: Flask, client: FlaskClient
) -> None:
    add_petition(app, slug="gone")
    code = receipt_of(sign(client, "gone", identifier="012 345 678"))
    seal_all(services(app).engine, services(app).vault)
    assert "Your signature is counted." in _check(client, "gone", code)
    _close(app, "gone", forget=True)

    page = client.get("/en/p/gone")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "This petition is closed." in text
    assert "1 of 100 signatures" in text
    assert 'href="/p/gone/bundle.zip"' in text
    assert "has been destroyed" in text
    km = client.get("/km/p/gone").get_data(as_text=True)
    assert "ត្រូវបានបំផ្លាញចោលហើយ" in km and "១" in km

    counted = _check(client, "gone", code)
    assert "Your signature is counted." in counted
    assert "The petition is closed: this is its final count." in counted
    unknown = _check(client, "gone", format_receipt(new_receipt_secret()))
    assert "This receipt code was not found in this petition." in unknown
    assert client.get("/en/p/gone/receipt").status_code == 200
    # Signing is over: the form is gone and a late POST is told so, never a 404.
    assert 'action="/en/p/gone/sign"' not in text
    late = client.post("/en/p/gone/sign", data={"identifier": "012 345 679", "consent": "yes"})
    assert late.status_code == 409
    assert client.get("/p/gone/count.json").get_json()["count"] == 1


def test_a_closed_petition_links_its_bundle_and_an_open_one_does_not(
    app: Flask, client: FlaskClient
) -> None:
    add_petition(app, slug="open-one")
    add_petition(app, slug="closed-one")
    _close(app, "closed-one")
    assert "bundle.zip" not in client.get("/en/p/open-one").get_data(as_text=True)
    closed = client.get("/en/p/closed-one").get_data(as_text=True)
    assert 'href="/p/closed-one/bundle.zip"' in closed and "has been destroyed" not in closed


def test_drafts_stay_hidden(app: Flask, client: FlaskClient) -> None:
    add_petition(app, slug="draft", status="draft")
    assert client.get("/en/p/draft").status_code == 404
    assert client.post("/en/p/draft/receipt", data={"receipt": "x"}).status_code == 404
    assert all(p["slug"] != "draft" for p in client.get("/petitions.json").get_json()["petitions"])


def test_petitions_json_lists_every_public_petition(app: Flask, client: FlaskClient) -> None:
    add_petition(app, slug="first")
    add_petition(app, slug="second")
    add_petition(app, slug="third")
    add_petition(app, slug="hidden", status="draft")
    sign(client, "second", identifier="012 345 678")
    seal_all(services(app).engine, services(app).vault)
    _close(app, "second")
    _close(app, "third", forget=True)
    answer = client.get("/petitions.json")
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    assert answer.headers["Cache-Control"] == "public, max-age=5"
    assert "Set-Cookie" not in answer.headers
    listed = {p["slug"]: p for p in json.loads(answer.get_data())["petitions"]}
    assert list(listed) == ["third", "second", "first"]
    second = listed["second"]
    origin = "https://petitions.example.org/p/second"
    assert second == {
        "slug": "second",
        "status": "closed",
        "titles": {"en": "Free the activists", "km": "ដោះលែងសកម្មជន"},
        "goal": 100,
        "count": 1,
        "online": 1,
        "paper": 0,
        "photos": 0,
        "opens_on": second["opens_on"],
        "closes_on": None,
        "checkpoint": f"{origin}/checkpoint",
        "count_json": f"{origin}/count.json",
        "bundle": f"{origin}/bundle.zip",
    }
    assert listed["first"]["status"] == "open" and listed["first"]["bundle"] is None
    assert listed["third"]["status"] == "forgotten" and listed["third"]["count"] == 0
