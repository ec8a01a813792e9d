"""The admin in Khmer: every page speaks Khmer once the organiser chooses it (or their browser
prefers it), with Khmer digits and dates; the switch keeps the page; no English is left.

The check for English is strict: after taking out what is data, not interface (names, slugs,
addresses, keys, code, the petition's own texts), no two English words may stand together.
"""

from __future__ import annotations

import html
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from samleng.crypto.cosignature import CosignatureSigner
from samleng.service.admin.views import LANGUAGE_COOKIE
from samleng.service.petitions import endorsements
from samleng.service.petitions import organisations as orgs
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.errors import OrganisationError
from samleng.service.platform.models import get_petition
from samleng.service.tlog import witnesses
from tests.conftest import add_petition, seal, sign
from tests.service.test_admin import (
    admin_client,
    cheap_passwords,  # noqa: F401  (the fixture: cheap password hashes here too)
    csrf_of,
    draft_form,
    login,
    make_account,
)
from tests.service.test_custody import pasted

# What is data on the pages, and may be in Latin letters: the petition's texts (its English
# title and body are data), technical names that are the same in every language.
ALLOWED = (
    r"https?://\S+",
    r"petition\.json",
    r"delivery\.pdf",
    r"docs/[\w./-]+",
    r"samleng-audit keygen",
    r"SAMLENG_\w+",
    r"A split view",
    r"add-checkpoint",
    r"YYYY-MM-DD",
    r"Markdown",
    r"English",
)
ENGLISH_RUN = re.compile(r"\b[A-Za-z]{2,}(?:[ ,;:'’-]+[A-Za-z]{2,})+\b")


def visible_text(page: str, data: list[str]) -> str:
    """The page's text as read, without code, scripts, styles, attributes or the data given."""
    page = re.sub(r"<(style|code|textarea)\b.*?</\1>", " ", page, flags=re.S)
    page = re.sub(r'<[^>]*\blang="en"[^>]*>.*?</(span|a|div|h1|article)>', " ", page, flags=re.S)
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    for value in sorted(data, key=len, reverse=True):
        text = text.replace(value, " ")
    for pattern in ALLOWED:
        text = re.sub(pattern, " ", text)
    return text


def english_in(page: str, data: list[str]) -> list[str]:
    return ENGLISH_RUN.findall(visible_text(page, data))


@pytest.fixture
def khmer_admin(app: Flask) -> FlaskClient:
    """An administrator's browser that switched the admin to Khmer."""
    make_account(app, "sokha", "admin")
    client = admin_client(app)
    login(client, "sokha")
    answer = client.get("/admin/language/km?next=/admin/accounts")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/admin/accounts")
    return client


def a_full_petition(app: Flask, client: FlaskClient) -> None:
    """An open petition with signatures, a witness, an organiser and endorsements."""
    with app.app_context():
        session = get_session()
        river = orgs.create_organisation(session, "river", name_km="អ្នកការពារទន្លេ", name_en="River")
        session.commit()
    add_petition(app, slug="land", status="draft")
    with app.app_context():
        session = get_session()
        petition = get_petition(session, "land")
        orgs.set_organisers(session, petition, [river])
        witnesses.add_witness(
            session, petition, name="w1", url="https://witness.example",
            vkey=CosignatureSigner(name="witness.example", seed=bytes(32)).verifier.vkey,
        )  # fmt: skip
        session.commit()
    assert client.post("/admin/p/land/open", data={"csrf": csrf_of(client)}).status_code == 302
    public = app.test_client()
    for i in range(3):
        assert sign(public, "land", identifier=f"012 345 67{i}").status_code == 200
    with app.app_context():
        session = get_session()
        petition = get_petition(session, "land")
        fields = endorsements.check_fields("សមាគម", "Association", "")
        endorsements.add_endorsement(session, petition, fields)
        endorsements.request_endorsement(session, petition, fields, "012 000 000")
        session.commit()
    seal(app)


