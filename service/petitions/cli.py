"""``samleng petition``, ``init``, ``seal`` and ``keys``: the petitions' life from the command
line, registered on the app by ``init_app`` (and listed by the ``samleng`` entry point)."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from samleng.crypto.errors import Error as CryptoError
from samleng.service.petitions import endorsements
from samleng.service.petitions import organisations as orgs
from samleng.service.petitions.lifecycle import (
    close_petition,
    create_petition,
    custody_trail,
    details_custody,
    forget_petition,
    open_petition,
    parse_details_public_key,
)
from samleng.service.petitions.scheduler import (
    SealTimer,
    Witnessing,
    close_expired_petitions,
    destroy_forgotten_keys,
    waiting_signatures,
)
from samleng.service.platform import trail
from samleng.service.platform.commands import named_petition, record_command
from samleng.service.platform.config import instance_folder
from samleng.service.platform.context import services
from samleng.service.platform.db import scrub, upgrade
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.errors import Error, OrganisationError, SlugUnavailable
from samleng.service.platform.keys import ensure_master_key
from samleng.service.platform.models import PHOTO_MODES
from samleng.service.signing.dedup import move_dedup_keys_to_files
from samleng.service.signing.formtoken import nginx_form_key_conf
from samleng.service.tlog.store import seal_all
from samleng.service.tlog.witnesses import Backoff, set_quorum, witness_round
from samleng.service.tlog.witnessing import WitnessClient


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
    "details_keys",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    multiple=True,
    help="An organisation's details public key (base64 of the raw X25519 key, from "
    "samleng-audit keygen). Repeat it for coalition custody, in share order.",
)
@click.option(
    "--threshold",
    type=click.IntRange(min=1),
    default=None,
    help="With several --details-key: how many of the organisations must agree to open "
    "the details (k of n).",
)
@click.option("--verification", type=click.Choice(["none", "email"]), default="none")
@click.option(
    "--photos",
    type=click.Choice(PHOTO_MODES),
    default="off",
    show_default=True,
    help="Photo pledges: whether signers may (optional) or must (required) add a photo of "
    "themselves, sealed with their details.",
)
@click.option("--region", default="KH", show_default=True, help="Default region for phones.")
@click.option("--closes", type=click.DateTime(formats=["%Y-%m-%d"]), default=None)
@click.option(
    "--quorum",
    type=click.IntRange(min=1),
    default=None,
    help="How many of its witnesses must cosign each checkpoint (default: all of them); "
    "name them with `samleng witness add` before opening.",
)
@click.option(
    "--org",
    "organisers",
    multiple=True,
    help="The handle of an organisation organising it (`samleng org add`); repeat it for "
    "each, in the order they are to be named.",
)
def petition_create(
    slug: str,
    texts_file: Path,
    goal: int,
    identifier: str,
    details_keys: tuple[Path, ...],
    threshold: int | None,
    verification: str,
    photos: str,
    region: str,
    closes: dt.datetime | None,
    quorum: int | None,
    organisers: tuple[str, ...],
) -> None:
    """Create a draft petition SLUG."""
    cfg = services().config
    try:
        named = [orgs.named_organisation(get_session(), handle) for handle in organisers]
        texts = json.loads(texts_file.read_text(encoding="utf-8"))
        custody = details_custody([read_details_public_key(k) for k in details_keys], threshold)
        petition = create_petition(
            get_session(),
            vault=services().vault,
            origin=cfg.origin,
            slug=slug,
            texts=texts,
            goal=goal,
            identifier_mode=identifier,
            verification_mode=verification,
            region=region.upper(),
            details_public_key=custody.public_keys[0],
            custody=custody,
            argon2=cfg.argon2,
            closes_on=closes.date() if closes else None,
            photos=photos,
        )
        set_quorum(get_session(), petition, quorum)
        orgs.set_organisers(get_session(), petition, named)
    except SlugUnavailable:
        # The operator may know what the admin keeps from organisers.
        raise click.ClickException(f"a petition with slug {slug!r} already exists") from None
    except (ValueError, json.JSONDecodeError) as exc:
        raise click.ClickException(str(exc)) from None
    custody = petition.custody()  # a petition with photos writes version 2 records
    record_command("create", petition, custody_trail(custody))
    get_session().commit()
    sealed = custody_trail(custody) or "details sealed to one key"
    if photos != "off":
        sealed += f"; photo pledges {photos}"
    click.echo(f"created draft petition {petition.slug} ({petition.origin}); {sealed}")


@petition_group.command("organisers")
@click.argument("slug")
@click.argument("handles", nargs=-1)
def petition_organisers(slug: str, handles: tuple[str, ...]) -> None:
    """Name the organisations organising draft SLUG, in order (none: name none)."""
    session = get_session()
    petition = named_petition(slug)
    try:
        named = orgs.set_organisers(
            session, petition, [orgs.named_organisation(session, h) for h in handles]
        )
    except Error as exc:
        raise click.ClickException(str(exc)) from None
    handles_text = " ".join(o.handle for o in named)
    record_command("organisers", petition, handles_text)
    session.commit()
    click.echo(f"petition {slug} is organised by: {handles_text or '(none named)'}")


endorsement_group = AppGroup(
    "endorsement", help="Organisations that publicly endorse a petition (docs/formats.md §23)."
)


@endorsement_group.command("add")
@click.argument("slug")
@click.option("--name-km", required=True, help="The organisation's name in Khmer.")
@click.option("--name-en", required=True, help="The organisation's name in English.")
@click.option("--website", default="", help="Its website (https://…).")
def endorsement_add(slug: str, name_km: str, name_en: str, website: str) -> None:
    """Name an organisation endorsing open petition SLUG (checked with it beforehand); it
    goes into the log at the next seal."""
    session = get_session()
    petition = named_petition(slug)
    try:
        fields = endorsements.check_fields(name_km, name_en, website)
        row = endorsements.add_endorsement(session, petition, fields)
    except Error as exc:
        raise click.ClickException(str(exc)) from None
    record_command("endorsement-add", petition, f"{row.name_en} / {row.name_km}")
    session.commit()
    click.echo(f"endorsement {row.id} by {row.name_en} added; in the log at the next seal")


@endorsement_group.command("list")
@click.argument("slug")
def endorsement_list(slug: str) -> None:
    """List SLUG's endorsements and requests: id, state, English and Khmer names, website."""
    for row in endorsements.endorsements_of(get_session(), named_petition(slug)):
        if row.status == "requested":
            state = "requested"
        elif row.withdrawal is not None:
            state = "withdrawn"
        else:
            state = "approved" if row.leaf_index is None else f"leaf {row.leaf_index}"
        click.echo("\t".join((str(row.id), state, row.name_en, row.name_km, row.website or "")))


