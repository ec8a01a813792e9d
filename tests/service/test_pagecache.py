"""The kept petition page: the same page as a fresh render, a valid form token every time,
changes visible within the configured time, one page per address and language, bounded."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from samleng.service.app import create_app
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import get_petition
from samleng.service.signing.formtoken import (
    NGINX_FORM_MARK,
    NGINX_FORM_REQUEST,
    NGINX_FORM_SLOT,
    check_form_token,
)
from samleng.service.web.pagecache import PageCache
from tests.conftest import add_petition, form_token, make_config, receipt_of, sign
from tests.service.test_admin import PASSWORD, admin_client, csrf_of, login, make_account

TOKEN = re.compile(r'name="form_token" value="([^"]+)"')


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counting(pages: list[str]) -> Callable[[str], str]:
    """A render function that records its calls and puts the token in a form."""

    def render(token: str) -> str:
        pages.append(token)
        return f'<p>page {len(pages)}</p><input value="{token}"><p>end</p>'

    return render


def test_a_kept_page_gets_each_requests_token() -> None:
    clock, rendered = Clock(), []
    cache = PageCache(1.0, clock=clock)
    render = counting(rendered)
    first = cache.page("k", render, "token-a")
    second = cache.page("k", render, "token-b")
    assert first == '<p>page 1</p><input value="token-a"><p>end</p>'
    assert second == '<p>page 1</p><input value="token-b"><p>end</p>'
    assert len(rendered) == 1 and rendered[0] not in (first + second)  # the slot never shows


def test_a_page_is_rendered_again_when_its_time_is_up() -> None:
    clock, rendered = Clock(), []
    cache = PageCache(1.0, clock=clock)
    render = counting(rendered)
    cache.page("k", render, "t")
    clock.now += 0.99
    assert "page 1" in cache.page("k", render, "t")
    clock.now += 0.02
    assert "page 2" in cache.page("k", render, "t")


def test_zero_seconds_renders_every_time_with_the_real_token() -> None:
    rendered: list[str] = []
    cache = PageCache(0)
    render = counting(rendered)
    assert "page 1" in cache.page("k", render, "t1")
    second = cache.page("k", render, "t2")
    assert "page 2" in second and 'value="t2"' in second


def test_a_page_without_a_form_is_kept_as_it_is() -> None:
    cache = PageCache(1.0, clock=Clock())
    calls = []

    def closed(_token: str) -> str:
        calls.append(1)
        return "<p>closed</p>"

    assert cache.page("k", closed, "t") == "<p>closed</p>"
    assert cache.page("k", closed, "t") == "<p>closed</p>"
    assert len(calls) == 1


def test_a_failed_render_keeps_nothing() -> None:
    cache = PageCache(1.0, clock=Clock())

    def missing(_token: str) -> str:
        raise LookupError("no such petition")

    with pytest.raises(LookupError):
        cache.page("k", missing, "t")
    rendered: list[str] = []
    assert "page 1" in cache.page("k", counting(rendered), "t")


def test_the_number_of_kept_pages_is_bounded() -> None:
    rendered: list[str] = []
    cache = PageCache(60, max_pages=3, clock=Clock())
    render = counting(rendered)
    for host in range(100):
        cache.page(("petition", f"host{host}.example"), render, "t")
    assert len(cache._pages) <= 3
    assert len(rendered) == 100


def test_the_slot_in_a_petition_text_does_not_misplace_the_token() -> None:
    # An organiser or a forged Host header could put any text in the page: if the slot
    # appeared twice, the page is not kept and every slot gets the token (never a slot).
    cache = PageCache(1.0, clock=Clock())
    page = cache.page("k", lambda slot: f"{slot} and {slot}", "t")
    assert page == "t and t"


def test_while_one_thread_renders_the_others_serve_the_old_page() -> None:
    clock = Clock()
    cache = PageCache(1.0, clock=clock)
    cache.page("k", lambda slot: f"old {slot}", "t")
    clock.now += 2
    started, release = threading.Event(), threading.Event()

    def slow(slot: str) -> str:
        started.set()
        release.wait(10)
        return f"new {slot}"

    renderer = threading.Thread(target=cache.page, args=("k", slow, "t"))
    renderer.start()
    assert started.wait(10)
    assert cache.page("k", lambda slot: f"other {slot}", "u") == "old u"
    release.set()
    renderer.join(10)
    assert cache.page("k", lambda slot: f"other {slot}", "v") == "new v"


# --- in the app ---------------------------------------------------------------------------


@pytest.fixture
def kept(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    app = create_app(make_config(tmp_path, database_url, page_cache_seconds=30))
    upgrade(services(app).engine)
    add_petition(app)
    yield app
    services(app).engine.dispose()


def without_token(html: str) -> str:
    return TOKEN.sub("", html)


def test_the_kept_page_equals_a_fresh_one(kept: Flask, tmp_path: Path, database_url: str) -> None:
    client = kept.test_client()
    first = client.get("/en/p/free-them")
    second = client.get("/en/p/free-them")
    assert first.status_code == second.status_code == 200
    assert second.headers["Cache-Control"] == "no-store"
    services(kept).pages.seconds = 0
    fresh = client.get("/en/p/free-them")
    assert without_token(second.get_data(as_text=True)) == without_token(
        fresh.get_data(as_text=True)
    )


def test_every_kept_page_carries_a_valid_form_token(kept: Flask) -> None:
    client = kept.test_client()
    client.get("/en/p/free-them")
    time.sleep(1.1)  # tokens carry their second
    page = client.get("/en/p/free-them").get_data(as_text=True)
    match = TOKEN.search(page)
    assert match
    check_form_token(
        services(kept).form_tokens.key, "free-them", match.group(1), min_seconds=0,
        max_age=60,
    )  # fmt: skip
    # Each request gets its own token (each works once), the kept page notwithstanding.
    assert match.group(1) != form_token(client, "free-them")
    assert sign(client, "free-them", identifier="012 345 678").status_code == 200


def test_each_language_and_address_has_its_own_page(kept: Flask) -> None:
    client = kept.test_client()
    english = client.get("/en/p/free-them").get_data(as_text=True)
    khmer = client.get("/km/p/free-them").get_data(as_text=True)
    assert '<html lang="en">' in english and '<html lang="km">' in khmer
    onion = client.get("/en/p/free-them", base_url="http://example.onion").get_data(as_text=True)
    assert "http://example.onion/en/p/free-them" in onion
    assert "http://example.onion" not in client.get("/en/p/free-them").get_data(as_text=True)


def test_the_transport_warning_is_not_shared(kept: Flask) -> None:
    client = kept.test_client()
    proxied = client.get("/en/p/free-them", headers={"X-Tor2web": "1"}).get_data(as_text=True)
    assert "tor2web" in proxied
    assert "tor2web" not in client.get("/en/p/free-them").get_data(as_text=True)


def test_a_change_elsewhere_shows_when_the_time_is_up(kept: Flask) -> None:
    services(kept).pages.seconds = 0.5
    client = kept.test_client()
    assert "Sign this petition" in client.get("/en/p/free-them").get_data(as_text=True)
    with kept.app_context():  # as another worker or `samleng close` would
        session = get_session()
        get_petition(session, "free-them").status = "closed"
        session.commit()
    time.sleep(0.6)
    page = client.get("/en/p/free-them").get_data(as_text=True)
    assert "Sign this petition" not in page and "This petition is closed." in page


def test_an_admin_change_shows_at_once_in_this_worker(kept: Flask) -> None:
    client: FlaskClient = kept.test_client()
    assert "Sign this petition" in client.get("/en/p/free-them").get_data(as_text=True)
    make_account(kept, "ada")
    admin = admin_client(kept)
    login(admin, "ada", PASSWORD)
    answer = admin.post("/admin/p/free-them/close", data={"csrf": csrf_of(admin)})
    assert answer.status_code == 302
    assert "This petition is closed." in client.get("/en/p/free-them").get_data(as_text=True)


def test_an_unknown_petition_is_not_kept(kept: Flask) -> None:
    client = kept.test_client()
    assert client.get("/en/p/nothing-here").status_code == 404
    add_petition(kept, slug="nothing-here")
    assert client.get("/en/p/nothing-here").status_code == 200


def test_the_thank_you_page_is_kept_without_any_receipt_code(kept: Flask) -> None:
    client = kept.test_client()
    first = sign(client, "free-them", identifier="012 345 678")
    second = sign(client, "free-them", identifier="012 345 679")
    codes = [receipt_of(first), receipt_of(second)]
    assert codes[0] != codes[1]
    assert codes[0] not in second.get_data(as_text=True)
    assert without_receipt(first) == without_receipt(second)
    kept_pages = repr(services(kept).pages._pages)
    assert "Thank you for signing" in kept_pages
    for code in codes:
        assert code not in kept_pages


def without_receipt(response: TestResponse) -> str:
    return re.sub(r'<p class="receipt">[^<]*</p>', "", response.get_data(as_text=True))


def test_nginx_gets_the_page_with_a_slot_for_the_token(kept: Flask) -> None:
    """Asked by nginx's petition-page location, the app leaves the token's place to nginx
    and marks the page as such; asked otherwise, it fills in a token and marks nothing."""
    client = kept.test_client()
    for seconds in (30, 0):  # kept by the worker, and rendered each time
        services(kept).pages.seconds = seconds
        slotted = client.get("/en/p/free-them", headers={NGINX_FORM_REQUEST: "nginx"})
        assert slotted.status_code == 200
        assert f'name="form_token" value="{NGINX_FORM_SLOT}"' in slotted.get_data(as_text=True)
        assert slotted.headers[NGINX_FORM_MARK[0]] == NGINX_FORM_MARK[1]
        assert slotted.headers["Cache-Control"] == "no-store"
        for headers in ({}, {NGINX_FORM_REQUEST: "yes"}):
            page = client.get("/en/p/free-them", headers=headers)
            assert NGINX_FORM_MARK[0] not in page.headers
            assert NGINX_FORM_SLOT not in page.get_data(as_text=True)
            assert TOKEN.search(page.get_data(as_text=True))
    # A form sent with the slot unfilled (nginx without set-misc) is refused, not a 5xx.
    answer = client.post(
        "/en/p/free-them/sign",
        data={"form_token": NGINX_FORM_SLOT, "identifier": "012 345 679", "consent": "yes"},
    )
    assert answer.status_code == 400


def test_a_petition_text_cannot_make_the_slot(kept: Flask) -> None:
    """The slot is an entity reference: petition text that spells it comes out escaped,
    so nginx's sub_filter finds only the form's."""
    with kept.app_context():
        petition = get_petition(get_session(), "free-them")
        assert petition is not None
        petition.texts = {
            lang: {**text, "summary": f"see {NGINX_FORM_SLOT} here"}
            for lang, text in petition.texts.items()
        }
        get_session().commit()
    services(kept).pages.clear()
    page = kept.test_client().get("/en/p/free-them", headers={NGINX_FORM_REQUEST: "nginx"})
    assert page.get_data(as_text=True).count(NGINX_FORM_SLOT) == 1
