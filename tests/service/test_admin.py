"""The organisers' admin: logins, sessions, CSRF, throttling, who may see what, the lifecycle.

Every test runs on SQLite and, when configured, PostgreSQL (the ``app`` fixtures).
"""

from __future__ import annotations

import datetime as dt
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from babel.dates import format_date
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from werkzeug.test import TestResponse

from samleng.crypto.details import generate_details_keypair
from samleng.crypto.keyfile import public_key_file
from samleng.crypto.tokens import Argon2Params
from samleng.service.admin import passwords, totp
from samleng.service.admin.accounts import create_account, grant
from samleng.service.admin.cli import ensure_demo_admin
from samleng.service.admin.drafts import signatures_per_day
from samleng.service.admin.logins import LOGIN_COOKIE, SESSION_COOKIE
from samleng.service.app import STYLESHEET as STYLESHEET_PATH
from samleng.service.app import create_app
from samleng.service.petitions.scheduler import close_expired_petitions
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import (
    Account,
    AdminSession,
    AuditEvent,
    DedupToken,
    Petition,
    SignedCheckpoint,
    get_petition,
)
from samleng.service.tlog.store import seal_all
from samleng.service.web.security import content_security_policy
from tests.conftest import add_petition, make_config, seal, sign

PASSWORD = "correct horse battery staple"
# Captured before the fixture below makes hashing cheap for the rest of this module.
PINNED_PASSWORD_ARGON2 = passwords.PASSWORD_ARGON2
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(autouse=True)
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id for passwords at test cost; the pinned parameters are tested on their own."""
    monkeypatch.setattr(passwords, "PASSWORD_ARGON2", Argon2Params(time_cost=1, memory_kib=8))


class AdminClient(FlaskClient):
    """A browser on https://localhost: ``__Host-`` cookies are Secure-only."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        kwargs.setdefault("base_url", "https://localhost")
        return super().open(*args, **kwargs)


def admin_client(app: Flask) -> FlaskClient:
    app.test_client_class = AdminClient
    return app.test_client()


def make_app(tmp_path: Path, database_url: str, **overrides: Any) -> Flask:
    application = create_app(make_config(tmp_path, database_url, **overrides))
    upgrade(services(application).engine)
    return application