@endorsement_group.command("withdraw")
@click.argument("slug")
@click.argument("endorsement_id")
def endorsement_withdraw(slug: str, endorsement_id: str) -> None:
    """Withdraw endorsement ENDORSEMENT_ID of SLUG (a withdrawal record goes into the log)."""
    session = get_session()
    petition = named_petition(slug)
    try:
        row = endorsements.endorsement_of(session, petition, endorsement_id)
        detail = f"{row.name_en} / {row.name_km}"
        endorsements.withdraw(session, petition, row)
    except Error as exc:
        raise click.ClickException(str(exc)) from None
    record_command("endorsement-withdraw", petition, detail)
    session.commit()
    click.echo(f"endorsement {endorsement_id} withdrawn")


org_group = AppGroup("org", help="The organisations that organise petitions.")


@org_group.command("add")
@click.argument("handle")
@click.option("--name-km", required=True, help="Its name in Khmer.")
@click.option("--name-en", required=True, help="Its name in English.")
@click.option("--website", default="", help="Its website (https://…), shown with its name.")
def org_add(handle: str, name_km: str, name_en: str, website: str) -> None:
    """Add the organisation HANDLE (a short lower-case name)."""
    session = get_session()
    try:
        organisation = orgs.create_organisation(
            session, handle, name_km=name_km, name_en=name_en, website=website
        )
    except OrganisationError as exc:
        raise click.ClickException(str(exc)) from None
    trail.record(
        session,
        trail.COMMAND_LINE_ACTOR,
        "create-organisation",
        detail=f"{organisation.handle}: {organisation.name_en}",
    )
    session.commit()
    click.echo(f"added organisation {organisation.handle} ({organisation.name_en})")


@org_group.command("list")
def org_list() -> None:
    """List the organisations: handle, English name, Khmer name, website."""
    for o in orgs.organisations(get_session()):
        click.echo("\t".join((o.handle, o.name_en, o.name_km, o.website or "")))


def _lifecycle(slug: str, action: Any, done: str, name: str, detail: str = "") -> None:
    session = get_session()
    petition = named_petition(slug)
    try:
        result = action(session, petition)
    except Error as exc:
        raise click.ClickException(str(exc)) from None
    record_command(name, petition, detail.format(result=result))
    session.commit()
    click.echo(done.format(slug=slug, result=result))


