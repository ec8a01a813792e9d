"""The petition lifecycle: create (draft) → open → closed → forgotten.

Functions take the database session and keys as arguments and never commit on behalf of a
caller that passed ``commit=False``; the CLI and (later) the admin views call them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Mapping, Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from samleng.crypto.keywrap import new_dedup_key, new_salt, wrap_key
from samleng.crypto.tokens import Argon2Params
from samleng.service.config import LANGUAGES
from samleng.service.errors import PetitionMisconfigured, PetitionNotFound, PetitionStateError
from samleng.service.identifiers import phone_region_problem
from samleng.service.log import latest_checkpoint, start_log
from samleng.service.models import (
    IDENTIFIER_MODES,
    VERIFICATION_MODES,
    DedupToken,
    Petition,
)

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
TEXT_FIELDS = ("title", "target", "summary", "body")


def petition_origin(origin: str, slug: str) -> str:
    """The petition's origin line: ``<SAMLENG_ORIGIN>/p/<slug>``."""
    return f"{origin}/p/{slug}"


def parse_details_public_key(text: str) -> bytes:
    """The organisers' details public key from its file (what ``samleng-audit keygen`` writes:
    one line of base64 of the raw 32-byte X25519 key). ValueError if it is not one."""
    words = text.strip().split()
    try:
        key = base64.b64decode(words[-1], validate=True)
    except (binascii.Error, IndexError, ValueError):
        raise ValueError("this is not a base64 public key") from None
    if len(key) != 32:
        raise ValueError("this is not a 32-byte X25519 public key")
    return key


def validate_texts(texts: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """Check texts per language: known languages and fields, a title and body in each."""
    if not texts:
        raise ValueError("a petition needs its texts in at least one language")
    clean: dict[str, dict[str, str]] = {}
    for lang, fields in texts.items():
        if lang not in LANGUAGES:
            raise ValueError(f"unknown language {lang!r}; use one of {', '.join(LANGUAGES)}")
        unknown = set(fields) - set(TEXT_FIELDS)
        if unknown:
            raise ValueError(f"unknown text fields for {lang}: {', '.join(sorted(unknown))}")
        if not fields.get("title") or not fields.get("body"):
            raise ValueError(f"the {lang} text needs a title and a body")
        clean[lang] = {k: str(v) for k, v in fields.items()}
    return clean


def create_petition(
    session: Session,
    *,
    master_key: bytes,
    origin: str,
    slug: str,
    texts: Mapping[str, Mapping[str, str]],
    goal: int,
    identifier_mode: str,
    details_public_key: bytes,
    argon2: Argon2Params,
    verification_mode: str = "none",
    region: str = "KH",
    closes_on: dt.date | None = None,
) -> Petition:
    """Create a draft petition with fresh per-petition secrets (dedup key wrapped, salt).

    ValueError, with a sentence for the organiser, for anything the petition cannot work
    with (a bad slug, mode, goal, key, text, or a phone region no number can be read in).
    """
    if not SLUG.fullmatch(slug):
        raise ValueError("a slug is 1-64 lower-case letters, digits and inner hyphens")
    if identifier_mode not in IDENTIFIER_MODES:
        raise ValueError(f"identifier mode must be one of {', '.join(IDENTIFIER_MODES)}")
    if verification_mode not in VERIFICATION_MODES:
        raise ValueError(f"verification mode must be one of {', '.join(VERIFICATION_MODES)}")
    if verification_mode == "email" and identifier_mode != "email":
        raise ValueError("email verification needs identifier mode email")
    if goal <= 0:
        raise ValueError("the goal must be a positive number of signatures")
    region_problem = phone_region_problem(region)
    if region_problem is not None:
        raise ValueError(region_problem)
    if len(details_public_key) != 32:
        raise ValueError("the details public key must be a raw 32-byte X25519 key")
    if session.scalar(select(Petition.id).where(Petition.slug == slug)) is not None:
        raise ValueError(f"a petition with slug {slug!r} already exists")
    full_origin = petition_origin(origin, slug)
    petition = Petition(
        slug=slug,
        origin=full_origin,
        status="draft",
        texts=validate_texts(texts),
        goal=goal,
        closes_on=closes_on,
        identifier_mode=identifier_mode,
        verification_mode=verification_mode,
        region=region,
        salt=new_salt(),
        wrapped_dedup_key=wrap_key(master_key, new_dedup_key(), full_origin),
        argon2_time_cost=argon2.time_cost,
        argon2_memory_kib=argon2.memory_kib,
        argon2_parallelism=argon2.parallelism,
        details_public_key=details_public_key,
    )
    session.add(petition)
    session.flush()
    return petition


def get_petition(session: Session, slug: str) -> Petition:
    """The petition with this slug, or PetitionNotFound.

    Anything that is not a slug is not looked up: an address may carry any text (a NUL,
    which PostgreSQL refuses in a string, or 10,000 characters).
    """
    if not SLUG.fullmatch(slug):
        raise PetitionNotFound(slug)
    petition = session.scalar(select(Petition).where(Petition.slug == slug))
    if petition is None:
        raise PetitionNotFound(slug)
    return petition


def open_petitions(session: Session) -> Sequence[Petition]:
    """Petitions that accept signatures, newest first."""
    return session.scalars(
        select(Petition).where(Petition.status == "open").order_by(Petition.id.desc())
    ).all()


def _transition(petition: Petition, allowed_from: str, to: str) -> None:
    if petition.status != allowed_from:
        raise PetitionStateError(
            f"petition {petition.slug!r} is {petition.status}; it must be {allowed_from} "
            f"to become {to}"
        )
    petition.status = to


def open_petition(session: Session, petition: Petition, master_key: bytes) -> None:
    """Open a draft for signing: freeze its texts into petition.json and start its log.

    PetitionMisconfigured for a region no phone number can be read in (a draft changed
    after creation): it could take no signature, and petition.json would freeze it.
    """
    region_problem = phone_region_problem(petition.region)
    if region_problem is not None:
        raise PetitionMisconfigured(f"petition {petition.slug!r}: {region_problem}")
    _transition(petition, "draft", "open")
    if petition.opens_on is None:
        petition.opens_on = dt.date.today()
    start_log(session, petition, master_key)
    session.flush()


def close_petition(session: Session, petition: Petition) -> None:
    """Stop accepting signatures."""
    _transition(petition, "open", "closed")
    session.flush()


def forget_petition(session: Session, petition: Petition) -> int:
    """Destroy the dedup key and every token of a closed petition. Returns tokens deleted."""
    _transition(petition, "closed", "forgotten")
    petition.wrapped_dedup_key = None
    result = session.execute(delete(DedupToken).where(DedupToken.petition_id == petition.id))
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


def signature_count(session: Session, petition: Petition) -> int:
    """Signatures in the latest published checkpoint (pending ones are not yet counted)."""
    state = latest_checkpoint(session, petition)
    return 0 if state is None else state.count
