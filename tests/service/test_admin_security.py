"""The admin against its own users and strangers: lockouts, the second factor, what an
organiser may learn (signing times, hidden slugs), the audit trail, and login floods.

Every test runs on SQLite and PostgreSQL (the ``database_url`` fixture), through the test
client unless it checks a service function's rule.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, current_app
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select

from samleng.crypto.details import generate_details_keypair
from samleng.crypto.tokens import Argon2Params
from samleng.service.admin import passwords, totp
from samleng.service.admin.accounts import find_account
from samleng.service.admin.drafts import parse_draft_form, update_draft
from samleng.service.app import create_app
from samleng.service.petitions.lifecycle import create_petition
from samleng.service.platform.context import services
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.errors import ClosingDateInPast, SlugUnavailable
from samleng.service.platform.models import Account, Petition, get_petition, utc_today
from samleng.service.tlog.store import seal_all
from tests.components import PrivateRedis
from tests.conftest import CHEAP_ARGON2, MASTER_KEY, ORIGIN, TEXTS, add_petition, make_config, sign
from tests.service.test_admin import (  # noqa: F401 - cheap_passwords is an autouse fixture
    CSRF,
    PASSWORD,
    admin_client,
    cheap_passwords,
    csrf_of,
    draft_form,
    events,
    give,
    login,
    make_account,
    make_app,
    status_of,
)
from tests.service.test_cli import create as cli_create

WRONG = "not the password at all"


def client_at(app: Flask, address: str) -> FlaskClient:
    """A browser at its own address: the login throttles tell clients apart by it."""
    client = admin_client(app)
    client.environ_base["REMOTE_ADDR"] = address
    return client


def enrol(app: Flask, name: str) -> bytes:
    """Give the account an authenticator directly; its secret."""
    with app.app_context():
        session = get_session()
        account = find_account(session, name)
        assert account is not None
        secret = totp.new_secret()
        account.wrapped_totp_secret = totp.wrap_secret(MASTER_KEY, secret, account.id)
        account.totp_last_step = None
        session.commit()
    return secret


def stored_secret(app: Flask, name: str) -> bytes | None:
    with app.app_context():
        return get_session().scalar(select(Account.wrapped_totp_secret).where(Account.name == name))


def throttle_events(app: Flask, name: str) -> list[str]:
    return [
        detail
        for actor, action, _, detail in events(app)
        if (actor, action) == (name, "login-throttled")
    ]


@pytest.fixture
def strict_app(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    application = make_app(
        tmp_path,
        database_url,
        ratelimit_login="4 per minute",
        ratelimit_login_account="3 per minute",
        ratelimit_login_account_all="5 per minute",
    )
    yield application
    services(application).engine.dispose()


# --- lockouts (item 5) --------------------------------------------------------------------


def test_posts_without_the_form_token_spend_no_attempts_and_are_recorded(
    strict_app: Flask,
) -> None:
    make_account(strict_app, "sokha")
    forger = client_at(strict_app, "203.0.113.7")
    forger.get("/admin/login")
    for _ in range(12):
        answer = forger.post("/admin/login", data={"name": "sokha", "password": WRONG})
        assert answer.status_code == 403
    # Neither that client nor the account was throttled by them.
    assert login(forger, "sokha").status_code == 302
    refused = [e for e in events(strict_app) if e[:2] == ("sokha", "login-refused")]
    assert len(refused) == 12
    assert not any(actor == "nobody" for actor, *_ in events(strict_app))


def test_strangers_cannot_lock_out_a_right_password_and_code(strict_app: Flask) -> None:
    make_account(strict_app, "sokha")
    secret = enrol(strict_app, "sokha")
    # Four strangers fail four times each: each reaches its own limit on the name, and
    # together they pass the limit for the name from every client.
    answers = [
        login(client_at(strict_app, f"198.51.100.{i}"), "sokha", WRONG).status_code
        for i in range(4)
        for _ in range(4)
    ]
    # The first stranger's fourth try: its own limit (3). The second's third: the fifth
    # failure on the name from anyone (5). Everyone after: the name is contested.
    assert answers == [401, 401, 401, 429, 401, 401, 429, 429] + [429] * 8
    # The organiser, elsewhere, with the password and a fresh code, gets in.
    owner = client_at(strict_app, "192.0.2.10")
    code = totp.totp(secret, time.time() + totp.STEP_SECONDS)
    assert login(owner, "sokha", code=code).status_code == 302
    # A stranger's right password without the code is answered like a wrong one.
    stranger = client_at(strict_app, "198.51.100.99")
    assert login(stranger, "sokha").status_code == 429
    assert login(client_at(strict_app, "198.51.100.98"), "sokha", WRONG).status_code == 429
    details = throttle_events(strict_app, "sokha")
    assert "too many failures from one client" in details
    assert "too many failures from many clients" in details


def test_one_client_is_throttled_on_a_name_it_failed(strict_app: Flask) -> None:
    make_account(strict_app, "sokha")
    stranger = client_at(strict_app, "198.51.100.1")
    assert [login(stranger, "sokha", WRONG).status_code for _ in range(3)] == [401] * 3
    # Even the right password: this client used up its tries on this name, and is told
    # how long to wait.
    refused = login(stranger, "sokha")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "Too many attempts" in refused.get_data(as_text=True)
    # Another client is not.
    assert login(client_at(strict_app, "192.0.2.10"), "sokha").status_code == 302


def test_without_an_authenticator_a_contested_account_waits(strict_app: Flask) -> None:
    # The price of counting failures from every client: an account without a second
    # factor is held off by many clients' failures. Its right password then gets the same
    # answer as a wrong one, so a guesser learns nothing from it.
    make_account(strict_app, "dara")
    for i in range(3):
        stranger = client_at(strict_app, f"198.51.100.{i}")
        for _ in range(2):
            login(stranger, "dara", WRONG)
    owner = client_at(strict_app, "192.0.2.10")
    right, wrong = login(owner, "dara"), login(owner, "dara", WRONG)
    assert right.status_code == wrong.status_code == 429
    assert "too many failures from many clients" in throttle_events(strict_app, "dara")


def test_per_client_throttle_is_recorded(strict_app: Flask) -> None:
    make_account(strict_app, "sokha")
    client = client_at(strict_app, "198.51.100.1")
    answers = [login(client, name, WRONG).status_code for name in ("a", "b", "c", "d", "sokha")]
    assert answers == [401, 401, 401, 401, 429]
    assert throttle_events(strict_app, "sokha") == ["too many attempts from one client"]


def test_login_throttles_are_shared_on_redis_and_fall_back_without_it(
    tmp_path: Path, database_url: str
) -> None:
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    overrides: dict[str, Any] = {
        "ratelimit_storage_uri": redis.url,
        "ratelimit_login": "100 per minute",
        "ratelimit_login_account": "3 per minute",
        "ratelimit_login_account_all": "100 per minute",
    }
    workers = [
        make_app(tmp_path, database_url, **overrides),
        create_app(make_config(tmp_path, database_url, **overrides)),
    ]
    try:
        make_account(workers[0], "sokha")
        # One client, its failures answered by two workers in turn: one count.
        answers = [
            login(client_at(workers[i % 2], "198.51.100.1"), "sokha", WRONG).status_code
            for i in range(4)
        ]
        assert answers == [401, 401, 401, 429]
        everything = redis.dump_everything()
        assert b"login-account:" in everything and b"login-client:" in everything
        for needle in (b"sokha", b"198.51.100"):
            assert needle not in everything, needle
        redis.stop()
        # Without Redis, each worker counts in its own memory: never open, never a 500.
        client = client_at(workers[0], "198.51.100.2")
        client.get("/admin/login")  # the pages' limiter notices Redis is gone
        fallback = [login(client, "sokha", WRONG).status_code for _ in range(4)]
        assert fallback == [401, 401, 401, 429]
    finally:
        redis.stop()
        for worker in workers:
            services(worker).engine.dispose()


# --- one code, one login (found by reading) -----------------------------------------------


def test_one_totp_code_logs_in_once_even_at_the_same_moment(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two workers (two apps on one database) check the same code at the same moment: both
    # have matched it against the same last step before either writes.
    workers = [make_app(tmp_path, database_url), create_app(make_config(tmp_path, database_url))]
    make_account(workers[0], "sokha")
    secret = enrol(workers[0], "sokha")
    both_matched = threading.Barrier(2)
    matching_step = totp.matching_step

    def in_step(*args: Any) -> int | None:
        found = matching_step(*args)
        both_matched.wait(timeout=20)
        return found

    code = totp.totp(secret, time.time())
    clients = [admin_client(worker) for worker in workers]
    forms = []
    for client in clients:
        token = CSRF.search(client.get("/admin/login").get_data(as_text=True))
        assert token
        forms.append({"csrf": token.group(1), "name": "sokha", "password": PASSWORD, "code": code})
    monkeypatch.setattr(totp, "matching_step", in_step)

    def post(i: int) -> int:
        return clients[i].post("/admin/login", data=forms[i]).status_code

    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = sorted(pool.map(post, range(2)))
    for worker in workers:
        services(worker).engine.dispose()
    assert statuses == [302, 401]


# --- the second factor (item 9) -----------------------------------------------------------


def start_totp(client: FlaskClient) -> tuple[str, bytes]:
    page = client.post("/admin/me/totp/start", data={"csrf": csrf_of(client, "/admin/me")})
    found = re.search(r'name="secret" value="([A-Z2-7 ]+)"', page.get_data(as_text=True))
    assert found
    return found.group(1), totp.parse_secret_text(found.group(1))


def test_enrolling_asks_for_the_password(app: Flask) -> None:
    make_account(app, "sokha")
    client = admin_client(app)
    login(client, "sokha")
    text, secret = start_totp(client)
    csrf = csrf_of(client, "/admin/me")
    code = totp.totp(secret, time.time())
    for password in ("", WRONG):
        answer = client.post(
            "/admin/me/totp/enable",
            data={"csrf": csrf, "secret": text, "code": code, "current": password},
        )
        assert answer.status_code == 400
        assert "The current password is wrong." in answer.get_data(as_text=True)
    assert stored_secret(app, "sokha") is None
    answer = client.post(
        "/admin/me/totp/enable",
        data={"csrf": csrf, "secret": text, "code": code, "current": PASSWORD},
    )
    assert answer.status_code == 302 and stored_secret(app, "sokha") is not None


def test_replacing_or_removing_the_second_factor_asks_for_its_code(app: Flask) -> None:
    make_account(app, "sokha")
    old_secret = enrol(app, "sokha")
    client = admin_client(app)
    now = time.time()
    assert (
        login(client, "sokha", code=totp.totp(old_secret, now - totp.STEP_SECONDS)).status_code
        == 302
    )
    enrolled = stored_secret(app, "sokha")
    me = client.get("/admin/me").get_data(as_text=True)
    assert 'name="current_code"' in me and "Move to a new app" in me

    # A stolen session cookie and the password, without the current app: refused.
    text, new_secret = start_totp(client)
    csrf = csrf_of(client, "/admin/me")
    form = {"csrf": csrf, "secret": text, "code": totp.totp(new_secret, now), "current": PASSWORD}
    for current_code in ("", "000000"):
        answer = client.post("/admin/me/totp/enable", data={**form, "current_code": current_code})
        assert answer.status_code == 400
        assert "current authenticator app is wrong" in answer.get_data(as_text=True)
    refused = client.post(
        "/admin/me/totp/disable", data={"csrf": csrf, "current": PASSWORD, "current_code": ""}
    )
    assert refused.status_code == 400
    assert stored_secret(app, "sokha") == enrolled

    # With a fresh code from the current app, the new one replaces it.
    replaced = client.post(
        "/admin/me/totp/enable", data={**form, "current_code": totp.totp(old_secret, now)}
    )
    assert replaced.status_code == 302
    assert stored_secret(app, "sokha") not in (None, enrolled)
    # Removing it asks for a code of the app now enrolled.
    off = client.post(
        "/admin/me/totp/disable",
        data={
            "csrf": csrf,
            "current": PASSWORD,
            "current_code": totp.totp(new_secret, now + totp.STEP_SECONDS),
        },
    )
    assert off.status_code == 302 and stored_secret(app, "sokha") is None
    actions = [action for actor, action, *_ in events(app) if actor == "sokha"]
    assert actions.count("totp-enable") == 1 and actions.count("totp-disable") == 1


# --- what an organiser may learn (items 8 and 10) -----------------------------------------


def test_dashboards_do_not_move_before_a_batch_is_sealed(app: Flask) -> None:
    make_account(app, "sokha")
    add_petition(app)
    engine = services(app).engine
    seal_all(engine, services(app).vault)
    client = admin_client(app)
    login(client, "sokha")
    pages = ("/admin/", "/admin/p/free-them")
    before = [client.get(path).get_data(as_text=True) for path in pages]
    assert sign(app.test_client(), "free-them", identifier="012 345 678").status_code == 200
    # Nothing an organiser sees tells that someone just signed…
    assert [client.get(path).get_data(as_text=True) for path in pages] == before
    # …until the batch is sealed into the log, as anyone can see in its checkpoints.
    seal_all(engine, services(app).vault)
    assert "1 signatures counted" in client.get(pages[1]).get_data(as_text=True)


def test_a_taken_slug_gets_one_answer_whoever_holds_it(app: Flask) -> None:
    add_petition(app, slug="alices")
    add_petition(app, slug="bobs-draft", status="draft")
    make_account(app, "alice", "organiser")
    make_account(app, "bob", "organiser")
    give(app, "alice", "alices")
    give(app, "bob", "bobs-draft")
    alice = admin_client(app)
    login(alice, "alice")
    csrf = csrf_of(alice)
    bodies = {}
    for slug in ("alices", "bobs-draft"):
        answer = alice.post("/admin/new", data=draft_form(csrf, slug))
        assert answer.status_code == 400, slug
        bodies[slug] = answer.get_data(as_text=True)
        assert "This slug cannot be used. Choose another." in bodies[slug]
        assert "exist" not in bodies[slug]
    # The two pages differ in the slug typed, and in nothing else.
    assert bodies["alices"].replace("alices", "S") == bodies["bobs-draft"].replace(
        "bobs-draft", "S"
    )
    with pytest.raises(SlugUnavailable):
        with app.app_context():
            make_draft(slug="alices")


# --- the deadline (item 13) ---------------------------------------------------------------


def make_draft(
    slug: str = "dated", closes_on: dt.date | None = None, today: dt.date | None = None
) -> Petition:
    return create_petition(
        get_session(),
        vault=services(current_app).vault,
        origin=ORIGIN,
        slug=slug,
        texts=TEXTS,
        goal=10,
        identifier_mode="phone",
        details_public_key=generate_details_keypair()[1],
        argon2=CHEAP_ARGON2,
        closes_on=closes_on,
        today=today,
    )


def test_a_closing_date_in_the_past_is_refused_by_the_service(app: Flask) -> None:
    today = dt.date(2026, 3, 8)
    with app.app_context():
        with pytest.raises(ClosingDateInPast, match="2026-03-07 is in the past"):
            make_draft(closes_on=dt.date(2026, 3, 7), today=today)
        petition = make_draft(closes_on=today, today=today)
        form = parse_draft_form(
            {"goal": "10", "en-title": "t", "en-body": "b", "identifier_mode": "phone",
             "verification_mode": "none", "closes_on": "2026-03-07"},
            None, new=False, today=dt.date(2026, 3, 1),
        )  # fmt: skip
        assert not form.errors, form.errors
        with pytest.raises(ClosingDateInPast):
            update_draft(get_session(), petition, form, today)


def test_cli_refuses_a_closing_date_in_the_past(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps(TEXTS), encoding="utf-8")
    key = tmp_path / "details.pub"
    key.write_text(base64.b64encode(generate_details_keypair()[1]).decode())
    yesterday = utc_today() - dt.timedelta(days=1)
    args = ["petition", "create", "dated", "--texts", str(texts), "--goal", "10",
            "--identifier", "phone", "--details-key", str(key), "--closes"]  # fmt: skip
    refused = runner.invoke(args=[*args, yesterday.isoformat()])
    assert refused.exit_code != 0
    assert f"the closing date {yesterday.isoformat()} is in the past" in refused.output
    with app.app_context():
        assert get_session().scalar(select(Petition.id)) is None
    accepted = runner.invoke(args=[*args, utc_today().isoformat()])
    assert accepted.exit_code == 0, accepted.output
    # A draft whose date passed since is not opened, from the command line or the admin.
    with app.app_context():
        session = get_session()
        get_petition(session, "dated").closes_on = yesterday
        session.commit()
    opened = runner.invoke(args=["petition", "open", "dated"])
    assert opened.exit_code != 0 and "is in the past" in opened.output
    make_account(app, "sokha")
    client = admin_client(app)
    login(client, "sokha")
    assert client.post("/admin/p/dated/open", data={"csrf": csrf_of(client)}).status_code == 409
    assert status_of(app, "dated") == "draft"


# --- the audit trail (item 12) ------------------------------------------------------------


def test_command_line_actions_are_in_the_audit_trail(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    cli_create(runner, tmp_path)
    assert runner.invoke(args=["petition", "open", "cli-made"]).exit_code == 0
    assert sign(app.test_client(), "cli-made", identifier="012345678").status_code == 200
    assert runner.invoke(args=["seal"]).exit_code == 0
    assert runner.invoke(args=["petition", "close", "cli-made"]).exit_code == 0
    details = tmp_path / "details.bin"
    result = runner.invoke(args=["export-details", "cli-made", str(details)])
    assert result.exit_code == 0, result.output
    assert runner.invoke(args=["petition", "forget", "cli-made", "--yes"]).exit_code == 0
    trail = [e for e in events(app) if e[0] == "(command line)"]
    assert trail == [
        ("(command line)", "create", "cli-made", ""),
        ("(command line)", "open", "cli-made", ""),
        ("(command line)", "close", "cli-made", "by command"),
        ("(command line)", "export-details", "cli-made", "1 sealed records"),
        ("(command line)", "forget", "cli-made", "1 tokens destroyed"),
    ]
    # A refused command leaves no event.
    assert runner.invoke(args=["petition", "close", "cli-made"]).exit_code != 0
    assert len([e for e in events(app) if e[0] == "(command line)"]) == 5


# --- a login flood and signing (found by reading) -----------------------------------------


def test_a_burst_of_logins_neither_blocks_signing_nor_fails(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Password hashes that take a while: if logins took signing's one slot, a signature
    # would wait behind several of them and be shed after SAMLENG_ARGON2_WAIT.
    monkeypatch.setattr(passwords, "PASSWORD_ARGON2", Argon2Params(time_cost=3, memory_kib=65536))
    unlimited = "100000 per minute"
    app = make_app(
        tmp_path,
        database_url,
        argon2_concurrency=1,
        argon2_wait=0.5,
        ratelimit_login=unlimited,
        ratelimit_login_account=unlimited,
        ratelimit_login_account_all=unlimited,
    )
    add_petition(app)
    make_account(app, "sokha")
    stop = threading.Event()
    answers: list[tuple[int, str | None]] = []

    def flood(i: int) -> None:
        client = client_at(app, f"198.51.100.{i}")
        while not stop.is_set():
            answer = login(client, "sokha", WRONG)
            answers.append((answer.status_code, answer.headers.get("Retry-After")))

    with ThreadPoolExecutor(max_workers=6) as pool:
        floods = [pool.submit(flood, i) for i in range(6)]
        time.sleep(0.3)
        signed = [
            sign(app.test_client(), "free-them", identifier=f"012 345 {600 + i:03d}").status_code
            for i in range(20)
        ]
        stop.set()
        for running in floods:
            running.result()
    services(app).engine.dispose()
    assert signed == [200] * 20
    statuses = {status for status, _ in answers}
    assert statuses <= {401, 503}, statuses
    # Logins beyond the one password slot are shed at once, and told when to come back.
    assert 503 in statuses and 401 in statuses
    assert all(retry for status, retry in answers if status == 503)