DATA = [
    "sokha",
    "land",
    "river",
    "River",
    "Association",
    "w1",
    "Free the activists",
    "Body text",
    "Second paragraph",
    "Summary",
    "Ministry of Justice",
    "admin",
    "dara",
    "UTC",
    "zip",
    "KH",
    "http(s)",
    "onion",
    ".pub",
    "DIR",
    "FILE",
    "samleng export-details",
    "samleng export",
    "login",
    "open",
    "create",
    "organiser-add",
    "witness-add",
    "endorsement-add",
    "create-organisation",
    "(none)",
]


def test_every_admin_page_speaks_khmer(app: Flask, khmer_admin: FlaskClient) -> None:
    a_full_petition(app, khmer_admin)
    make_account(app, "dara", "organiser")
    pages = [
        "/admin/",
        "/admin/new",
        "/admin/p/land",
        "/admin/p/land/preview/km",
        "/admin/p/land/timeline",
        "/admin/accounts",
        "/admin/organisations",
        "/admin/audit",
        "/admin/me",
    ]
    add_petition(app, slug="draft", status="draft")
    pages.append("/admin/p/draft/edit")
    for path in pages:
        answer = khmer_admin.get(path)
        assert answer.status_code == 200, path
        page = answer.get_data(as_text=True)
        assert '<html lang="km">' in page, path
        assert english_in(page, DATA) == [], (path, english_in(page, DATA))
    dashboard = khmer_admin.get("/admin/p/land").get_data(as_text=True)
    # Khmer digits and dates: the count, the goal, the day of the signatures.
    assert "បានរាប់ហត្ថលេខា ៣។" in dashboard and "គោលដៅ ១០០" in dashboard
    assert re.search(r"ថ្ងៃទី[០-៩]+ ខែ", dashboard)
    # The same pages in English say the same in English.
    khmer_admin.get("/admin/language/en?next=/admin/")
    english = khmer_admin.get("/admin/p/land").get_data(as_text=True)
    assert '<html lang="en">' in english and "3 signatures counted." in english


def test_errors_reach_the_organiser_in_khmer(app: Flask, khmer_admin: FlaskClient) -> None:
    form = draft_form(csrf_of(khmer_admin), "Bad Slug", goal="²", closes_on="soon")
    answer = khmer_admin.post("/admin/new", data=form)
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    for khmer in (
        "សូមកែប្រអប់ដែលមានសម្គាល់ខាងក្រោម។",
        "ប្រើអក្សរតូច លេខ និងសញ្ញា - នៅខាងក្នុង",
        "គោលដៅជាចំនួនហត្ថលេខាគត់",
        "សូមសរសេរកាលបរិច្ឆេទជា YYYY-MM-DD។",
    ):
        assert khmer in page, khmer
    refused = khmer_admin.post(
        "/admin/me/password",
        data={"csrf": csrf_of(khmer_admin), "current": "x", "new": "a" * 12, "repeat": "b" * 12},
    )
    assert "ពាក្យសម្ងាត់ថ្មីទាំងពីរមិនដូចគ្នាទេ។" in refused.get_data(as_text=True)


