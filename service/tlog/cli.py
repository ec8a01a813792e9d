"""``samleng export``, ``export-details`` and ``witness``: a petition's public bundle, its
sealed details and its witnesses, registered on the app by ``init_app`` (and listed by the
``samleng`` entry point)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext
from sqlalchemy.orm import Session

from samleng.crypto.bundle import BundleCheck, verify_bundle
from samleng.crypto.errors import BundleError
from samleng.crypto.errors import Error as CryptoError
from samleng.service.platform.commands import named_petition, record_command
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.errors import Error
from samleng.service.platform.models import Petition
from samleng.service.tlog.delivery import FormalLetter
from samleng.service.tlog.export import write_bundle, write_details
from samleng.service.tlog.store import latest_signed_checkpoint
from samleng.service.tlog.witnesses import (
    add_witness,
    remove_witness,
    resume,
    set_quorum,
    witnesses_of,
)


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
    except BundleError as exc:
        if exc.check is BundleCheck.WITNESS_QUORUM:
            raise click.ClickException(
                f"the bundle was written, but its final checkpoint is not witnessed yet: {exc}. "
                "The witnesses cosign each checkpoint within moments of the seal unless one is "
                "down (`samleng witness list` says); export again once they have"
            ) from None
        raise click.ClickException(f"the bundle written does not verify: {exc}") from None
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


witness_group = AppGroup("witness", help="Name the witnesses that cosign a petition's checkpoints.")


def _witness_change(slug: str, action: str, change: Callable[[Session, Petition], str]) -> None:
    session = get_session()
    petition = named_petition(slug)
    try:
        detail = change(session, petition)
    except Error as exc:
        raise click.ClickException(str(exc)) from None
    record_command(action, petition, detail)
    session.commit()


@witness_group.command("add")
@click.argument("slug")
@click.option("--name", required=True, help="Its name in the petition's policy, e.g. lichadho.")
@click.option("--url", required=True, help="Its add-checkpoint prefix (http(s), may be .onion).")
@click.option("--vkey", required=True, help="Its cosignature verifier key (name+id+key).")
def witness_add(slug: str, name: str, url: str, vkey: str) -> None:
    """Ask a witness to cosign the checkpoints of petition SLUG."""

    def add(session: Session, petition: Petition) -> str:
        witness = add_witness(session, petition, name=name, url=url, vkey=vkey)
        if witness.frozen:
            click.echo(f"witness {name} added; it is frozen into the policy when {slug} opens")
        else:
            click.echo(
                f"witness {name} added; {slug} is open already, so it is asked to cosign but "
                "is not part of the frozen policy that verifiers require"
            )
        return f"{name} {url}"

    _witness_change(slug, "witness-add", add)


@witness_group.command("remove")
@click.argument("slug")
@click.argument("name")
def witness_remove(slug: str, name: str) -> None:
    """Stop asking witness NAME (its cosignatures so far stay published)."""

    def remove(session: Session, petition: Petition) -> str:
        remove_witness(session, petition, name)
        click.echo(f"witness {name} is no longer asked to cosign {slug}")
        return name

    _witness_change(slug, "witness-remove", remove)


@witness_group.command("quorum")
@click.argument("slug")
@click.argument("quorum", type=click.IntRange(min=1))
def witness_quorum(slug: str, quorum: int) -> None:
    """Set how many witnesses must cosign (a draft only; all of them when never set)."""

    def change(session: Session, petition: Petition) -> str:
        set_quorum(session, petition, quorum)
        click.echo(f"{slug}: a checkpoint needs {quorum} witness cosignature(s)")
        return str(quorum)

    _witness_change(slug, "witness-quorum", change)


@witness_group.command("resume")
@click.argument("slug")
def witness_resume(slug: str) -> None:
    """Publish checkpoints again after a split-view alert you have looked into."""

    def change(session: Session, petition: Petition) -> str:
        reason = resume(petition)
        if reason is None:
            click.echo(f"{slug} was publishing checkpoints; nothing changed")
        else:
            click.echo(f"{slug} publishes checkpoints again (it had stopped: {reason})")
        return reason or ""

    _witness_change(slug, "witness-resume", change)


@witness_group.command("list")
@click.argument("slug")
def witness_list(slug: str) -> None:
    """List the witnesses of SLUG, what they last cosigned and any problem."""
    session = get_session()
    petition = named_petition(slug)
    state = latest_signed_checkpoint(session, petition)
    if petition.witness_halt:
        click.echo(f"STOPPED: no checkpoint is published: {petition.witness_halt}")
    for witness in witnesses_of(session, petition, removed=True):
        frozen = "in the policy" if witness.frozen else "not in the policy"
        status = "removed" if witness.removed else (witness.problem or "ok")
        click.echo(
            f"{witness.name}\t{witness.url}\t{witness.vkey}\t{frozen}\t"
            f"cosigned size {witness.known_size} of {state.size if state else 0}\t{status}"
        )
    quorum = petition.witness_quorum
    click.echo(f"quorum: {'all' if quorum is None else quorum}")


COMMANDS: tuple[click.Command, ...] = (export_command, export_details_command, witness_group)


def init_app(app: Flask) -> None:
    """Add these commands to ``app``'s command line."""
    for command in COMMANDS:
        app.cli.add_command(command)
