"""``samleng admin``: accounts from the command line (the first admin, automation)."""

from __future__ import annotations

import secrets
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.orm import Session

from samleng.service.admin import accounts, logins
from samleng.service.admin.errors import AccountError, PasswordPolicyError
from samleng.service.petitions import organisations as orgs
from samleng.service.platform import trail
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.errors import OrganisationError
from samleng.service.platform.models import Account

admin_group = AppGroup("admin", help="Accounts of the organisers' admin.")

DEMO_ADMIN = "admin"


@admin_group.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "organiser"]), required=True)
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Read the password from the first line of FILE (automation) instead of asking.",
)
@click.option(
    "--org",
    "organisation",
    default="",
    help="The handle of the organisation it acts for (`samleng org add`).",
)
def create_command(name: str, role: str, password_file: Path | None, organisation: str) -> None:
    """Create the account NAME with ROLE; asks for its password twice."""
    session = get_session()
    try:
        acts_for = orgs.named_organisation(session, organisation) if organisation else None
    except OrganisationError as exc:
        raise click.ClickException(str(exc)) from None
    if password_file is not None:
        lines = password_file.read_text(encoding="utf-8").splitlines()
        password = lines[0] if lines else ""
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        account = accounts.create_account(session, name, role, password)
    except (AccountError, PasswordPolicyError) as exc:
        raise click.ClickException(str(exc)) from None
    orgs.set_account_organisation(session, account, acts_for)
    of = f", {acts_for.handle}" if acts_for else ""
    trail.record(
        session, trail.COMMAND_LINE_ACTOR, "create-account", detail=f"{account.name} ({role}{of})"
    )
    session.commit()
    click.echo(
        f"created {role} account {account.name}{' of ' + acts_for.handle if acts_for else ''}"
    )


@admin_group.command("set-org")
@click.argument("name")
@click.argument("handle", required=False, default="")
def set_org_command(name: str, handle: str) -> None:
    """Let account NAME act for organisation HANDLE (no HANDLE: for none)."""
    session = get_session()
    account = accounts.find_account(session, name)
    if account is None:
        raise click.ClickException(f"no account named {name!r}")
    try:
        organisation = orgs.named_organisation(session, handle) if handle else None
    except OrganisationError as exc:
        raise click.ClickException(str(exc)) from None
    orgs.set_account_organisation(session, account, organisation)
    to = organisation.handle if organisation else "(none)"
    trail.record(
        session, trail.COMMAND_LINE_ACTOR, "account-organisation", detail=f"{account.name}: {to}"
    )
    session.commit()
    click.echo(f"account {account.name} acts for {to}")


@admin_group.command("reset-password")
@click.argument("name")
@click.option(
    "--reset-totp", is_flag=True, help="Also remove the authenticator (the organiser lost it)."
)
def reset_password_command(name: str, reset_totp: bool) -> None:
    """Give NAME a one-time password, to be changed at the next login; end its sessions."""
    session = get_session()
    account = accounts.find_account(session, name)
    if account is None:
        raise click.ClickException(f"no account named {name!r}")
    password = accounts.reset_password(session, account, reset_totp=reset_totp)
    logins.end_all_sessions(session, account)
    detail = account.name + (" and its authenticator" if reset_totp else "")
    trail.record(session, trail.COMMAND_LINE_ACTOR, "reset-password", detail=detail)
    session.commit()
    click.echo(f"one-time password for {account.name}: {password}")
    click.echo(
        "give it to them in person or over a channel you trust; they must choose a new "
        "password when they log in"
        + ("" if reset_totp else ", and still need their authenticator app")
    )


def ensure_demo_admin(session: Session) -> str | None:
    """Create the demo's admin account if no account exists; its generated password, once.

    The password is returned to be printed, never stored: only its Argon2id hash is.
    """
    if session.scalar(select(Account.id).limit(1)) is not None:
        return None
    password = secrets.token_urlsafe(15)
    accounts.create_account(session, DEMO_ADMIN, "admin", password)
    trail.record(session, "(demo)", "create-account", detail=f"{DEMO_ADMIN} (admin)")
    session.commit()
    return password


COMMANDS: tuple[click.Command, ...] = (admin_group,)


def init_app(app: Flask) -> None:
    """Add these commands to ``app``'s command line."""
    for command in COMMANDS:
        app.cli.add_command(command)
