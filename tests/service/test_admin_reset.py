"""Account recovery: ``samleng admin reset-password`` gives a one-time password that is good
for nothing but choosing a new one, ends the account's sessions, and is in the audit trail."""

from __future__ import annotations

import re

from flask import Flask
from sqlalchemy import select

from samleng.service.admin import totp
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import Account, AdminSession
from tests.conftest import MASTER_KEY
from tests.service.test_admin import (
    PASSWORD,
    admin_client,
    cheap_passwords,  # noqa: F401 - the autouse fixture, for this module too
    csrf_of,
    events,
    login,
    make_account,
)

ONE_TIME = re.compile(r"one-time password for sokha: (\S+)")


def reset(app: Flask, *args: str) -> str:
    result = app.test_cli_runner().invoke(args=["admin", "reset-password", "sokha", *args])
    assert result.exit_code == 0, result.output
    found = ONE_TIME.search(result.output)
    assert found, result.output
    return found.group(1)


def test_a_reset_password_must_be_changed_before_anything_else(app: Flask) -> None:
    make_account(app, "sokha")
    before = admin_client(app)
    assert login(before, "sokha").status_code == 302
    one_time = reset(app)
    # Every session of the account ended; the old password is gone.
    assert before.get("/admin/").status_code == 302
    with app.app_context():
        assert get_session().scalars(select(AdminSession)).all() == []
    assert login(admin_client(app), "sokha").status_code == 401
    client = admin_client(app)
    assert login(client, "sokha", one_time).status_code == 302
    for path in ("/admin/", "/admin/accounts", "/admin/audit"):
        answer = client.get(path)
        assert answer.status_code == 302 and answer.headers["Location"].endswith("/admin/me")
    page = client.get("/admin/me").get_data(as_text=True)
    assert "Your password was reset by an operator" in page
    new = "a brand new passphrase of mine"
    changed = client.post(
        "/admin/me/password",
        data={"csrf": csrf_of(client, "/admin/me"), "current": one_time, "new": new, "repeat": new},
    )
    assert changed.status_code == 302
    assert client.get("/admin/").status_code == 200
    with app.app_context():
        assert not get_session().scalars(select(Account.must_change_password)).one()
    assert ("(command line)", "reset-password", None, "sokha") in events(app)
    # The one-time password works once: it is no longer the password.
    assert login(admin_client(app), "sokha", one_time).status_code == 401


def test_the_authenticator_is_removed_only_when_asked(app: Flask) -> None:
    make_account(app, "sokha")
    with app.app_context():
        session = get_session()
        account = session.scalars(select(Account)).one()
        account.wrapped_totp_secret = totp.wrap_secret(MASTER_KEY, totp.new_secret(), account.id)
        session.commit()
    one_time = reset(app)
    with app.app_context():
        assert get_session().scalars(select(Account.wrapped_totp_secret)).one() is not None
    # Still asks for the code: without it the login fails like any wrong one.
    assert login(admin_client(app), "sokha", one_time).status_code == 401
    one_time = reset(app, "--reset-totp")
    with app.app_context():
        assert get_session().scalars(select(Account.wrapped_totp_secret)).one() is None
    assert login(admin_client(app), "sokha", one_time).status_code == 302
    assert ("(command line)", "reset-password", None, "sokha and its authenticator") in events(app)


def test_an_unknown_account_is_refused(app: Flask) -> None:
    make_account(app, "sokha")
    result = app.test_cli_runner().invoke(args=["admin", "reset-password", "nobody"])
    assert result.exit_code == 1 and "no account named 'nobody'" in result.output
    assert login(admin_client(app), "sokha", PASSWORD).status_code == 302
