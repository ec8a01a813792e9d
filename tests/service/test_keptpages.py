"""The kept petition page answered before Flask (service/web/keptpages.py): the same answer as
the app's own but for a fresh form token, only for requests whose answer nothing else can
change, with the page limits counted, and never a kept 404, cookie or refusal."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, request_started
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from samleng.service.app import create_app
from samleng.service.petitions.lifecycle import close_petition
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import get_petition
from samleng.service.signing.formtoken import NGINX_FORM_REQUEST, NGINX_FORM_SLOT
from samleng.service.web.security import ADMIN_LISTENER_HEADER, TOR2WEB_HEADER
from tests.conftest import add_petition, make_config

TOKEN = re.compile(r'name="form_token" value="([^"]+)"')
ONION = "samlengxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstu.onion"
PAGE = "/en/p/free-them"


def build(tmp_path: Path, **overrides: object) -> Flask:
    values: dict[str, object] = {"page_cache_seconds": 30, "onion_address": ONION}
    values.update(overrides)
    app = create_app(make_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}", **values))
    upgrade(services(app).engine)
    add_petition(app)
    return app


@pytest.fixture
def kept(tmp_path: Path) -> Iterator[Flask]:
    app = build(tmp_path)
    yield app
    services(app).engine.dispose()


class FlaskCalls:
    """How many requests reached Flask (a kept answer does not)."""

    def __init__(self, app: Flask) -> None:
        self.count = 0
        request_started.connect(self._started, app)

    def _started(self, _sender: Flask, **_extra: object) -> None:
        self.count += 1


def token_of(answer: TestResponse) -> str:
    match = TOKEN.search(answer.get_data(as_text=True))
    assert match, "the page has no form token"
    return match.group(1)


def same_but_token(first: TestResponse, second: TestResponse) -> None:
    assert first.status == second.status
    assert sorted(first.headers.items()) == sorted(second.headers.items())
    assert TOKEN.sub("", first.get_data(as_text=True)) == TOKEN.sub(
        "", second.get_data(as_text=True)
    )


VARIANTS: list[tuple[str, dict[str, object]]] = [
    ("english", {}),
    ("khmer", {"path": "/km/p/free-them"}),
    ("https", {"base_url": "https://petitions.example.org"}),
    ("another host", {"base_url": "http://mirror.example.net"}),
    ("onion", {"base_url": f"http://{ONION}"}),
    ("tor2web", {"headers": {TOR2WEB_HEADER: "1"}}),
    ("for nginx", {"headers": {NGINX_FORM_REQUEST: "nginx"}}),
    ("not quite nginx", {"headers": {NGINX_FORM_REQUEST: "yes"}}),
    ("a trailing slash", {"path": "/en/p/free-them/"}),
]


def get(client: FlaskClient, variant: dict[str, object]) -> TestResponse:
    options = {k: v for k, v in variant.items() if k != "path"}
    return client.get(str(variant.get("path", PAGE)), **options)  # type: ignore[arg-type]


def test_a_kept_answer_is_the_apps_own_with_a_token_of_its_own(kept: Flask) -> None:
    """Every variant of the request is kept apart, and answered as the app answered it."""
    client, calls = kept.test_client(), FlaskCalls(kept)
    firsts = {name: get(client, variant) for name, variant in VARIANTS}
    assert calls.count == len(VARIANTS)
    for name, variant in VARIANTS:
        again = get(client, variant)
        same_but_token(firsts[name], again)
        if firsts[name].status_code == 200 and "nginx" not in name:
            assert token_of(again) != token_of(firsts[name]), name
    # Only a page is kept (a trailing slash gets the app's 404 each time).
    assert [n for n, _ in VARIANTS if firsts[n].status_code != 200] == ["a trailing slash"]
    assert calls.count == len(VARIANTS) + 1
    # What the variants change shows in their answers.
    assert firsts["for nginx"].get_data(as_text=True).count(NGINX_FORM_SLOT) == 1
    assert NGINX_FORM_SLOT not in firsts["not quite nginx"].get_data(as_text=True)
    assert "tor2web" in firsts["tor2web"].get_data(as_text=True)
    assert "Onion-Location" not in firsts["onion"].headers
    assert firsts["english"].headers["Onion-Location"] == f"http://{ONION}{PAGE}"
    assert '<html lang="km">' in firsts["khmer"].get_data(as_text=True)


def test_a_kept_token_signs_once(kept: Flask) -> None:
    client, calls = kept.test_client(), FlaskCalls(kept)
    client.get(PAGE)
    tokens = [token_of(client.get(PAGE)) for _ in range(3)]
    assert calls.count == 1 and len(set(tokens)) == 3
    form = {"identifier": "012 345 678", "consent": "yes", "website": ""}
    signed = client.post(f"{PAGE}/sign", data={**form, "form_token": tokens[1]})
    assert signed.status_code == 200
    again = client.post(f"{PAGE}/sign", data={**form, "form_token": tokens[1]})
    assert again.status_code == 400


@pytest.mark.parametrize(
    "request_options",
    [
        {"query_string": "x=1"},
        {"headers": {"Cookie": "session=abc"}},
        {"headers": {"Authorization": "Basic eDp5"}},
        {"headers": {ADMIN_LISTENER_HEADER: "secret"}},
        {"method": "HEAD"},
    ],
    ids=["query", "cookie", "authorization", "admin listener", "head"],
)
def test_what_else_could_change_the_answer_goes_to_flask(
    kept: Flask, request_options: dict[str, object]
) -> None:
    client, calls = kept.test_client(use_cookies=False), FlaskCalls(kept)
    client.get(PAGE)  # kept
    for _ in range(2):
        client.open(PAGE, **request_options)  # type: ignore[arg-type]
    assert calls.count == 3


def test_nothing_but_a_page_is_kept(kept: Flask) -> None:
    client, calls = kept.test_client(), FlaskCalls(kept)
    for path in ("/en/p/no-such-petition", "/en/", "/en/safety", "/p/free-them/count.json"):
        first, second = client.get(path), client.get(path)
        assert first.status_code == second.status_code, path
    assert calls.count == 8


def test_an_admin_change_forgets_the_kept_answers(kept: Flask) -> None:
    client, calls = kept.test_client(), FlaskCalls(kept)
    client.get(PAGE)
    client.get(PAGE)
    services(kept).pages.clear()  # what the admin views do after a change
    client.get(PAGE)
    assert calls.count == 2


def test_zero_seconds_keeps_nothing(tmp_path: Path) -> None:
    app = build(tmp_path, page_cache_seconds=0)
    client, calls = app.test_client(), FlaskCalls(app)
    for _ in range(3):
        assert client.get(PAGE).status_code == 200
    assert calls.count == 3
    services(app).engine.dispose()


def test_kept_answers_count_against_the_page_limits(tmp_path: Path) -> None:
    app = build(tmp_path, ratelimit_pages="3 per minute")
    flooder = app.test_client()
    flooder.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    calls = FlaskCalls(app)
    answers = [flooder.get(PAGE) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    # The refusal is the app's own: translated, with its headers, never kept.
    assert "Too many requests" in refused.get_data(as_text=True)
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert refused.headers["Cache-Control"] == "no-store"
    assert "Content-Security-Policy" in refused.headers
    # Counted per client and route, as flask-limiter counts the other pages: both languages.
    khmer = flooder.get("/km/p/free-them")
    assert khmer.status_code == 429 and "Content-Security-Policy" in khmer.headers
    assert calls.count == 3  # the first, the refusal, the Khmer page
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.8"
    assert other.get(PAGE).status_code == 200  # from the kept answer
    assert calls.count == 3
    services(app).engine.dispose()


def test_a_closed_petition_is_kept_without_a_form(kept: Flask) -> None:
    client, calls = kept.test_client(), FlaskCalls(kept)
    with kept.app_context():
        session = get_session()
        close_petition(session, get_petition(session, "free-them"))
        session.commit()
    first, second = client.get(PAGE), client.get(PAGE)
    assert first.get_data() == second.get_data() and "form_token" not in first.get_data(
        as_text=True
    )
    assert calls.count == 1
