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
from samleng.service.errors import (
    ClosingDateInPast,
    PetitionNotFound,
    PetitionStateError,
    SlugUnavailable,
)
from samleng.service.log import latest_checkpoint, start_log
from samleng.service.models import (
    IDENTIFIER_MODES,
    VERIFICATION_MODES,
    DedupToken,
    Petition,
    utc_today,
)

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
TEXT_FIELDS = ("title", "target", "summary", "body")
# One answer for every taken slug: an organiser must not learn which hidden drafts exist.
SLUG_UNAVAILABLE = "this slug cannot be used; choose another"


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


def check_closing_date(closes_on: dt.date | None, today: dt.date | None = None) -> None:
    """Refuse a last day of signing before today (UTC) with ClosingDateInPast.

    A petition is open until the end of its ``closes_on`` day, so today is the earliest. A
    past date would close the petition at the next seal round, with that date frozen into
    petition.json (leaf 0) for good.
    """
    today = today or utc_today()
    if closes_on is not None and closes_on < today:
        raise ClosingDateInPast(
            f"the closing date {closes_on.isoformat()} is in the past (today is "
            f"{today.isoformat()} in UTC); give today or a later date"
        )


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
    today: dt.date | None = None,
) -> Petition:
    """Create a draft petition with fresh per-petition secrets (dedup key wrapped, salt).

    ValueError for bad input: SlugUnavailable when the slug is taken (the same answer for
    every petition, hidden drafts included), ClosingDateInPast for a date before ``today``
    (UTC by default).
    """
    if not SLUG.match(slug):
        raise ValueError("a slug is 1-64 lower-case letters, digits and inner hyphens")
    if identifier_mode not in IDENTIFIER_MODES:
        raise ValueError(f"identifier mode must be one of {', '.join(IDENTIFIER_MODES)}")
    if verification_mode not in VERIFICATION_MODES:
        raise ValueError(f"verification mode must be one of {', '.join(VERIFICATION_MODES)}")
    if verification_mode == "email" and identifier_mode != "email":
        raise ValueError("email verification needs identifier mode email")
    if goal <= 0:
        raise ValueError("the goal must be a positive number of signatures")
    if len(details_public_key) != 32:
        raise ValueError("the details public key must be a raw 32-byte X25519 key")
    check_closing_date(closes_on, today)
    if session.scalar(select(Petition.id).where(Petition.slug == slug)) is not None:
        raise SlugUnavailable(SLUG_UNAVAILABLE)
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
    """The petition with this slug, or PetitionNotFound."""
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


def open_petition(
    session: Session, petition: Petition, master_key: bytes, today: dt.date | None = None
) -> None:
    """Open a draft for signing: freeze its texts into petition.json and start its log.

    ClosingDateInPast when its deadline is before ``today`` (UTC): change the draft first.
    """
    today = today or utc_today()
    if petition.status == "draft":
        check_closing_date(petition.closes_on, today)
    _transition(petition, "draft", "open")
    if petition.opens_on is None:
        petition.opens_on = today
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
