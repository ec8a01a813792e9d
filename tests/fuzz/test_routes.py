"""Fuzzing every route of the app with every method: never a 5xx, never an exception.

Hypothesis picks a rule from the app's own url_map (the public pages, the log's endpoints and
the admin, so a route added later is fuzzed without a change here), fills its path segments
with real values or hostile ones (control characters, a percent-encoded line break, overlong
numbers, digits of other scripts, long or empty text), and sends it with any method, hostile
headers (Host, forwarding, circuit, language, cookies, conditional and range requests), a
hostile query string and a hostile body, from an anonymous visitor or a logged-in organiser
whose requests carry a valid CSRF token. The app runs as in production as far as a test
client can: an onion address (Onion-Location on every clearnet answer), a trusted proxy,
circuit proxies, real mail (aiosmtpd), petitions in every state, and one petition whose
phone region was stored before regions were checked.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import update
from werkzeug.routing import Rule

from samleng.crypto.tokens import Argon2Params
from samleng.service.admin import passwords
from samleng.service.admin.accounts import create_account
from samleng.service.app import create_app
from samleng.service.petitions.lifecycle import close_petition, forget_petition
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import Petition, get_petition
from samleng.service.signing.formtoken import issue_form_token
from samleng.service.tlog.store import seal_all
from tests.components import free_port, require
from tests.conftest import add_petition, make_config, sign
from tests.fuzz.mutations import examples

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink
except ImportError:  # pragma: no cover - reported by require() below
    Controller = Sink = None

ONION = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion"
PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SLUGS = ["fz-open", "fz-mail", "fz-closed", "fz-forgotten", "fz-draft", "fz-region"]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"]
FUZZ = settings(
    max_examples=examples(400),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Path segments that have broken routes before, or could: control characters and a line
# break (raw, as a server decodes %0a, and still encoded), numbers beyond 64 bits, digits
# that str.isdigit() accepts and int() refuses (or takes), other scripts, odd lengths.
hostile_segment = st.one_of(
    st.sampled_from(
        [
            "",
            "\n",
            "a\nb",
            "\r\n",
            "%0a",
            "%0A%0D",
            "\x00",
            "\x7f",
            "\x1b[0m",
            "99999999999999999999999",
            "-1",
            "0",
            "9" * 400,
            "²",
            "٣",
            "១២",
            "１２",
            "1_000",
            " 7",
            "1e3",
            "..",
            "%",
            "%zz",
            "ΚΗ",
            "km",
            "en",
            "x" * 3000,
            "\ud800",
            "\ufeff",
        ]
    ),
    st.text(max_size=40),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=8),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
)
hostile_value = st.one_of(
    hostile_segment, st.sampled_from(["yes", "page", "proof", "012 345 678", "a@example.org"])
)
FIELDS = [
    "identifier", "name", "locality", "comment", "contact", "consent", "website", "form_token",
    "receipt", "format", "csrf", "password", "code", "slug", "goal", "region", "closes_on",
    "identifier_mode", "verification_mode", "details_key_text", "role", "account", "new_password",
    "active", "en_title", "en_body", "km_title", "km_body",
]  # fmt: skip
field_maps = st.dictionaries(
    st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)), hostile_value, max_size=8
)
header_values = st.one_of(
    hostile_segment,
    st.sampled_from(
        [
            "127.0.0.1",
            "::1",
            "2001:db8::1, 198.51.100.7",
            "https",
            "ftp",
            "bytes=0-10",
            "bytes=99999999999999999999-",
            "bytes=5-1,0-0",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "km-KH,km;q=0.9,en;q=0.8",
            "*;q=abc",
            "__Host-samleng-admin=garbage",
            "multipart/form-data; boundary=",
            "application/x-www-form-urlencoded; charset=latin-9",
        ]
    ),
)
HEADERS = [
    "Host", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Samleng-Circuit",
    "Accept-Language", "Cookie", "Content-Type", "If-None-Match", "If-Modified-Since",
    "If-Range", "Range", "X-Tor2web", "Referer", "Origin", "User-Agent",
]  # fmt: skip


def _header(value: str) -> str:
    """``value`` as a header reaches WSGI: its UTF-8 bytes as Latin-1, without line breaks
    (which end a header on the wire)."""
    raw = value.encode("utf-8", "surrogatepass").decode("latin-1")
    return raw.replace("\r", "").replace("\n", "")


headers = st.dictionaries(st.sampled_from(HEADERS), header_values.map(_header), max_size=5)
remote_addrs = st.sampled_from(
    ["127.0.0.1", "198.51.100.7", "2001:db8:1:2::3", "::ffff:198.51.100.9", "fe80::1%eth0", "x", ""]
)
base_urls = st.sampled_from(
    ["http://localhost", "https://petitions.example.org", f"http://{ONION}", "http://[::1]:8000"]
)


@dataclass
class Site:
    """The app under fuzzing and what a valid request to it may carry."""

    app: Flask
    anonymous: FlaskClient
    organiser: FlaskClient
    values: dict[str, list[str]]

    def csrf(self) -> str | None:
        """The organiser's CSRF token, logging in again when fuzzing ended the session."""
        for _ in range(2):
            page = self.organiser.get("/admin/")
            match = CSRF.search(page.get_data(as_text=True))
            if page.status_code == 200 and match:
                return match.group(1)
            login = self.organiser.get("/admin/login").get_data(as_text=True)
            token = CSRF.search(login)
            if token:
                self.organiser.post(
                    "/admin/login",
                    data={"csrf": token.group(1), "name": "fuzz", "password": PASSWORD},
                )
        return None