@petition_group.command("open")
@click.argument("slug")
def petition_open(slug: str) -> None:
    """Open petition SLUG for signing (its texts are frozen)."""
    vault, can_mail = services().vault, services().mailer is not None
    _lifecycle(
        slug,
        lambda s, p: open_petition(s, p, vault, can_mail=can_mail),
        "petition {slug} is open",
        "open",
    )


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
    vault, engine = services().vault, services().engine
    # Whatever still waits is sealed first: its dedup token is still to be checked.
    seal_all(engine, vault)
    key_file = named_petition(slug).dedup_key_file
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


def _witness_client() -> WitnessClient:
    cfg = services().config
    return WitnessClient(timeout=cfg.witness_timeout, proxy=cfg.witness_proxy)


def _ask_witnesses_once() -> None:
    """Ask every witness that has not cosigned its petition's newest checkpoint, and say
    what each answered."""
    client = _witness_client()
    try:
        answers = witness_round(services().engine, client, Backoff())
    finally:
        client.close()
    for asked in answers:
        click.echo(
            f"witness {asked.name} of {asked.slug}, size {asked.size}: {asked.answer.outcome}"
            f"{'' if asked.answer.outcome == 'cosigned' else ': ' + asked.answer.detail}"
        )


@click.command("seal")
@click.option("--watch", is_flag=True, help="Keep sealing every SAMLENG_SEAL_INTERVAL seconds.")
@with_appcontext
def seal_command(watch: bool) -> None:
    """Seal pending signatures into the logs and sign new checkpoints."""
    cfg, engine, vault = services().config, services().engine, services().vault
    timer = SealTimer(max(cfg.seal_interval, 1), cfg.seal_batch, due_now=True)
    witnessing = None
    if watch:
        witnessing = Witnessing(engine, _witness_client())
        witnessing.start()
    while True:
        if watch and not timer.due(lambda: waiting_signatures(engine)):
            time.sleep(timer.tick)
            continue
        timer.sealed()
        try:
            for slug in close_expired_petitions(engine):
                click.echo(f"closed {slug}: its deadline has passed")
            sealed = seal_all(engine, vault)
            destroy_forgotten_keys(engine, vault)
            if not watch:
                # Not with --watch: in the journal, with its timestamps, these lines would
                # date each batch to the second.
                for slug in sealed:
                    click.echo(f"sealed {slug}")
                _ask_witnesses_once()
            elif witnessing is not None:
                witnessing.wake()
        except (SQLAlchemyError, CryptoError, Error, OSError) as exc:
            if not watch:
                raise click.ClickException(f"sealing failed: {type(exc).__name__}") from None
            # The batch rolled back whole; its signatures stay pending for the next round.
            click.echo(f"sealing failed ({type(exc).__name__}); retrying", err=True)
        if not watch:
            return
        time.sleep(timer.tick)


@click.command("init")
@with_appcontext
def init_command() -> None:
    """Create or upgrade the database schema, and move keys out of the database."""
    upgrade(services().engine)
    click.echo("database is at the newest schema")
    session = get_session()
    moved = move_dedup_keys_to_files(session, services().vault)
    session.commit()
    for slug in moved:
        click.echo(
            f"petition {slug}: its dedup key is now wrapped under a key file of its own; "
            "backups from before still hold it under the master key"
        )


keys_group = click.Group("keys", help="The instance's secrets.")


@keys_group.command("tidy")
@with_appcontext
def keys_tidy() -> None:
    """Destroy this machine's key files of forgotten petitions (run on every app server
    after a forget; the sealer does it each round on its own machine)."""
    for name in destroy_forgotten_keys(services().engine, services().vault):
        click.echo(f"destroyed {name}.key")


@keys_group.command("generate")
def keys_generate() -> None:
    """Create the master key file in the instance folder (never overwrites one)."""
    instance = instance_folder()
    if ensure_master_key(instance):
        click.echo(f"created {instance / 'master.key'} (mode 0600); back it up offline")
    else:
        click.echo(f"{instance / 'master.key'} exists; left unchanged")


@keys_group.command("nginx-form")
@with_appcontext
def keys_nginx_form() -> None:
    """Print nginx's include with the sign form's token key (for
    /etc/nginx/samleng/samleng-form-key.conf, mode 0600): nginx mints the token of each
    petition page it serves from its cache. The key only makes form tokens."""
    click.echo(nginx_form_key_conf(services().form_tokens.key), nl=False)


COMMANDS: tuple[click.Command, ...] = (
    init_command,
    petition_group,
    org_group,
    endorsement_group,
    seal_command,
    keys_group,
)


def init_app(app: Flask) -> None:
    """Add these commands to ``app``'s command line."""
    for command in COMMANDS:
        app.cli.add_command(command)