@pytest.fixture
def throttled_app(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    application = make_app(
        tmp_path,
        database_url,
        ratelimit_login="4 per minute",
        ratelimit_login_account="3 per minute",
    )
    yield application
    services(application).engine.dispose()


def make_account(app: Flask, name: str, role: str = "admin", password: str = PASSWORD) -> None:
    with app.app_context():
        session = get_session()
        create_account(session, name, role, password)
        session.commit()


def give(app: Flask, name: str, slug: str) -> None:
    with app.app_context():
        session = get_session()
        account = session.scalar(select(Account).where(Account.name == name))
        assert account is not None
        grant(session, account, get_petition(session, slug))
        session.commit()


def login(client: FlaskClient, name: str, password: str = PASSWORD, code: str = "") -> TestResponse:
    page = client.get("/admin/login")
    match = CSRF.search(page.get_data(as_text=True))
    assert match, "the login page has no CSRF token"
    return client.post(
        "/admin/login",
        data={"csrf": match.group(1), "name": name, "password": password, "code": code},
    )


def csrf_of(client: FlaskClient, path: str = "/admin/") -> str:
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    match = CSRF.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def cookie(client: FlaskClient, name: str) -> str | None:
    found = client.get_cookie(name, domain="localhost")
    return None if found is None else found.value


def events(app: Flask) -> list[tuple[str, str, str | None, str]]:
    with app.app_context():
        rows = get_session().scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        return [(e.actor, e.action, e.petition_slug, e.detail) for e in rows]


def status_of(app: Flask, slug: str) -> str:
    with app.app_context():
        return get_petition(get_session(), slug).status


# --- logging in ---------------------------------------------------------------------------


def test_login_sets_a_host_only_strict_session_cookie(app: Flask) -> None:
    make_account(app, "sokha")
    client = admin_client(app)
    assert client.get("/admin/").headers["Location"].endswith("/admin/login")
    answer = login(client, "sokha")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/admin/")
    set_cookie = [h for h in answer.headers.getlist("Set-Cookie") if h.startswith(SESSION_COOKIE)]
    assert len(set_cookie) == 1
    attributes = {part.strip().split("=")[0].lower() for part in set_cookie[0].split(";")[1:]}
    assert {"secure", "httponly", "path", "samesite"} <= attributes
    assert "domain" not in attributes and "max-age" not in attributes
    assert "SameSite=Strict" in set_cookie[0] and "Path=/" in set_cookie[0]
    assert client.get("/admin/").status_code == 200
    assert cookie(client, LOGIN_COOKIE) is None
    assert ("sokha", "login", None, "") in events(app)


def test_wrong_password_and_unknown_name_are_refused_alike(app: Flask) -> None:
    make_account(app, "sokha")
    client = admin_client(app)
    wrong = login(client, "sokha", "not the password at all")
    unknown = login(client, "nobody", PASSWORD)
    for answer in (wrong, unknown):
        assert answer.status_code == 401
        assert "Wrong name, password or code." in answer.get_data(as_text=True)
        assert not any(h.startswith(SESSION_COOKIE) for h in answer.headers.getlist("Set-Cookie"))
    assert client.get("/admin/").status_code == 302
    assert ("sokha", "login-failed", None, "") in events(app)
    assert not any(actor == "nobody" for actor, *_ in events(app))


def test_too_long_password_is_refused_without_hashing(app: Flask) -> None:
    make_account(app, "sokha")
    assert not passwords.verify_password(passwords.hash_password(PASSWORD), "x" * 1025)
    with pytest.raises(ValueError):
        passwords.hash_password("x" * 1025)
    with pytest.raises(ValueError):
        passwords.hash_password("short")
    assert login(admin_client(app), "sokha", "x" * 1025).status_code == 401


def test_login_throttled_per_account_without_the_name_in_the_store(throttled_app: Flask) -> None:
    make_account(throttled_app, "sokha")
    client = admin_client(throttled_app)
    for _ in range(3):
        assert login(client, "SOKHA ", "wrong password here").status_code == 401
    # Even the right password waits now: the throttle is per account name.
    assert login(client, "sokha").status_code == 429
    limiter = services(throttled_app).rate_limits.limiter
    keys = " ".join(limiter.storage.names())
    assert "login-account:" in keys
    assert "sokha" not in keys.lower()


def test_login_throttled_per_client(throttled_app: Flask) -> None:
    client = admin_client(throttled_app)
    answers = [login(client, f"name{i}", "wrong password here") for i in range(5)]
    assert [a.status_code for a in answers] == [401, 401, 401, 401, 429]
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert "Too many attempts" in answers[-1].get_data(as_text=True)


def test_login_form_needs_its_csrf_token(app: Flask) -> None:
    make_account(app, "sokha")
    client = admin_client(app)
    client.get("/admin/login")
    forged = client.post(
        "/admin/login", data={"csrf": "forged", "name": "sokha", "password": PASSWORD}
    )
    assert forged.status_code == 403
    assert cookie(client, SESSION_COOKIE) is None
    # A token from another browser (another login cookie) does not work either.
    other = admin_client(app)
    token = CSRF.search(other.get("/admin/login").get_data(as_text=True))
    assert token
    answer = client.post(
        "/admin/login", data={"csrf": token.group(1), "name": "sokha", "password": PASSWORD}
    )
    assert answer.status_code == 403


def test_admin_pages_keep_the_header_promises(app: Flask) -> None:
    make_account(app, "sokha")
    client = admin_client(app)
    csp = content_security_policy(STYLESHEET_PATH.read_text(encoding="utf-8"))
    pages = [client.get("/admin/login")]
    login(client, "sokha")
    pages += [client.get(p) for p in ("/admin/", "/admin/new", "/admin/accounts", "/admin/me")]
    pages.append(client.get("/admin/p/nope"))
    for page in pages:
        assert page.headers["Content-Security-Policy"] == csp
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert page.headers["Cache-Control"] == "no-store"
        assert "Server" not in page.headers
        body = page.get_data(as_text=True)
        assert "<script" not in body.lower()
        assert not re.search(r"""(src|href|action)=["']?(https?:)?//""", body)


# --- sessions -----------------------------------------------------------------------------


def test_csrf_token_is_required_on_every_admin_post(app: Flask) -> None:
    make_account(app, "sokha")
    add_petition(app)
    client = admin_client(app)
    login(client, "sokha")
    assert client.post("/admin/p/free-them/close").status_code == 403
    assert client.post("/admin/p/free-them/close", data={"csrf": "x" * 43}).status_code == 403
    # A token of another session is refused too.
    other = admin_client(app)
    login(other, "sokha")
    foreign = csrf_of(other)
    assert client.post("/admin/p/free-them/close", data={"csrf": foreign}).status_code == 403
    assert status_of(app, "free-them") == "open"
    answer = client.post("/admin/p/free-them/close", data={"csrf": csrf_of(client)})
    assert answer.status_code == 302
    assert status_of(app, "free-them") == "closed"


def test_login_starts_a_new_session(app: Flask) -> None:
    make_account(app, "sokha")
    client = admin_client(app)
    planted = "attacker-chosen-session-id-0123456789abcdef"
    client.set_cookie(SESSION_COOKIE, planted, domain="localhost", secure=True)
    login(client, "sokha")
    first = cookie(client, SESSION_COOKIE)
    assert first and first != planted
    # The planted id is no session at all.
    attacker = admin_client(app)
    attacker.set_cookie(SESSION_COOKIE, planted, domain="localhost", secure=True)
    assert attacker.get("/admin/").status_code == 302
    # Logging in while holding a live session id replaces it; the old id stops working.
    other = admin_client(app)
    other.set_cookie(SESSION_COOKIE, "none-yet", domain="localhost", secure=True)
    token = CSRF.search(other.get("/admin/login").get_data(as_text=True))
    assert token
    other.set_cookie(SESSION_COOKIE, first, domain="localhost", secure=True)
    answer = other.post(
        "/admin/login", data={"csrf": token.group(1), "name": "sokha", "password": PASSWORD}
    )
    assert answer.status_code == 302
    second = cookie(other, SESSION_COOKIE)
    assert second and second != first
    assert client.get("/admin/").status_code == 302
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(AdminSession)) == 1