@pytest.fixture
def site(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """The app with petitions in every state, an organiser, and a mail server."""
    require("aiosmtpd", Controller is not None, "pip install -e '.[dev]'")
    monkeypatch.setattr(passwords, "PASSWORD_ARGON2", Argon2Params(time_cost=1, memory_kib=8))
    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    app = create_app(
        make_config(
            tmp_path,
            database_url,
            onion_address=ONION,
            trusted_proxies=1,
            circuit_proxies=("127.0.0.1",),
            smtp_url=f"smtp://127.0.0.1:{port}",
            ratelimit_login="100000 per minute",
            ratelimit_login_account="100000 per minute",
            ratelimit_mail="100000 per day",
        )
    )
    upgrade(services(app).engine)
    for slug in SLUGS:
        add_petition(
            app,
            slug=slug,
            identifier_mode="email" if slug == "fz-mail" else "phone",
            verification_mode="email" if slug == "fz-mail" else "none",
            status="draft" if slug == "fz-draft" else "open",
        )
    anonymous = app.test_client()
    for slug in ("fz-closed", "fz-forgotten"):
        assert sign(anonymous, slug, identifier="012 345 678").status_code == 200
    seal_all(services(app).engine, services(app).vault)
    with app.app_context():
        session = get_session()
        for slug in ("fz-closed", "fz-forgotten"):
            close_petition(session, get_petition(session, slug))
        forget_petition(session, get_petition(session, "fz-forgotten"), services(app).vault)
        # As a petition made before regions were checked at creation could be.
        session.execute(update(Petition).where(Petition.slug == "fz-region").values(region="XX"))
        create_account(session, "fuzz", "admin", PASSWORD)
        session.commit()
    organiser = app.test_client()
    organiser.environ_base["wsgi.url_scheme"] = "https"
    values = {
        "lang": ["en", "km"],
        "slug": SLUGS,
        "size": ["1", "2", "3"],
        "name": ["fuzz", "nobody"],
        "link": ["A" * 40],
        # What follows tile/ (tlog-tiles): a tile each log has, and ones none has.
        "rest": ["0/000.p/1", "entries/000.p/1", "0/000.p/2", "0/000", "1/000.p/1", "0/x001/000"],
    }
    yield Site(app, anonymous, organiser, values)
    services(app).engine.dispose()
    controller.stop()


RULE_ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")


def _quoted(text: str) -> str:
    """``text`` percent-encoded as UTF-8, lone surrogates as the bytes a broken client sends."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def _readable(text: str) -> str:
    """``text`` without lone surrogates, which the test client cannot put in a multipart body."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _wsgi_path(text: str) -> str:
    """``text`` as a server hands it to WSGI: UTF-8 bytes, decoded as Latin-1."""
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


@st.composite
def requests(draw: st.DrawFn, site: Site) -> dict[str, Any]:
    """One request to any route of the app."""
    rules: list[Rule] = sorted(site.app.url_map.iter_rules(), key=lambda r: r.rule)
    rule = draw(st.sampled_from(rules))

    def segment(match: re.Match[str]) -> str:
        name = match.group(1)
        real = site.values.get(name, [])
        value = draw(st.one_of(st.sampled_from(real), hostile_segment) if real else hostile_segment)
        if draw(st.booleans()):  # as the address bar would send it, or raw
            return _quoted(value)
        return value

    path = RULE_ARGUMENT.sub(segment, rule.rule)
    method = draw(st.one_of(st.sampled_from(sorted(rule.methods or [])), st.sampled_from(METHODS)))
    query = draw(
        st.one_of(
            st.just(""),
            st.dictionaries(
                st.sampled_from(["old", "new", "format", "lang", "receipt", "next"]),
                hostile_value,
                max_size=3,
            ).map(lambda q: "&".join(f"{k}={_quoted(v)}" for k, v in q.items())),
            st.text(max_size=30).map(
                lambda q: quote(q.encode("utf-8", "surrogatepass"), safe="=&%")
            ),
        )
    )
    fields = draw(field_maps)
    if draw(st.booleans()):
        fields.setdefault("consent", "yes")
    body_kind = draw(st.sampled_from(["none", "form", "form", "bytes", "multipart"]))
    data: Any = None
    content_type = None
    if body_kind == "form":  # urlencoded by hand: a lone surrogate becomes invalid UTF-8
        data = "&".join(f"{_quoted(k)}={_quoted(v)}" for k, v in fields.items())
        content_type = "application/x-www-form-urlencoded"
    elif body_kind == "bytes":
        data = draw(st.binary(max_size=300))
        content_type = draw(
            st.sampled_from(
                ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None]
            )
        )
    elif body_kind == "multipart":
        readable = {_readable(k): _readable(v) for k, v in fields.items()}
        data = {**readable, "details_key": (io.BytesIO(draw(st.binary(max_size=80))), "key.txt")}
    return {
        "path": path,
        "method": method,
        "query": query,
        "data": data,
        "content_type": content_type,
        "headers": draw(headers),
        "remote_addr": draw(remote_addrs),
        "base_url": draw(base_urls),
        "organiser": draw(st.booleans()),
        "valid_token": draw(st.booleans()),
    }


