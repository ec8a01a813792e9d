"""Public pages: languages, headers, and the promises made to signers."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask, request, request_finished
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from samleng.service.app import STYLESHEET, create_app
from samleng.service.petitions.lifecycle import close_petition
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import get_petition
from samleng.service.tlog.store import seal_all
from samleng.service.web.security import content_security_policy, security_headers
from tests.conftest import (
    OpenPetition,
    add_petition,
    form_token,
    make_config,
    receipt_of,
    sign,
)
from tests.petition_texts import LONG_TEXTS

ROUTES = ["/km/", "/en/", "/km/p/free-them", "/en/p/free-them", "/km/safety", "/en/safety"]
PAGE_BUDGET = 16 * 1024
HOST = "petitions.example.org"
ONION = "a" * 56 + ".onion"
# Links that open the reader's own apps: they load nothing.
APP_SCHEMES = frozenset({"mailto", "tg"})
# base.html's icon: an empty one, so that the browser does not ask for /favicon.ico.
EMPTY_ICON = "data:,"
URL_ATTRIBUTES = frozenset(
    {"src", "srcset", "href", "action", "formaction", "poster", "data", "ping", "cite"}
)
KHMER_DIGITS = "០១២៣៤៥៦៧៨៩"


class Page(HTMLParser):
    """The parts of an HTML page the promises are about."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self._skip = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))
        if tag in ("style", "script"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)

    def urls(self) -> Iterator[str]:
        """Every URL the page could load or send to: attributes, and og:url."""
        for tag, attrs in self.tags:
            for name, value in attrs.items():
                if name in URL_ATTRIBUTES:
                    yield value
            if tag == "meta" and attrs.get("property") == "og:url":
                yield attrs["content"]

    def find(self, tag: str, **wanted: str) -> list[dict[str, str]]:
        """Attributes of every ``tag`` whose attributes include ``wanted``."""
        return [
            attrs
            for name, attrs in self.tags
            if name == tag and all(attrs.get(k.replace("_", "-")) == v for k, v in wanted.items())
        ]

    @property
    def visible_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def assert_same_origin_only(body: str, host: str) -> None:
    """No URL in the page points anywhere but ``host``, except links to the reader's apps."""
    for url in Page(body).urls():
        parts = urlsplit(url)
        if parts.scheme in APP_SCHEMES or url == EMPTY_ICON:
            continue
        assert parts.scheme in ("", "http", "https"), url
        assert parts.netloc in ("", host), f"third-party URL {url!r}"
    assert "url(" not in body and "@import" not in body


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
    assert len(response.data) <= PAGE_BUDGET


# --- every route, errors included ---------------------------------------------------------