def test_session_ids_are_stored_hashed(app: Flask) -> None:
    make_account(app, "sokha")
    client = admin_client(app)
    login(client, "sokha")
    session_id = cookie(client, SESSION_COOKIE)
    assert session_id
    with app.app_context():
        stored = get_session().scalars(select(AdminSession.id_hash)).all()
    assert len(stored) == 1 and session_id.encode() not in stored[0]


def _age_sessions(app: Flask, **ago: dt.timedelta) -> None:
    with app.app_context():
        session = get_session()
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        values = {column: now - delta for column, delta in ago.items()}
        session.execute(update(AdminSession).values(**values))
        session.commit()


@pytest.mark.parametrize(
    "ago",
    [
        {"last_seen": dt.timedelta(minutes=31)},
        {"created_at": dt.timedelta(hours=12, minutes=1)},
    ],
    ids=["idle", "absolute"],
)
def test_session_times_out(app: Flask, ago: dict[str, dt.timedelta]) -> None:
    make_account(app, "sokha")
    client = admin_client(app)
    login(client, "sokha")
    _age_sessions(app, last_seen=dt.timedelta(minutes=29))
    assert client.get("/admin/").status_code == 200
    _age_sessions(app, **ago)
    answer = client.get("/admin/")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/admin/login")
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(AdminSession)) == 0
    assert client.get("/admin/").status_code == 302