@FUZZ
@given(data=st.data())
def test_no_route_answers_5xx(site: Site, data: st.DataObject) -> None:
    request = data.draw(requests(site), label="request")
    client = site.anonymous
    body = request["data"]
    if request["organiser"]:
        client = site.organiser
        token = site.csrf()
        if isinstance(body, str) and token is not None and request["valid_token"]:
            body = f"{body}&csrf={token}"
    elif isinstance(body, dict) and request["valid_token"] and "/sign" in request["path"]:
        slug = request["path"].split("/")[3] if request["path"].count("/") >= 4 else ""
        body = {
            **body,
            "form_token": issue_form_token(services(site.app).form_tokens.key, slug),
        }
    environ = {
        "PATH_INFO": _wsgi_path(request["path"]),
        "QUERY_STRING": request["query"],
        "REMOTE_ADDR": request["remote_addr"],
    }
    response = client.open(
        "/",  # the path is PATH_INFO above, byte for byte as a server would pass it
        method=request["method"],
        base_url="https://localhost" if request["organiser"] else request["base_url"],
        headers=request["headers"],
        data=body,
        content_type=request["content_type"],
        environ_overrides=environ,
    )
    status = response.status_code
    event(f"status {status}")
    page = response.get_data()
    response.close()  # a file sent for a HEAD or a 304 is otherwise left open
    assert status < 500, (status, request, page[-800:])
    assert b"Traceback" not in page
    for header, value in response.headers.items():
        assert "\n" not in value and "\r" not in value, (header, value)


def _on_postgresql(site: Site) -> bool:
    return bool(services(site.app).engine.dialect.name == "postgresql")


# What the route fuzzer found in service/admin: a NUL in a form field reached PostgreSQL,
# which refuses it (psycopg DataError, a 500). The admin now refuses such a form with a 400.
ADMIN_NUL_FIELDS = [
    ("/admin/p/fz-open/grant", {"account": "a\x00"}),
    ("/admin/p/fz-open/revoke", {"account": "a\x00"}),
    ("/admin/login", {"name": "a\x00", "password": "x"}),
]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize(("path", "fields"), ADMIN_NUL_FIELDS)
def test_a_nul_in_an_admin_form_is_refused(site: Site, path: str, fields: dict[str, str]) -> None:
    token = site.csrf()
    assert token is not None
    client = site.anonymous if path == "/admin/login" else site.organiser
    if path == "/admin/login":
        page = client.get(path, base_url="https://localhost").get_data(as_text=True)
        match = CSRF.search(page)
        assert match
        token = match.group(1)
    answer = client.post(path, base_url="https://localhost", data={**fields, "csrf": token})
    assert answer.status_code == 400
