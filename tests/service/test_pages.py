"""Public pages: languages, headers, and the promises made to signers."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from tests.conftest import OpenPetition, sign

ROUTES = ["/km/", "/en/", "/km/p/free-them", "/en/p/free-them", "/km/safety", "/en/safety"]


def test_root_redirects_to_default_language(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/km/")


def test_unknown_language_is_404(client: FlaskClient) -> None:
    assert client.get("/fr/").status_code == 404


@pytest.mark.parametrize("path", ROUTES)
def test_public_page_promises(client: FlaskClient, petition: OpenPetition, path: str) -> None:
    response = client.get(path)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert "<script" not in body.lower()
    assert not re.search(r"""(src|href|action)=["']?(https?:)?//""", body)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "Server" not in response.headers
    lang = path.split("/")[1]
    assert f'<html lang="{lang}">' in body
    assert len(response.data) <= 16 * 1024


def test_petition_page_in_khmer(client: FlaskClient, petition: OpenPetition) -> None:
    body = client.get("/km/p/free-them").get_data(as_text=True)
    assert "ដោះលែងសកម្មជន" in body
    assert 'name="identifier"' in body and 'type="tel"' in body


def test_count_json(client: FlaskClient, petition: OpenPetition) -> None:
    sign(client, petition.slug, identifier="012345678")
    data = client.get("/p/free-them/count.json").get_json()
    assert data["goal"] == 100
    assert data["count"] >= 0


def test_healthz(client: FlaskClient) -> None:
    assert client.get("/healthz").data == b"ok\n"


def test_onion_location(tmp_path, database_url) -> None:  # type: ignore[no-untyped-def]
    from service import create_app
    from tests.conftest import make_config

    onion = "a" * 56 + ".onion"
    app = create_app(make_config(tmp_path, database_url, onion_address=onion))
    response = app.test_client().get("/healthz", headers={"Host": "petitions.example.org"})
    assert response.headers["Onion-Location"] == f"http://{onion}/healthz"
    onion_response = app.test_client().get("/healthz", headers={"Host": onion})
    assert "Onion-Location" not in onion_response.headers
    app.extensions["samleng.engine"].dispose()


def test_khmer_pages_are_translated(client: FlaskClient, petition: OpenPetition) -> None:
    from babel.messages.pofile import read_po

    with open("service/translations/km/LC_MESSAGES/messages.po", "rb") as f:
        catalog = read_po(f)
    sign_in_khmer = catalog.get("Sign this petition").string
    body = client.get("/km/p/free-them").get_data(as_text=True)
    assert sign_in_khmer and sign_in_khmer in body, "run `make translations`"
    assert "Sign this petition" in client.get("/en/p/free-them").get_data(as_text=True)
    assert "Sign this petition" not in body
