"""The ``samleng`` command line: a Flask CLI group with the operator's commands."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, ScriptInfo, with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from samleng.crypto.bundle import verify_bundle
from samleng.crypto.errors import Error as CryptoError
from samleng.service import demo as demo_module
from samleng.service.petitions.lifecycle import (
    close_petition,
    create_petition,
    forget_petition,
    get_petition,
    open_petition,
    parse_details_public_key,
)
from samleng.service.petitions.scheduler import close_expired_petitions, destroy_forgotten_keys
from samleng.service.platform import trail
from samleng.service.platform.config import Config, instance_folder
from samleng.service.platform.db import get_session, scrub
from samleng.service.platform.errors import ConfigError, Error, PetitionNotFound, SlugUnavailable
from samleng.service.platform.models import Petition
from samleng.service.platform.vault import Vault
from samleng.service.tlog.delivery import FormalLetter
from samleng.service.tlog.export import write_bundle, write_details
from samleng.service.tlog.store import seal_all


def _config() -> Config:
    cfg: Config = current_app.extensions["samleng.config"]
    return cfg


def _vault() -> Vault:
    vault: Vault = current_app.extensions["samleng.vault"]
    return vault


def read_details_public_key(path: Path) -> bytes:
    """Read an organiser's details public key: one line of base64 of the raw 32-byte key."""
    try:
        return parse_details_public_key(path.read_text(encoding="ascii"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"{path}: {exc}") from None


petition_group = AppGroup("petition", help="Create petitions and move them through their life.")


@petition_group.command("create")
@click.argument("slug")
@click.option(
    "--texts",
    "texts_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help='JSON file: {"km": {"title", "target", "summary", "body"}, "en": {...}}',
)
@click.option("--goal", type=click.IntRange(min=1), required=True)
@click.option("--identifier", type=click.Choice(["email", "phone", "none"]), required=True)
@click.option(
    "--details-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The organisers' details public key (base64 of the raw X25519 key).",
)
@click.option("--verification", type=click.Choice(["none", "email"]), default="none")
@click.option("--region", default="KH", show_default=True, help="Default region for phones.")
@click.option("--closes", type=click.DateTime(formats=["%Y-%m-%d"]), default=None)
def petition_create(
    slug: str,
    texts_file: Path,
    goal: int,
    identifier: str,
    details_key: Path,
    verification: str,
    region: str,
    closes: dt.datetime | None,
) -> None:
    """Create a draft petition SLUG."""
    cfg = _config()
    try:
        texts = json.loads(texts_file.read_text(encoding="utf-8"))
        petition = create_petition(
            get_session(),
            vault=_vault(),
            origin=cfg.origin,
            slug=slug,
            texts=texts,
            goal=goal,
            identifier_mode=identifier,
            verification_mode=verification,
            region=region.upper(),
            details_public_key=read_details_public_key(details_key),
            argon2=cfg.argon2,
            closes_on=closes.date() if closes else None,
        )
    except SlugUnavailable:
        # The operator may know what the admin keeps from organisers.
        raise click.ClickException(f"a petition with slug {slug!r} already exists") from None
    except (ValueError, json.JSONDecodeError) as exc:
        raise click.ClickException(str(exc)) from None
    _record("create", petition)
    get_session().commit()
    click.echo(f"created draft petition {petition.slug} ({petition.origin})")


def _petition(slug: str) -> Petition:
    """The petition SLUG, or a clear command-line error."""
    try:
        return get_petition(get_session(), slug)
    except PetitionNotFound:
        raise click.ClickException(f"no petition with slug {slug!r}") from None


def _record(action: str, petition: Petition, detail: str = "") -> None:
    """Add what the operator did to the audit trail, committed with the change itself."""
    trail.record(
        get_session(), trail.COMMAND_LINE_ACTOR, action, petition_slug=petition.slug, detail=detail
    )


def _lifecycle(slug: str, action: Any, done: str, name: str, detail: str = "") -> None:
    session = get_session()
    petition = _petition(slug)
    try:
        result = action(session, petition)
    except Error as exc:
        raise click.ClickException(str(exc)) from None
    _record(name, petition, detail.format(result=result))
    session.commit()
    click.echo(done.format(slug=slug, result=result))


@petition_group.command("open")
@click.argument("slug")
def petition_open(slug: str) -> None:
    """Open petition SLUG for signing (its texts are frozen)."""
    vault = _vault()
    _lifecycle(slug, lambda s, p: open_petition(s, p, vault), "petition {slug} is open", "open")


@petition_group.command("close")
@click.argument("slug")
def petition_close(slug: str) -> None:
    """Stop accepting signatures for SLUG."""
    _lifecycle(slug, close_petition, "petition {slug} is closed", "close", "by command")


@petition_group.command("forget")
@click.argument("slug")
@click.option("--yes", is_flag=True, help="Do not ask for the slug to be typed again.")
def petition_forget(slug: str, yes: bool) -> None:
    """Destroy the dedup key and tokens of closed petition SLUG. Cannot be undone."""
    if not yes:
        typed = click.prompt(f"Type the slug ({slug}) to destroy its dedup key and tokens")
        if typed != slug:
            raise click.ClickException("the slug did not match; nothing was changed")
    vault, engine = _vault(), current_app.extensions["samleng.engine"]
    # Whatever still waits is sealed first: its dedup token is still to be checked.
    seal_all(engine, vault)
    key_file = _petition(slug).dedup_key_file
    _lifecycle(
        slug,
        lambda s, p: forget_petition(s, p, vault),
        "petition {slug} is forgotten ({result} tokens destroyed)",
        "forget",
        "{result} tokens destroyed",
    )
    for problem in scrub(engine):
        click.echo(f"warning: {problem}", err=True)
    if key_file is not None:
        click.echo(
            f"its key file {key_file}.key is destroyed; copies of it in backups of the "
            "instance's keys made before now would still open the tokens in database backups "
            "made before now: destroy those key backups"
        )


@click.command("seal")
@click.option("--watch", is_flag=True, help="Keep sealing every SAMLENG_SEAL_INTERVAL seconds.")
@with_appcontext
def seal_command(watch: bool) -> None:
    """Seal pending signatures into the logs and sign new checkpoints."""
    cfg = _config()
    engine = current_app.extensions["samleng.engine"]
    interval = max(cfg.seal_interval, 1)
    while True:
        try:
            for slug in close_expired_petitions(engine):
                click.echo(f"closed {slug}: its deadline has passed")
            sealed = seal_all(engine, _vault())
            destroy_forgotten_keys(engine, _vault())
            if not watch:
                # Not with --watch: in the journal, with its timestamps, these lines would
                # date each batch to the second.
                for slug in sealed:
                    click.echo(f"sealed {slug}")
        except (SQLAlchemyError, CryptoError, Error, OSError) as exc:
            if not watch:
                raise click.ClickException(f"sealing failed: {type(exc).__name__}") from None
            # The batch rolled back whole; its signatures stay pending for the next round.
            click.echo(f"sealing failed ({type(exc).__name__}); retrying", err=True)
        if not watch:
            return
        time.sleep(interval)


@click.command("export")
@click.argument("slug")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--no-pdf", is_flag=True, help="Leave out delivery.pdf.")
@click.option(
    "--formal",
    metavar="SENDER",
    help="Put a formal covering letter first in delivery.pdf, sent by SENDER (the "
    "organisations, as they sign it): motto, subject, salutation, closing formula.",
)
@click.option("--place", default="ភ្នំពេញ", show_default=True, help="Where the letter is made.")
@click.option(
    "--date",
    "letter_date",
    type=click.DateTime(["%Y-%m-%d"]),
    help="The letter's date (YYYY-MM-DD); today (UTC) when not given.",
)
@with_appcontext
def export_command(
    slug: str,
    directory: Path,
    no_pdf: bool,
    formal: str | None,
    place: str,
    letter_date: dt.datetime | None,
) -> None:
    """Write the public, verifiable bundle of petition SLUG to DIRECTORY, and verify it.

    When delivery.pdf cannot be made, the rest of the bundle is still written and verified,
    and the command says what is missing and exits with status 1. With --formal, delivery.pdf
    opens with the covering letter a Cambodian ministry expects (the public bundle.zip keeps
    the plain document).
    """
    petition = _petition(slug)
    letter = None
    if formal is not None:
        if no_pdf:
            raise click.BadParameter("--formal puts a letter in delivery.pdf: not with --no-pdf")
        if not formal.strip() or not place.strip():
            raise click.BadParameter("the sender and the place may not be empty")
        when = letter_date.date() if letter_date else dt.datetime.now(dt.UTC).date()
        letter = FormalLetter(sender=formal.strip(), place=place.strip(), date=when)

    def progress(done: int, total: int) -> None:
        click.echo(f"  leaves {done}/{total}", err=True)

    try:
        written = write_bundle(
            get_session(), petition, directory, progress, delivery=not no_pdf, letter=letter
        )
    except (Error, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {directory} (log size {written.size})")
    try:
        report = verify_bundle(directory)
    except CryptoError as exc:
        raise click.ClickException(f"the bundle written does not verify: {exc}") from None
    click.echo(
        f"verified: count {report.count}; anyone can check it with: "
        f"samleng-audit verify {directory}"
    )
    if written.delivery_error is not None:
        raise click.ClickException(
            f"{written.delivery_error}; the bundle was written and verified without "
            "delivery.pdf: fix that and export again, or export with --no-pdf"
        )


@click.command("export-details")
@click.argument("slug")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def export_details_command(slug: str, file: Path) -> None:
    """Write the sealed details of petition SLUG for the organisers' key holder."""
    petition = _petition(slug)
    try:
        records = write_details(get_session(), petition, file)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from None
    # Who took the sealed details, and when, is what the organisers' key holders must be
    # able to check; the file's name is left out (it may name a person's machine).
    _record("export-details", petition, f"{records} sealed records")
    get_session().commit()
    click.echo(f"wrote {records} sealed records to {file}")


keys_group = click.Group("keys", help="The instance's secrets.")


@keys_group.command("tidy")
@with_appcontext
def keys_tidy() -> None:
    """Destroy this machine's key files of forgotten petitions (run on every app server
    after a forget; the sealer does it each round on its own machine)."""
    for name in destroy_forgotten_keys(current_app.extensions["samleng.engine"], _vault()):
        click.echo(f"destroyed {name}.key")


@keys_group.command("generate")
def keys_generate() -> None:
    """Create the master key file in the instance folder (never overwrites one)."""
    from samleng.service.platform.keys import ensure_master_key

    instance = instance_folder()
    if ensure_master_key(instance):
        click.echo(f"created {instance / 'master.key'} (mode 0600); back it up offline")
    else:
        click.echo(f"{instance / 'master.key'} exists; left unchanged")


def _app_commands() -> list[click.Command]:
    from samleng.service.admin.cli import admin_group

    return [petition_group, seal_command, export_command, export_details_command, admin_group]


def register(app: Flask) -> None:
    """Add the commands that need the app to its CLI."""
    for command in _app_commands():
        app.cli.add_command(command)


def _create_app() -> Flask:
    from samleng.service.app import create_app

    try:
        return create_app()
    except ConfigError as exc:
        click.echo(f"samleng: {exc}", err=True)
        sys.exit(2)


# A plain group with every command in it, rather than Flask's FlaskGroup: listing the commands
# (``samleng --help``) then needs no settings, and Flask's own options and the groups that
# extensions add to app.cli stay out of the operator's way. A command that needs the app
# builds it when it runs (with_appcontext, through the ScriptInfo that main() passes).
cli = click.Group(
    "samleng",
    help="Samleng: anonymous petitions with verifiable counts.\n\n"
    "Settings come from SAMLENG_* variables and the instance folder's config.toml "
    "(SAMLENG_INSTANCE, by default ./instance); see README.md.",
)
for _command in (keys_group, demo_module.demo_command, *_app_commands()):
    cli.add_command(_command)


def main() -> None:
    """Entry point of the ``samleng`` console script."""
    cli.main(prog_name="samleng", obj=ScriptInfo(create_app=_create_app, set_debug_flag=False))