def test_logout_ends_the_session(app: Flask) -> None:
    make_account(app, "sokha")
    client = admin_client(app)
    login(client, "sokha")
    session_id = cookie(client, SESSION_COOKIE)
    assert client.post("/admin/logout", data={"csrf": csrf_of(client)}).status_code == 302
    replay = admin_client(app)
    assert session_id
    replay.set_cookie(SESSION_COOKIE, session_id, domain="localhost", secure=True)
    assert replay.get("/admin/").status_code == 302
    assert ("sokha", "logout", None, "") in events(app)


def test_disabled_account_is_logged_out_and_cannot_log_in(app: Flask) -> None:
    make_account(app, "root")
    make_account(app, "dara", "organiser")
    admin, dara = admin_client(app), admin_client(app)
    login(admin, "root")
    login(dara, "dara")
    assert dara.get("/admin/").status_code == 200
    answer = admin.post(
        "/admin/accounts/dara/active", data={"csrf": csrf_of(admin), "active": "no"}
    )
    assert answer.status_code == 302
    assert dara.get("/admin/").status_code == 302
    assert login(dara, "dara").status_code == 401
    assert ("root", "disable-account", None, "dara") in events(app)


def test_rehash_when_the_parameters_change(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    make_account(app, "sokha")
    stronger = Argon2Params(time_cost=2, memory_kib=16)
    monkeypatch.setattr(passwords, "PASSWORD_ARGON2", stronger)
    assert login(admin_client(app), "sokha").status_code == 302
    with app.app_context():
        stored = get_session().scalar(select(Account.password_hash))
    assert stored and stored.startswith("$argon2id$") and "m=16,t=2,p=1" in stored


def test_pinned_password_parameters_are_strong() -> None:
    # RFC 9106's second recommended option, at least, on one lane: one core per hash, so
    # that the admin's one password slot per process bounds a login flood to one core.
    assert PINNED_PASSWORD_ARGON2.memory_kib >= 65536 and PINNED_PASSWORD_ARGON2.time_cost >= 3
    assert PINNED_PASSWORD_ARGON2.parallelism == 1


# --- second factor ------------------------------------------------------------------------


def test_totp_enrolment_and_login(app: Flask) -> None:
    make_account(app, "sokha")
    client = admin_client(app)
    login(client, "sokha")
    page = client.post("/admin/me/totp/start", data={"csrf": csrf_of(client, "/admin/me")})
    secret_text = re.search(r'name="secret" value="([A-Z2-7 ]+)"', page.get_data(as_text=True))
    assert secret_text
    secret = totp.parse_secret_text(secret_text.group(1))
    csrf = csrf_of(client, "/admin/me")
    wrong = client.post(
        "/admin/me/totp/enable",
        data={"csrf": csrf, "secret": secret_text.group(1), "code": "000000"},
    )
    assert wrong.status_code == 400 or totp.totp(secret, time.time()) == "000000"
    now = time.time()
    enabled = client.post(
        "/admin/me/totp/enable",
        data={
            "csrf": csrf,
            "secret": secret_text.group(1),
            "code": totp.totp(secret, now),
            "current": PASSWORD,
        },
    )
    assert enabled.status_code == 302
    with app.app_context():
        stored = get_session().scalar(select(Account.wrapped_totp_secret))
    assert stored and secret not in stored

    fresh = admin_client(app)
    assert login(fresh, "sokha").status_code == 401
    next_code = totp.totp(secret, now + totp.STEP_SECONDS)
    assert login(fresh, "sokha", code=next_code).status_code == 302
    # The same code cannot be used twice.
    assert login(admin_client(app), "sokha", code=next_code).status_code == 401
    assert ("sokha", "totp-enable", None, "") in events(app)


# --- who may see what ---------------------------------------------------------------------


@pytest.fixture
def two_organisers(app: Flask) -> tuple[FlaskClient, FlaskClient]:
    add_petition(app, slug="alices")
    add_petition(app, slug="bobs")
    add_petition(app, slug="bobs-draft", status="draft")
    make_account(app, "alice", "organiser")
    make_account(app, "bob", "organiser")
    give(app, "alice", "alices")
    give(app, "bob", "bobs")
    give(app, "bob", "bobs-draft")
    alice, bob = admin_client(app), admin_client(app)
    login(alice, "alice")
    login(bob, "bob")
    return alice, bob


def test_organiser_sees_only_their_petitions(
    app: Flask, two_organisers: tuple[FlaskClient, FlaskClient]
) -> None:
    alice, _ = two_organisers
    index = alice.get("/admin/").get_data(as_text=True)
    assert "alices" in index and "bobs" not in index
    assert alice.get("/admin/p/alices").status_code == 200
    for path in (
        "/admin/p/bobs",
        "/admin/p/bobs-draft",
        "/admin/p/bobs-draft/edit",
        "/admin/p/bobs/preview/en",
        "/admin/accounts",
        "/admin/audit",
    ):
        assert alice.get(path).status_code == 404, path


def test_organiser_cannot_act_on_another_petition(
    app: Flask, two_organisers: tuple[FlaskClient, FlaskClient]
) -> None:
    alice, _ = two_organisers
    csrf = csrf_of(alice)
    for path, data in (
        ("/admin/p/bobs/close", {}),
        ("/admin/p/bobs-draft/open", {}),
        ("/admin/p/bobs-draft/edit", {"en-title": "Hijacked", "en-body": "x", "goal": "1"}),
        ("/admin/p/bobs/forget", {"confirm_slug": "bobs"}),
        ("/admin/p/bobs/grant", {"account": "alice"}),
        ("/admin/p/alices/grant", {"account": "alice"}),
        ("/admin/accounts/bob/active", {"active": "no"}),
        ("/admin/accounts", {"name": "mallory", "role": "admin", "password": PASSWORD}),
    ):
        assert alice.post(path, data={"csrf": csrf, **data}).status_code == 404, path
    # A slug typed in a form does not reach another petition either.
    alice.post("/admin/p/alices/close", data={"csrf": csrf})
    answer = alice.post("/admin/p/alices/forget", data={"csrf": csrf, "confirm_slug": "bobs"})
    assert answer.status_code == 409
    assert status_of(app, "bobs") == "open" and status_of(app, "bobs-draft") == "draft"
    assert status_of(app, "alices") == "closed"
    with app.app_context():
        session = get_session()
        assert get_petition(session, "bobs-draft").text("en")["title"] != "Hijacked"
        assert session.scalar(select(Account.id).where(Account.name == "mallory")) is None


def test_a_draft_created_by_an_organiser_is_theirs(
    app: Flask, two_organisers: tuple[FlaskClient, FlaskClient]
) -> None:
    alice, bob = two_organisers
    answer = alice.post("/admin/new", data=draft_form(csrf_of(alice), "alices-new"))
    assert answer.status_code == 302, answer.get_data(as_text=True)
    assert alice.get("/admin/p/alices-new").status_code == 200
    assert bob.get("/admin/p/alices-new").status_code == 404


# --- the lifecycle ------------------------------------------------------------------------


def draft_form(csrf: str, slug: str, **overrides: Any) -> dict[str, Any]:
    _, public = generate_details_keypair()
    form: dict[str, Any] = {
        "csrf": csrf,
        "slug": slug,
        "en-title": "Free the river defenders",
        "en-target": "To the Ministry of Environment",
        "en-summary": "Four activists are held.",
        "en-body": "They **defended** the river.\n\n- release them\n- drop the charges",
        "km-title": "ដោះលែងអ្នកការពារទន្លេ",
        "km-body": "អត្ថបទ",
        "goal": "500",
        "closes_on": "",
        "identifier_mode": "phone",
        "verification_mode": "none",
        "region": "kh",
        "details_key": (io.BytesIO(public_key_file(public)), "organisers.pub"),
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def test_lifecycle_through_the_admin(app: Flask) -> None:
    make_account(app, "sokha")
    client = admin_client(app)
    login(client, "sokha")
    csrf = csrf_of(client)

    bad = client.post("/admin/new", data=draft_form(csrf, "Bad Slug!", goal="0"))
    assert bad.status_code == 400
    bad_body = bad.get_data(as_text=True)
    assert "lower-case letters" in bad_body and "whole number" in bad_body
    no_key = client.post("/admin/new", data=draft_form(csrf, "river", details_key=None))
    assert no_key.status_code == 400
    assert client.post("/admin/new", data=draft_form(csrf, "river")).status_code == 302
    assert status_of(app, "river") == "draft"

    preview = client.get("/admin/p/river/preview/en").get_data(as_text=True)
    assert "<strong>defended</strong>" in preview and "<li>release them</li>" in preview
    edited = draft_form(csrf, "river", goal="750", details_key=None)
    edited["en-title"] = "Free the four river defenders"
    assert client.post("/admin/p/river/edit", data=edited).status_code == 302
    with app.app_context():
        petition = get_petition(get_session(), "river")
        assert petition.goal == 750 and petition.region == "KH"
        assert petition.text("en")["title"] == "Free the four river defenders"

    assert client.post("/admin/p/river/open", data={"csrf": csrf}).status_code == 302
    assert status_of(app, "river") == "open"
    # Texts are frozen now.
    assert client.post("/admin/p/river/edit", data=edited).status_code == 409

    public = app.test_client()
    for phone in ("012 345 678", "097 765 4321"):
        assert sign(public, "river", identifier=phone).status_code == 200
    seal_all(services(app).engine, services(app).vault)
    dashboard = client.get("/admin/p/river").get_data(as_text=True)
    assert "2 signatures counted" in dashboard
    assert "<code>petitions.example.org/p/river</code><br><code>3</code>" in dashboard
    today = dt.datetime.now(dt.UTC).date().isoformat()
    day = format_date(dt.date.fromisoformat(str(today)), "long", locale="en")
    assert f"<td>{day}</td><td>2</td>" in dashboard

    assert client.post("/admin/p/river/close", data={"csrf": csrf}).status_code == 302
    assert status_of(app, "river") == "closed"
    closed = client.get("/admin/p/river").get_data(as_text=True)
    assert "samleng export river DIR" in closed

    wrong = client.post("/admin/p/river/forget", data={"csrf": csrf, "confirm_slug": "rive"})
    assert wrong.status_code == 409 and status_of(app, "river") == "closed"
    with app.app_context():
        session = get_session()
        petition_id = get_petition(session, "river").id
        assert session.scalar(select(func.count()).select_from(DedupToken)) == 2
    right = client.post("/admin/p/river/forget", data={"csrf": csrf, "confirm_slug": "river"})
    assert right.status_code == 302
    with app.app_context():
        session = get_session()
        petition = session.get(Petition, petition_id)
        assert petition is not None and petition.status == "forgotten"
        assert petition.wrapped_dedup_key is None
        assert session.scalar(select(func.count()).select_from(DedupToken)) == 0

    trail = [(actor, action, slug) for actor, action, slug, _ in events(app)]
    for action in ("create", "edit", "open", "close", "forget"):
        assert ("sokha", action, "river") in trail, action
    assert ("sokha", "forget", "river", "2 tokens destroyed") in events(app)
    audit_page = client.get("/admin/audit").get_data(as_text=True)
    assert "forget" in audit_page and "2 tokens destroyed" in audit_page


def test_forget_leaves_no_token_bytes_in_the_database_file(tmp_path: Path) -> None:
    # A file-level check of SQLite's secure_delete, so on SQLite only.
    app = make_app(tmp_path, f"sqlite:///{tmp_path / 'samleng.sqlite3'}")
    make_account(app, "sokha")
    add_petition(app)
    public = app.test_client()
    assert sign(public, "free-them", identifier="012 345 678").status_code == 200
    seal(app)
    with app.app_context():
        tokens = get_session().scalars(select(DedupToken.token)).all()
    assert len(tokens) == 1
    client = admin_client(app)
    login(client, "sokha")
    csrf = csrf_of(client)
    client.post("/admin/p/free-them/close", data={"csrf": csrf})
    client.post("/admin/p/free-them/forget", data={"csrf": csrf, "confirm_slug": "free-them"})
    engine = services(app).engine
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    for path in tmp_path.rglob("samleng.sqlite3*"):
        assert tokens[0] not in path.read_bytes(), path


def test_deadline_closes_the_petition(app: Flask, runner: Any) -> None:
    add_petition(app, slug="late")
    add_petition(app, slug="later")
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    with app.app_context():
        session = get_session()
        get_petition(session, "late").closes_on = yesterday
        get_petition(session, "later").closes_on = yesterday + dt.timedelta(days=1)
        session.commit()
    # Signing refuses past the deadline even before anything closed the petition.
    assert sign(app.test_client(), "late", identifier="012 345 678").status_code == 409
    assert sign(app.test_client(), "later", identifier="012 345 678").status_code == 200
    assert close_expired_petitions(services(app).engine) == ["late"]
    assert status_of(app, "late") == "closed" and status_of(app, "later") == "open"
    assert ("(deadline)", "close", "late", "deadline") in events(app)
    assert close_expired_petitions(services(app).engine) == []


def test_seal_command_closes_at_the_deadline(app: Flask, runner: Any) -> None:
    add_petition(app, slug="late")
    with app.app_context():
        session = get_session()
        get_petition(session, "late").closes_on = dt.date(2020, 1, 1)
        session.commit()
    result = runner.invoke(args=["seal"])
    assert result.exit_code == 0, result.output
    assert "closed late" in result.output
    assert status_of(app, "late") == "closed"


def test_signatures_per_day_from_checkpoint_dates(app: Flask) -> None:
    add_petition(app)
    public = app.test_client()
    engine = services(app).engine
    for phone in ("012 345 678", "097 765 4321", "012 222 333"):
        sign(public, "free-them", identifier=phone)
        seal_all(engine, services(app).vault)
    days = [dt.date(2026, 3, 1), dt.date(2026, 3, 1), dt.date(2026, 3, 3), dt.date(2026, 3, 3)]
    with app.app_context():
        session = get_session()
        checkpoints = session.scalars(select(SignedCheckpoint).order_by(SignedCheckpoint.size))
        for checkpoint, day in zip(checkpoints, days, strict=True):
            checkpoint.published_on = day
        session.commit()
        figures = signatures_per_day(session, get_petition(session, "free-them"))
    assert [(d.day, d.signatures) for d in figures] == [
        (dt.date(2026, 3, 1), 1),
        (dt.date(2026, 3, 3), 2),
    ]


def test_new_checkpoints_carry_todays_date_only(app: Flask) -> None:
    add_petition(app)
    with app.app_context():
        published = get_session().scalars(select(SignedCheckpoint.published_on)).all()
    assert published == [dt.datetime.now(dt.UTC).date()]
    assert not isinstance(published[0], dt.datetime)


def test_email_verification_needs_mail(app: Flask) -> None:
    make_account(app, "sokha")
    client = admin_client(app)
    login(client, "sokha")
    form = draft_form(csrf_of(client), "mail", identifier_mode="email", verification_mode="email")
    answer = client.post("/admin/new", data=form)
    assert answer.status_code == 400
    assert "SAMLENG_SMTP_URL" in answer.get_data(as_text=True)


def test_grants_by_an_admin(app: Flask) -> None:
    add_petition(app)
    make_account(app, "root")
    make_account(app, "dara", "organiser")
    admin, dara = admin_client(app), admin_client(app)
    login(admin, "root")
    login(dara, "dara")
    assert dara.get("/admin/p/free-them").status_code == 404
    csrf = csrf_of(admin)
    admin.post("/admin/p/free-them/grant", data={"csrf": csrf, "account": "dara"})
    assert dara.get("/admin/p/free-them").status_code == 200
    admin.post("/admin/p/free-them/revoke", data={"csrf": csrf, "account": "dara"})
    assert dara.get("/admin/p/free-them").status_code == 404
    trail = events(app)
    assert ("root", "grant", "free-them", "dara") in trail
    assert ("root", "revoke", "free-them", "dara") in trail


def test_accounts_created_in_the_admin(app: Flask) -> None:
    make_account(app, "root")
    admin = admin_client(app)
    login(admin, "root")
    csrf = csrf_of(admin)
    short = admin.post(
        "/admin/accounts", data={"csrf": csrf, "name": "dara", "role": "organiser", "password": "x"}
    )
    assert short.status_code == 400 and "at least 12" in short.get_data(as_text=True)
    made = admin.post(
        "/admin/accounts",
        data={"csrf": csrf, "name": "Dara", "role": "organiser", "password": PASSWORD},
    )
    assert made.status_code == 302
    assert login(admin_client(app), "dara").status_code == 302
    assert ("root", "create-account", None, "dara (organiser)") in events(app)


def test_change_password_ends_other_sessions(app: Flask) -> None:
    make_account(app, "sokha")
    client, elsewhere = admin_client(app), admin_client(app)
    login(client, "sokha")
    login(elsewhere, "sokha")
    new = "a much better passphrase"
    answer = client.post(
        "/admin/me/password",
        data={"csrf": csrf_of(client, "/admin/me"), "current": PASSWORD, "new": new, "repeat": new},
    )
    assert answer.status_code == 302
    assert client.get("/admin/").status_code == 200
    assert elsewhere.get("/admin/").status_code == 302
    assert login(admin_client(app), "sokha", PASSWORD).status_code == 401
    assert login(admin_client(app), "sokha", new).status_code == 302


# --- switches, command line, demo (the admin listener: test_admin_listener.py) ----------


def test_admin_can_be_switched_off(tmp_path: Path, database_url: str) -> None:
    application = make_app(tmp_path, database_url, admin=False)
    client = admin_client(application)
    assert client.get("/admin/login").status_code == 404
    assert client.get("/admin/").status_code == 404
    services(application).engine.dispose()


def test_cli_admin_create(app: Flask, runner: Any, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    result = runner.invoke(
        args=["admin", "create", "Chenda", "--role", "organiser", "--password-file", str(secret)]
    )
    assert result.exit_code == 0, result.output
    assert "created organiser account chenda" in result.output
    prompted = runner.invoke(
        args=["admin", "create", "root", "--role", "admin"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert prompted.exit_code == 0, prompted.output
    short = tmp_path / "short"
    short.write_text("tooshort\n", encoding="utf-8")
    refused = runner.invoke(
        args=["admin", "create", "x", "--role", "admin", "--password-file", str(short)]
    )
    assert refused.exit_code != 0 and "at least 12" in refused.output
    again = runner.invoke(
        args=["admin", "create", "chenda", "--role", "admin", "--password-file", str(secret)]
    )
    assert again.exit_code != 0 and "exists already" in again.output
    with app.app_context():
        stored = get_session().scalars(select(Account.password_hash)).all()
    assert len(stored) == 2 and all(h.startswith("$argon2id$") for h in stored)
    assert PASSWORD not in " ".join(stored)
    assert login(admin_client(app), "chenda").status_code == 302


def test_demo_admin_password_is_shown_once_and_not_stored(app: Flask) -> None:
    with app.app_context():
        session = get_session()
        password = ensure_demo_admin(session)
        assert password and len(password) >= 12
        assert ensure_demo_admin(session) is None
        stored = session.scalar(select(Account.password_hash))
    assert stored and password not in stored
    assert login(admin_client(app), "admin", password).status_code == 302


def test_public_pages_still_set_no_cookie_after_admin_use(app: Flask) -> None:
    make_account(app, "sokha")
    add_petition(app)
    client = admin_client(app)
    login(client, "sokha")
    for path in ("/en/", "/km/p/free-them", "/en/safety"):
        assert "Set-Cookie" not in client.get(path).headers
