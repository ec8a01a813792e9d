"""Organisations: who organises a petition, and who an account acts for.

A coalition's organisations are named on the petition's page and, frozen into petition.json
when it opens, in its delivery.pdf. An organiser who acts for an organisation may act on the
petitions it organises and on no other (service/admin/accounts.py); the audit trail names
the organisation of each action.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from samleng.crypto.endorsement import MAX_NAME, MAX_WEBSITE, check_name
from samleng.crypto.endorsement import check_website as check_public_website
from samleng.crypto.errors import EndorsementError
from samleng.service.platform.errors import N_, OrganisationError, PetitionStateError
from samleng.service.platform.models import (
    Account,
    Organisation,
    Petition,
    PetitionOrganiser,
    PetitionStatus,
    organisers_of,
)

HANDLE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# A petition names at most this many organisers: the page and delivery.pdf list them all.
MAX_ORGANISERS = 64


# An organisation's name and website follow an endorsement record's rules (§23.1); they are
# refused here in messages of our own, which the admin shows in Khmer (the crypto library
# words its refusals in English only).
_MISSING = {
    "Khmer": N_("give the organisation's name in Khmer"),
    "English": N_("give the organisation's name in English"),
}
_TOO_LONG = {
    "Khmer": N_("the organisation's name in Khmer is longer than %(most)s characters"),
    "English": N_("the organisation's name in English is longer than %(most)s characters"),
}
_UNREADABLE = {
    "Khmer": N_("the organisation's name in Khmer has a character that cannot be shown"),
    "English": N_("the organisation's name in English has a character that cannot be shown"),
}


def tidy_name(value: str, lang: str) -> str:
    """A name as typed (``lang``: Khmer or English), its spaces tidied; OrganisationError
    unless an endorsement record may hold it."""
    name = " ".join(value.split())
    if not name:
        raise OrganisationError(_MISSING[lang])
    if len(name) > MAX_NAME:
        raise OrganisationError(_TOO_LONG[lang], most=MAX_NAME)
    try:
        return check_name(name, lang)
    except EndorsementError:
        raise OrganisationError(_UNREADABLE[lang]) from None


def check_website(value: str) -> str | None:
    """The website as given, or None for none; OrganisationError unless an http(s) address
    (the same rule as an endorsement's, docs/formats.md §23.1)."""
    website = value.strip()
    if not website:
        return None
    try:
        return check_public_website(website)
    except EndorsementError:
        raise OrganisationError(
            N_(
                "the website must be an address starting with https:// or http://, without "
                "spaces, of at most %(most)s characters"
            ),
            most=MAX_WEBSITE,
        ) from None


def create_organisation(
    session: Session, handle: str, *, name_km: str, name_en: str, website: str = ""
) -> Organisation:
    """Add an organisation; OrganisationError for a bad or taken handle or a bad name."""
    handle = handle.strip().lower()
    if not HANDLE.match(handle):
        raise OrganisationError(
            N_(
                "a handle is 1-64 lower-case letters, digits, '.', '_' or '-', starting with a "
                "letter or digit"
            )
        )
    if find_organisation(session, handle) is not None:
        raise OrganisationError(
            N_("an organisation with handle %(handle)s exists already"), handle=repr(handle)
        )
    organisation = Organisation(
        handle=handle,
        name_km=tidy_name(name_km, "Khmer"),
        name_en=tidy_name(name_en, "English"),
        website=check_website(website),
    )
    session.add(organisation)
    session.flush()
    return organisation


def find_organisation(session: Session, handle: str) -> Organisation | None:
    """The organisation with this handle, if any."""
    return session.scalar(
        select(Organisation).where(Organisation.handle == handle.strip().lower()[:64])
    )


def named_organisation(session: Session, handle: str) -> Organisation:
    """The organisation with this handle; OrganisationError naming it otherwise."""
    organisation = find_organisation(session, handle)
    if organisation is None:
        raise OrganisationError(
            N_("no organisation with handle %(handle)s"), handle=repr(handle.strip()[:64])
        )
    return organisation


def organisations(session: Session) -> Sequence[Organisation]:
    """Every organisation, by handle."""
    return session.scalars(select(Organisation).order_by(Organisation.handle)).all()


def set_organisers(
    session: Session, petition: Petition, chosen: Sequence[Organisation]
) -> list[Organisation]:
    """Name the organisations organising a draft, in this order (frozen when it opens)."""
    if petition.status != PetitionStatus.DRAFT:
        raise PetitionStateError(
            f"petition {petition.slug!r} is {petition.status}: its organisers were frozen "
            "into petition.json when it opened"
        )
    if len({o.id for o in chosen}) != len(chosen):
        raise OrganisationError(N_("an organisation is named twice"))
    if len(chosen) > MAX_ORGANISERS:
        raise OrganisationError(
            N_("a petition has at most %(most)s organisers"), most=MAX_ORGANISERS
        )
    session.execute(delete(PetitionOrganiser).where(PetitionOrganiser.petition_id == petition.id))
    for position, organisation in enumerate(chosen):
        session.add(
            PetitionOrganiser(
                petition_id=petition.id, organisation_id=organisation.id, position=position
            )
        )
    session.flush()
    return list(chosen)


def add_organiser(session: Session, petition: Petition, organisation: Organisation) -> None:
    """Name one more organisation among a draft's organisers (last)."""
    current = organisers_of(session, petition.id)
    if any(o.id == organisation.id for o in current):
        raise OrganisationError(
            N_("%(handle)s already organises this petition"), handle=repr(organisation.handle)
        )
    set_organisers(session, petition, [*current, organisation])


def remove_organiser(
    session: Session, petition: Petition, organisation: Organisation, *, by: Account
) -> None:
    """Stop naming an organisation among a draft's organisers. An organiser cannot remove
    their own organisation: they would lose the petition they are acting on."""
    current = organisers_of(session, petition.id)
    if not any(o.id == organisation.id for o in current):
        raise OrganisationError(
            N_("%(handle)s does not organise this petition"), handle=repr(organisation.handle)
        )
    if by.role != "admin" and by.organisation_id == organisation.id:
        raise OrganisationError(N_("you cannot remove your own organisation from a petition"))
    set_organisers(session, petition, [o for o in current if o.id != organisation.id])


def set_account_organisation(
    session: Session, account: Account, organisation: Organisation | None
) -> None:
    """Let ``account`` act for ``organisation`` (None: for none, on granted petitions only)."""
    account.organisation_id = None if organisation is None else organisation.id
    session.flush()
