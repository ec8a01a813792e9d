"""``samleng export`` and ``export-details``: a petition's public bundle and its sealed
details, registered on the app by ``init_app`` (and listed by the ``samleng`` entry point)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext

from samleng.crypto.bundle import verify_bundle
from samleng.crypto.errors import Error as CryptoError
from samleng.service.platform.commands import named_petition, record_command
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.errors import Error
from samleng.service.tlog.delivery import FormalLetter
from samleng.service.tlog.export import write_bundle, write_details


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
    petition = named_petition(slug)
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
    petition = named_petition(slug)
    try:
        records = write_details(get_session(), petition, file)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from None
    # Who took the sealed details, and when, is what the organisers' key holders must be
    # able to check; the file's name is left out (it may name a person's machine).
    record_command("export-details", petition, f"{records} sealed records")
    get_session().commit()
    click.echo(f"wrote {records} sealed records to {file}")


COMMANDS: tuple[click.Command, ...] = (export_command, export_details_command)


def init_app(app: Flask) -> None:
    """Add these commands to ``app``'s command line."""
    for command in COMMANDS:
        app.cli.add_command(command)
