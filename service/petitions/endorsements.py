"""Endorsements: organisations that publicly stand behind a petition (docs/formats.md §23).

An organiser enters one after checking it with the organisation out of band, or approves a
request from the public form; either way the record is fixed when approved and appended to
the log as a kind 0x06 leaf at the next seal. A withdrawal is a second record. A request
keeps only what the requester typed; a refused one is deleted, and the contact they gave is
cleared once an organiser has decided.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from samleng.crypto.endorsement import endorsement_record, record_hash, withdrawal_record
from samleng.service.petitions.organisations import check_website, tidy_name
from samleng.service.platform.errors import N_, Error, OrganisationError, PetitionStateError
from samleng.service.platform.models import (
    Endorsement,
    EndorsementStatus,
    Petition,
    PetitionStatus,
    utc_today,
)

MAX_CONTACT = 300
# Requests waiting per petition: a flood of the public form stops here, not in the database.
MAX_WAITING = 200


class EndorsementInputError(Error, ValueError):
    """A field of an endorsement is not acceptable; ``field`` names it for the form."""

    def __init__(self, field: str, message: str, /, **values: object) -> None:
        super().__init__(message, **values)
        self.field = field


class EndorsementQueueFull(Error):
    """Too many requests wait for the organisers of this petition."""


@dataclass(frozen=True, kw_only=True)
class EndorsementFields:
    """What an endorsement says, checked: names in both languages, website or none."""

    name_km: str
    name_en: str
    website: str | None


def check_fields(name_km: str, name_en: str, website: str) -> EndorsementFields:
    """Check what was typed; EndorsementInputError naming the first bad field."""
    checked: dict[str, str] = {}
    for field, value, lang in (("name_km", name_km, "Khmer"), ("name_en", name_en, "English")):
        try:
            checked[field] = tidy_name(value, lang)
        except OrganisationError as exc:
            raise EndorsementInputError(field, exc.message, **exc.values) from None
    try:
        site = check_website(website)
    except OrganisationError as exc:
        raise EndorsementInputError("website", exc.message, **exc.values) from None
    return EndorsementFields(name_km=checked["name_km"], name_en=checked["name_en"], website=site)


def _require_open(petition: Petition) -> None:
    if petition.status != PetitionStatus.OPEN:
        raise PetitionStateError(
            N_("petition %(slug)s is %(status)s: endorsements are taken while it is open"),
            slug=repr(petition.slug),
            status=petition.status,
        )


def request_endorsement(
    session: Session, petition: Petition, fields: EndorsementFields, contact: str
) -> Endorsement:
    """Queue a request from the public form for the organisers; nothing else is kept."""
    _require_open(petition)
    contact = " ".join(contact.split())
    if len(contact) > MAX_CONTACT:
        raise EndorsementInputError("contact", N_("at most %(most)s characters"), most=MAX_CONTACT)
    waiting = session.scalar(
        select(func.count())
        .select_from(Endorsement)
        .where(
            Endorsement.petition_id == petition.id,
            Endorsement.status == EndorsementStatus.REQUESTED,
        )
    )
    if (waiting or 0) >= MAX_WAITING:
        raise EndorsementQueueFull(f"{MAX_WAITING} requests wait already")
    row = Endorsement(
        petition_id=petition.id,
        status=EndorsementStatus.REQUESTED,
        name_km=fields.name_km,
        name_en=fields.name_en,
        website=fields.website,
        contact=contact or None,
    )
    session.add(row)
    session.flush()
    return row


def _fix_record(petition: Petition, row: Endorsement, today: dt.date) -> None:
    row.status = EndorsementStatus.APPROVED
    row.contact = None
    row.record = endorsement_record(
        petition.origin,
        id=secrets.token_hex(16),
        name_en=row.name_en,
        name_km=row.name_km,
        website=row.website,
        day=today,
    )


def add_endorsement(
    session: Session, petition: Petition, fields: EndorsementFields, today: dt.date | None = None
) -> Endorsement:
    """An endorsement an organiser checked out of band: approved at once."""
    _require_open(petition)
    row = Endorsement(
        petition_id=petition.id,
        name_km=fields.name_km,
        name_en=fields.name_en,
        website=fields.website,
    )
    _fix_record(petition, row, today or utc_today())
    session.add(row)
    session.flush()
    return row


def approve(
    session: Session, petition: Petition, row: Endorsement, today: dt.date | None = None
) -> None:
    """Approve a request: its record is fixed, for the next seal."""
    _require_open(petition)
    if row.status != EndorsementStatus.REQUESTED:
        raise PetitionStateError("this endorsement is approved already")
    _fix_record(petition, row, today or utc_today())
    session.flush()


def reject(session: Session, row: Endorsement) -> None:
    """Refuse a request: it is deleted, with everything the requester typed."""
    if row.status != EndorsementStatus.REQUESTED:
        raise PetitionStateError("an approved endorsement is withdrawn, not refused")
    session.delete(row)
    session.flush()


def withdraw(
    session: Session, petition: Petition, row: Endorsement, today: dt.date | None = None
) -> None:
    """Withdraw an approved endorsement: a second record in the log, or, when its first is
    not in the log yet, nothing at all."""
    if row.status != EndorsementStatus.APPROVED or row.record is None:
        raise PetitionStateError("only an approved endorsement can be withdrawn")
    if row.withdrawal is not None:
        raise PetitionStateError("this endorsement is withdrawn already")
    if row.leaf_index is None:
        session.delete(row)  # never published: it simply goes
    else:
        _require_open(petition)
        row.withdrawal = withdrawal_record(
            petition.origin, withdraws=record_hash(row.record), day=today or utc_today()
        )
    session.flush()


def endorsement_of(session: Session, petition: Petition, endorsement_id: str) -> Endorsement:
    """The endorsement with this id on this petition; EndorsementInputError otherwise."""
    found = None
    if endorsement_id.isascii() and endorsement_id.isdigit() and len(endorsement_id) < 12:
        found = session.get(Endorsement, int(endorsement_id))
    if found is None or found.petition_id != petition.id:
        raise EndorsementInputError("endorsement", "no such endorsement on this petition")
    return found


def endorsements_of(session: Session, petition: Petition) -> Sequence[Endorsement]:
    """Every endorsement and request of a petition, oldest first."""
    return session.scalars(
        select(Endorsement).where(Endorsement.petition_id == petition.id).order_by(Endorsement.id)
    ).all()


def public_endorsements(session: Session, petition: Petition) -> list[Endorsement]:
    """The endorsements the public sees: approved, in the log, not withdrawn, in log order."""
    rows = session.scalars(
        select(Endorsement)
        .where(
            Endorsement.petition_id == petition.id,
            Endorsement.leaf_index.is_not(None),
            Endorsement.withdrawal.is_(None),
        )
        .order_by(Endorsement.leaf_index)
    ).all()
    return list(rows)