def test_refusals_of_the_service_layer_are_in_khmer(app: Flask, khmer_admin: FlaskClient) -> None:
    """Refusals raised below the views (lifecycle, witnesses, organisations, accounts) are
    shown in Khmer, their values put in; the command line keeps saying them in English."""
    add_petition(app, slug="land", status="draft")
    csrf = csrf_of(khmer_admin)
    for path, form, khmer in (
        ("/admin/p/land/close", {}, "ញត្តិ 'land' ស្ថិតក្នុងស្ថានភាព draft"),
        ("/admin/p/land/witnesses/quorum", {"quorum": "99"}, "ចំនួនអប្បបរមា 99៖ ត្រូវនៅចន្លោះ"),
        ("/admin/accounts", {"name": "Bad Name", "role": "organiser", "password": "x" * 16},
         "ឈ្មោះគណនីមានពី ១ ដល់ ៦៤ តួ"),
        ("/admin/organisations", {"handle": "-x", "name_km": "ក", "name_en": "X"},
         "ឈ្មោះសម្គាល់មានពី ១ ដល់ ៦៤ តួ"),
        # The record's own rules, which the crypto library words in English only.
        ("/admin/organisations", {"handle": "ok", "name_km": "ក", "name_en": "bell\x07"},
         "ឈ្មោះអង្គការជាភាសាអង់គ្លេសមានតួអក្សរដែលមិនអាចបង្ហាញបាន"),
        ("/admin/new", draft_form(csrf, "river", details_key=None, details_threshold="4",
                                  details_key_text=pasted(3)[0]),
         "ចំនួនអប្បបរមាត្រូវនៅចន្លោះ ១ និងចំនួនកូនសោ (3) មិនមែន 4 ទេ"),
        ("/admin/p/land/witnesses/add",
         {"name": "w", "url": "ftp://w.example", "vkey": "w+00000000+AAAA"},
         "URL របស់អង្គការសាក្សី 'ftp://w.example' មិនមែនជា URL http(s) ដែលមានម៉ាស៊ីនមេទេ"),
        ("/admin/p/land/witnesses/add",
         {"name": "w", "url": "https://w.example", "vkey": "w+1234ABCD+AAAA"},
         "លេខសម្គាល់កូនសោ (key ID) នៅបន្ទាប់ពីឈ្មោះ ត្រូវមាន ៨ តួ"),
        ("/admin/p/land/endorsements/add",
         {"name_km": "ក", "name_en": "X", "website": "javascript:alert(1)"},
         "គេហទំព័រត្រូវតែជាអាសយដ្ឋានដែលចាប់ផ្ដើមដោយ https:// ឬ http://"),
    ):  # fmt: skip
        answer = khmer_admin.post(path, data={"csrf": csrf, **form})
        assert answer.status_code in (400, 409), (path, answer.status_code)
        page = html.unescape(answer.get_data(as_text=True))
        assert khmer in page, (path, re.findall(r'class="errors"[^>]*>([^<]*)<', page))
    with app.app_context():
        session = get_session()
        try:
            witnesses.set_quorum(session, get_petition(session, "land"), 99)
        except witnesses.WitnessSetupError as exc:
            assert str(exc) == "quorum 99: between 1 and 16"
        else:
            raise AssertionError("the quorum was taken")
        try:
            orgs.create_organisation(session, "ok", name_km="ក", name_en="X", website="ftp://x")
        except OrganisationError as exc:
            assert "must be an address starting with https://" in str(exc)
        else:
            raise AssertionError("the website was taken")


def test_the_switch_keeps_the_page_and_the_browser_decides_first(app: Flask) -> None:
    add_petition(app, slug="land", status="draft")
    make_account(app, "sokha", "admin")
    client = admin_client(app)
    # Before any choice: the browser's preferred language.
    login_page = client.get("/admin/login", headers={"Accept-Language": "km-KH,km;q=0.9,en;q=0.5"})
    assert '<html lang="km">' in login_page.get_data(as_text=True)
    assert '<html lang="en">' in client.get("/admin/login").get_data(as_text=True)
    login(client, "sokha")
    page = client.get("/admin/p/land?x=1").get_data(as_text=True)
    link = re.search(r'href="(/admin/language/km[^"]*)"', page)
    assert link, page
    answer = client.get(html.unescape(link.group(1)))
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/p/land?x=1"
    cookie = next(h for h in answer.headers.getlist("Set-Cookie") if h.startswith(LANGUAGE_COOKIE))
    assert "Path=/admin/" in cookie and "Secure" in cookie and "HttpOnly" in cookie
    assert '<html lang="km">' in client.get("/admin/p/land?x=1").get_data(as_text=True)
    # Only admin pages are gone back to; anything else goes to the front page.
    for target in ("https://evil.example/", "//evil.example/admin/", "/en/p/land", "/admin\\@x"):
        away = client.get("/admin/language/en", query_string={"next": target})
        assert away.headers["Location"] == "/admin/", target
    assert client.get("/admin/language/fr").status_code == 404
    # The public pages never get the admin's cookie, and keep their own language.
    assert '<html lang="en">' in app.test_client().get("/en/").get_data(as_text=True)