class PublicClient(FlaskClient):
    """A test client that visits the public name over HTTPS, as signers do."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        kwargs.setdefault("base_url", f"https://{HOST}")
        return super().open(*args, **kwargs)


@dataclass(frozen=True)
class Visit:
    """One request of the walk and what the page must promise."""

    name: str
    response: TestResponse
    status: int
    no_store: bool


@pytest.fixture
def onion_app(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    """The app with an onion address, an open and a closed petition."""
    application = create_app(make_config(tmp_path, database_url, onion_address=ONION))
    upgrade(services(application).engine)
    add_petition(application)
    add_petition(application, slug="closed")
    with application.app_context():
        session = get_session()
        close_petition(session, get_petition(session, "closed"))
        session.commit()
    yield application
    services(application).engine.dispose()


def walk(app: Flask) -> Iterator[Visit]:
    """Every public route, in the states a signer meets, and the error answers."""
    app.test_client_class = PublicClient
    client = app.test_client()

    def visit(name: str, status: int, response: TestResponse, no_store: bool = False) -> Visit:
        return Visit(name, response, status, no_store)

    yield visit("root", 302, client.get("/"))
    for lang in ("km", "en"):
        yield visit(f"index {lang}", 200, client.get(f"/{lang}/"))
        yield visit(f"safety {lang}", 200, client.get(f"/{lang}/safety"))
        yield visit(f"petition {lang}", 200, client.get(f"/{lang}/p/free-them"), True)
        yield visit(f"closed petition {lang}", 200, client.get(f"/{lang}/p/closed"), True)
        yield visit(f"receipt form {lang}", 200, client.get(f"/{lang}/p/free-them/receipt"), True)
    answer = sign(client, "free-them", "km", identifier="012 345 678")
    yield visit("answer", 200, answer, True)
    code = receipt_of(answer)
    yield visit("sign refused", 400, sign(client, "free-them", identifier="1"), True)
    closed = client.post(
        "/en/p/closed/sign", data={"form_token": form_token(client, "free-them"), "consent": "yes"}
    )
    yield visit("sign closed", 409, closed, True)
    receipt = "/km/p/free-them/receipt"
    yield visit("receipt waiting", 200, client.post(receipt, data={"receipt": code}), True)
    yield visit("receipt bad", 400, client.post(receipt, data={"receipt": "nonsense"}), True)
    seal_all(services(app).engine, services(app).vault)
    yield visit("receipt counted", 200, client.post(receipt, data={"receipt": code}), True)
    proof = client.post(receipt, data={"receipt": code, "format": "proof"})
    yield visit("receipt proof", 200, proof, True)
    for path in (
        "/p/free-them/checkpoint",
        "/p/free-them/checkpoints/2",
        "/p/free-them/vkey",
        "/p/free-them/proof/consistency?old=1",
        "/p/free-them/count.json",
        "/p/free-them/tile/0/000.p/2",
        "/p/free-them/tile/entries/000.p/2",
        "/healthz",
        "/petitions.json",
    ):
        yield visit(path, 200, client.get(path))
    yield visit("consistency without old", 400, client.get("/p/free-them/proof/consistency"))
    yield visit("bundle of a closed petition", 200, client.get("/p/closed/bundle.zip"))
    yield visit("bundle of an open petition", 404, client.get("/p/free-them/bundle.zip"))
    bad_link = "/km/p/free-them/confirm/not-a-link"
    yield visit("bad confirmation link", 400, client.get(bad_link), True)
    yield visit("no such checkpoint", 404, client.get("/p/free-them/checkpoints/99"))
    yield visit("no such tile", 404, client.get("/p/free-them/tile/0/000.p/99"))
    yield visit("no tile's spelling", 404, client.get("/p/free-them/tile/0/0"))
    yield visit("no such log", 404, client.get("/p/nope/checkpoint"))
    yield visit("no such petition", 404, client.get("/km/p/nope"))
    yield visit("no such language", 404, client.get("/fr/"))
    yield visit("sign by GET", 405, client.get("/en/p/free-them/sign"))
    yield visit("endorse form", 200, client.get("/km/p/free-them/endorse"), True)
    withdrawn = client.post("/km/p/free-them/withdraw", data={"receipt": code})
    yield visit("withdraw", 200, withdrawn, True)
    yield visit("withdraw a bad code", 400, client.post("/en/p/free-them/withdraw"), True)
    yield visit("updates", 200, client.get("/km/p/free-them/updates"))
    yield visit("updates feed", 200, client.get("/en/p/free-them/updates.atom"))
    yield visit("site feed", 200, client.get("/km/updates.atom"))
    yield visit("no such attachment", 404, client.get("/p/free-them/attachments/" + "0" * 64))
    yield visit("endorse without a token", 400, client.post("/en/p/free-them/endorse"), True)
    yield visit("index by DELETE", 405, client.delete("/km/"))
    big = client.post("/en/p/free-them/sign", data={"comment": "x" * 20_000})
    yield visit("too large", 413, big, True)


def test_every_route_keeps_the_promises(onion_app: Flask) -> None:
    csp = content_security_policy(STYLESHEET.read_text(encoding="utf-8"))
    endpoints: set[str | None] = set()

    def record(_sender: Flask, **_extra: Any) -> None:
        endpoints.add(request.endpoint)

    seen = 0
    with request_finished.connected_to(record, onion_app):
        visits = list(walk(onion_app))
    public = {rule.endpoint for rule in onion_app.url_map.iter_rules()}
    missing = {e for e in public if not e.startswith("admin.")} - endpoints
    assert not missing, f"add these routes to walk(): {sorted(missing)}"
    for page in visits:
        response, where = page.response, page.name
        assert response.status_code == page.status, where
        headers = response.headers
        for name, _ in security_headers(""):  # added, never set: each once
            assert len(headers.getlist(name)) == 1, (where, name)
        assert headers["Content-Security-Policy"] == csp, where
        assert headers["Referrer-Policy"] == "no-referrer", where
        assert headers["X-Content-Type-Options"] == "nosniff", where
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin", where
        assert headers["X-Frame-Options"] == "DENY", where
        assert headers["Onion-Location"].startswith(f"http://{ONION}/"), where
        assert "Server" not in headers and "Set-Cookie" not in headers, where
        if page.no_store or page.status >= 400:
            assert headers["Cache-Control"] == "no-store", where
        if response.mimetype == "text/html":
            body = response.get_data(as_text=True)
            assert "<script" not in body.lower(), where
            assert not re.search(r"<[^>]+\son\w+=", body), f"inline handler in {where}"
            assert_same_origin_only(body, HOST)
            assert len(response.data) <= PAGE_BUDGET, f"{where}: {len(response.data)} bytes"
        response.close()
        seen += 1
    assert seen >= 30


def test_onion_location(tmp_path, database_url) -> None:  # type: ignore[no-untyped-def]
    onion = "a" * 56 + ".onion"
    app = create_app(make_config(tmp_path, database_url, onion_address=onion))
    response = app.test_client().get("/healthz", headers={"Host": "petitions.example.org"})
    assert response.headers["Onion-Location"] == f"http://{onion}/healthz"
    onion_response = app.test_client().get("/healthz", headers={"Host": onion})
    assert "Onion-Location" not in onion_response.headers
    services(app).engine.dispose()


# --- the petition page ----------------------------------------------------------------------


def test_petition_page_in_khmer(client: FlaskClient, petition: OpenPetition) -> None:
    body = client.get("/km/p/free-them").get_data(as_text=True)
    assert "ដោះលែងសកម្មជន" in body
    assert 'name="identifier"' in body and 'type="tel"' in body


@pytest.mark.parametrize("lang", ["km", "en"])
def test_long_petition_fits_the_budget(app: Flask, lang: str) -> None:
    add_petition(app, slug="land", texts=LONG_TEXTS, closes_on=dt.date(2027, 3, 8))
    client = app.test_client()
    response = client.get(f"/{lang}/p/land", base_url=f"https://{HOST}")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert LONG_TEXTS[lang]["title"] in body
    assert len(response.data) <= PAGE_BUDGET, len(response.data)
    # The Markdown subset is rendered, and the outside link cannot learn where it came from.
    assert "<h2>" in body and "<ol>" in body and "<strong>" in body
    assert 'href="https://example.org/report" rel="noopener noreferrer nofollow"' in body


def test_petition_text_is_never_raw_html(app: Flask) -> None:
    texts = {"en": {"title": "<b>T</b>", "body": "<script>alert(1)</script>\n\n[x](javascript:1)"}}
    add_petition(app, slug="html", texts=texts)
    body = app.test_client().get("/en/p/html").get_data(as_text=True)
    assert "<script" not in body and "<b>T</b>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert 'href="javascript' not in body


def test_open_graph_and_share_links(client: FlaskClient, petition: OpenPetition) -> None:
    page = Page(client.get("/en/p/free-them", base_url=f"https://{HOST}").get_data(as_text=True))
    url = f"https://{HOST}/en/p/free-them"
    assert page.find("meta", property="og:url")[0]["content"] == url
    assert page.find("meta", property="og:title")[0]["content"] == "Free the activists"
    assert page.find("meta", property="og:description")[0]["content"] == "Summary"
    assert page.find("meta", property="og:type")[0]["content"] == "website"
    links = {a["href"] for a in page.find("a") if "href" in a}
    quoted = "https%3A%2F%2Fpetitions.example.org%2Fen%2Fp%2Ffree-them"
    assert f"mailto:?subject=Free%20the%20activists&body={quoted}" in links
    assert f"tg://msg_url?url={quoted}&text=Free%20the%20activists" in links
    assert url in page.visible_text


def test_progress_and_dates_in_khmer_digits(app: Flask) -> None:
    add_petition(app, slug="dated", closes_on=dt.date(2027, 3, 8))
    client = app.test_client()
    for phone in ("012 345 678", "012 345 679"):
        sign(client, "dated", identifier=phone)
    seal_all(services(app).engine, services(app).vault)
    km = Page(client.get("/km/p/dated").get_data(as_text=True)).visible_text
    assert "បានចុះហត្ថលេខា ២ នាក់ ក្នុងគោលដៅ ១០០ នាក់" in km
    assert "បិទនៅថ្ងៃទី៨ ខែមីនា ឆ្នាំ២០២៧។" in km
    en = Page(client.get("/en/p/dated").get_data(as_text=True)).visible_text
    assert "2 of 100 signatures" in en and "Closes on March 8, 2027." in en
    index = Page(client.get("/km/").get_data(as_text=True)).visible_text
    assert "ចុះហត្ថលេខា ២ នាក់ ក្នុងគោលដៅ ១០០ នាក់" in index and "ថ្ងៃទី៨ ខែមីនា ឆ្នាំ២០២៧" in index


def test_khmer_pages_show_no_latin_numbers(app: Flask) -> None:
    """Counts, goals and dates: everything but codes, fingerprints and addresses."""
    add_petition(app, slug="dated", closes_on=dt.date(2027, 3, 8))
    client = app.test_client()
    answer = sign(client, "dated", "km", identifier="012 345 678")
    seal_all(services(app).engine, services(app).vault)
    counted = client.post("/km/p/dated/receipt", data={"receipt": receipt_of(answer)})
    too_long = sign(client, "dated", "km", identifier="012 345 679", name="x" * 101)
    for response in (client.get("/km/p/dated"), client.get("/km/"), counted, too_long):
        text = Page(response.get_data(as_text=True)).visible_text
        text = re.sub(r"\b[0-9a-f]{4}( [0-9a-f]{4}){3}\b", "", text)  # checkpoint fingerprint
        text = re.sub(r"\S*localhost\S*", "", text)  # the petition's address
        assert not re.search(r"[0-9]", text), text
        assert re.search(f"[{KHMER_DIGITS}]", text)


# --- languages ------------------------------------------------------------------------------


def language_link(body: str, lang: str) -> str:
    (link,) = Page(body).find("a", hreflang=lang)
    return link["href"]


@pytest.mark.parametrize(
    "path, other",
    [
        ("/km/", "/en/"),
        ("/km/safety", "/en/safety"),
        ("/en/p/free-them", "/km/p/free-them"),
        ("/km/p/free-them/receipt", "/en/p/free-them/receipt"),
        ("/km/p/nope", "/en/p/nope"),
    ],
)
def test_language_switch_keeps_the_page(
    client: FlaskClient, petition: OpenPetition, path: str, other: str
) -> None:
    lang = other.split("/")[1]
    assert language_link(client.get(path).get_data(as_text=True), lang) == other


def test_language_switch_after_signing_goes_to_the_petition(
    client: FlaskClient, petition: OpenPetition
) -> None:
    answer = sign(client, "free-them", "km", identifier="012 345 678")
    assert language_link(answer.get_data(as_text=True), "en") == "/en/p/free-them"


def test_khmer_pages_are_translated(client: FlaskClient, petition: OpenPetition) -> None:
    from babel.messages.pofile import read_po

    with open("service/translations/km/LC_MESSAGES/messages.po", "rb") as f:
        catalog = read_po(f)
    sign_in_khmer = catalog.get("Sign this petition").string
    body = client.get("/km/p/free-them").get_data(as_text=True)
    assert sign_in_khmer and sign_in_khmer in body, "run `make translations`"
    assert "Sign this petition" in client.get("/en/p/free-them").get_data(as_text=True)
    assert "Sign this petition" not in body


# --- safety ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url, headers, warning",
    [
        (f"https://{HOST}", {}, None),
        ("http://localhost", {}, None),
        ("http://127.0.0.1:8000", {}, None),
        (f"http://{ONION}", {}, None),
        (f"http://{HOST}", {}, "not encrypted"),
        (f"https://{HOST}", {"X-Tor2web": "1"}, "tor2web proxy"),
        (f"http://{ONION}", {"X-Tor2web": "1"}, "tor2web proxy"),
    ],
)
def test_transport_warning(
    client: FlaskClient,
    petition: OpenPetition,
    base_url: str,
    headers: dict[str, str],
    warning: str | None,
) -> None:
    for path in ("/en/", "/en/p/free-them", "/en/safety", "/en/p/nope"):
        body = client.get(path, base_url=base_url, headers=headers).get_data(as_text=True)
        if warning is None:
            assert 'class="warn"' not in body
        else:
            assert 'class="warn"' in body and warning in body, path


def test_safety_page_shows_the_onion_address(tmp_path: Path, database_url: str) -> None:
    app = create_app(make_config(tmp_path, database_url, onion_address=ONION))
    body = app.test_client().get("/en/safety").get_data(as_text=True)
    assert f"<code>{ONION}</code>" in body and "Tor Browser" in body and "Safest" in body
    services(app).engine.dispose()


def test_safety_page_without_onion_address(client: FlaskClient) -> None:
    body = client.get("/en/safety").get_data(as_text=True)
    assert ".onion" not in body and "receipt code" in body


# --- forms and receipts ---------------------------------------------------------------------


def assert_every_field_labelled(body: str) -> None:
    page = Page(body)
    labelled = {attrs.get("for") for _, attrs in page.tags if _ == "label"}
    for tag, attrs in page.tags:
        if tag in ("input", "textarea", "select") and attrs.get("type") != "hidden":
            assert attrs.get("id") in labelled or attrs.get("aria-label"), attrs


@pytest.mark.parametrize("path", ["/km/p/free-them", "/en/p/free-them/receipt"])
def test_every_field_is_labelled(client: FlaskClient, petition: OpenPetition, path: str) -> None:
    assert_every_field_labelled(client.get(path).get_data(as_text=True))


def test_receipt_error_is_linked_to_the_field(client: FlaskClient, petition: OpenPetition) -> None:
    response = client.post("/en/p/free-them/receipt", data={"receipt": "nonsense"})
    page = Page(response.get_data(as_text=True))
    assert response.status_code == 400
    assert page.find("a", href="#f-receipt")
    (field,) = page.find("input", id="f-receipt")
    assert field["aria-invalid"] == "true"
    assert page.find("p", id=field["aria-describedby"])
    assert_every_field_labelled(response.get_data(as_text=True))


def test_sign_errors_are_linked_to_their_fields(
    client: FlaskClient, petition: OpenPetition
) -> None:
    response = sign(client, "free-them", identifier="", consent="", name="x" * 101)
    page = Page(response.get_data(as_text=True))
    assert response.status_code == 400
    targets = [a["href"][1:] for a in page.find("a") if a.get("href", "").startswith("#f-")]
    assert {"f-identifier", "f-consent", "f-name"} <= set(targets), targets
    for target in targets:
        (field,) = [attrs for _, attrs in page.tags if attrs.get("id") == target]
        assert field["aria-invalid"] == "true"
        assert page.find("p", id=field["aria-describedby"])
    (form,) = page.find("form", method="post")
    assert form["action"].endswith("/sign#sign")  # the answer opens at the errors


def test_answer_page_shows_the_receipt_for_print(
    client: FlaskClient, petition: OpenPetition
) -> None:
    client.application.test_client_class = PublicClient
    answer = sign(client.application.test_client(), "free-them", identifier="012 345 678")
    body = answer.get_data(as_text=True)
    assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{1,4}){6}", receipt_of(answer))
    assert f"https://{HOST}/en/p/free-them/receipt" in body  # printed with the code
    assert "@media print" in body


def test_count_json(client: FlaskClient, petition: OpenPetition) -> None:
    sign(client, petition.slug, identifier="012345678")
    data = client.get("/p/free-them/count.json").get_json()
    assert data["goal"] == 100
    assert data["count"] >= 0


def test_healthz(client: FlaskClient) -> None:
    assert client.get("/healthz").data == b"ok\n"
