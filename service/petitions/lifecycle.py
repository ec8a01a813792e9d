"""The petition lifecycle: create (draft) → open → closed → forgotten.

Functions take the database session and keys as arguments and never commit on behalf of a
caller that passed ``commit=False``; the CLI and (later) the admin views call them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping, Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from samleng.crypto.custody import MAX_KEYS, Custody, single_key_custody
from samleng.crypto.keywrap import new_salt
from samleng.crypto.tokens import Argon2Params
from samleng.service.platform.errors import (
    N_,
    ClosingDateInPast,
    InputError,
    PetitionMisconfigured,
    PetitionStateError,
    SlugUnavailable,
)
from samleng.service.platform.models import (
    IDENTIFIER_MODES,
    LANGUAGES,
    PHOTO_MODES,
    SLUG,
    VERIFICATION_MODES,
    DedupToken,
    Petition,
    PetitionStatus,
    PhotoMode,
    VerificationMode,
    utc_today,
)
from samleng.service.platform.trail import SYSTEM_ACTOR, record
from samleng.service.platform.vault import Vault
from samleng.service.signing.dedup import new_wrapped_dedup_key
from samleng.service.signing.identifiers import phone_region_problem
from samleng.service.tlog.epochs import ensure_epoch
from samleng.service.tlog.store import has_pending, latest_checkpoint, start_log
from samleng.service.tlog.witnesses import check_quorum, frozen_policy_file

TEXT_FIELDS = ("title", "target", "summary", "body")
# One answer for every taken slug: an organiser must not learn which hidden drafts exist.
SLUG_UNAVAILABLE = "this slug cannot be used; choose another"


def petition_origin(origin: str, slug: str) -> str:
    """The petition's origin line: ``<SAMLENG_ORIGIN>/p/<slug>``."""
    return f"{origin}/p/{slug}"


def details_custody(public_keys: Sequence[bytes], threshold: int | None) -> Custody:
    """The custody of n organisations' keys, any ``threshold`` of which open the details.

    One key and no threshold (or 1) is the single-key custody of version 1 records, as
    before coalition custody. InputError, in words for the organiser, otherwise.
    """
    if not public_keys:
        raise InputError(N_("give at least one details public key"))
    if len(public_keys) == 1 and threshold in (None, 1):
        return single_key_custody(public_keys[0])
    if threshold is None:
        raise InputError(
            N_(
                "with %(keys)s details keys, say how many organisations must agree to open the "
                "details (the threshold)"
            ),
            keys=len(public_keys),
        )
    if len(set(public_keys)) != len(public_keys):
        raise InputError(N_("a details public key is given twice"))
    if len(public_keys) > MAX_KEYS:
        raise InputError(
            N_("a petition has at most %(most)s details keys, not %(keys)s"),
            most=MAX_KEYS,
            keys=len(public_keys),
        )
    if not 1 <= threshold <= len(public_keys):
        raise InputError(
            N_("the threshold must be between 1 and the number of keys (%(keys)s), not %(given)s"),
            keys=len(public_keys),
            given=threshold,
        )
    return Custody(public_keys=tuple(public_keys), threshold=threshold)


# What is wrong with a details public key: said of the only one, or of one line of several.
_NOT_BASE64 = (
    N_("the details public key is not base64"),
    N_("the details public key on line %(line)s is not base64"),
)
_NOT_X25519 = (
    N_("the details public key is not 32 bytes long (an X25519 public key)"),
    N_("the details public key on line %(line)s is not 32 bytes long (an X25519 public key)"),
)


def parse_details_public_key(text: str, line: int | None = None) -> bytes:
    """The organisers' details public key from its file (what ``samleng-audit keygen`` writes:
    one line of base64 of the raw 32-byte X25519 key). InputError if it is not one, naming
    ``line`` when given."""
    words = text.strip().split()
    try:
        key = base64.b64decode(words[-1], validate=True)
    except (binascii.Error, IndexError, ValueError):
        raise _bad_key(_NOT_BASE64, line) from None
    if len(key) != 32:
        raise _bad_key(_NOT_X25519, line)
    return key


def _bad_key(messages: tuple[str, str], line: int | None) -> InputError:
    return InputError(messages[0]) if line is None else InputError(messages[1], line=line)


def parse_details_public_keys(text: str) -> list[bytes]:
    """The details public keys of a coalition, one per line in share order (a single .pub
    file is one line). InputError naming the line that is not a key."""
    lines = [line for line in text.splitlines() if line.strip()]
    return [
        parse_details_public_key(line, number if len(lines) > 1 else None)
        for number, line in enumerate(lines, start=1)
    ]


def custody_trail(custody: Custody) -> str:
    """The audit trail's detail of a petition's creation: empty for one key, as it always
    was; "details sealed to K of N keys" for a coalition."""
    if custody.version == 1:
        return ""
    return f"details sealed to {custody.threshold} of {custody.keys} keys"


def set_custody(petition: Petition, custody: Custody) -> None:
    """Seal a draft's details to ``custody``: one key as before (version 1 records), or k of
    n organisations' keys (version 2). A petition that takes photos writes version 2 records
    always (photo records are version 2 only), one key and k = 1 included."""
    if custody.version == 1 and petition.photos != PhotoMode.OFF:
        custody = Custody(public_keys=custody.public_keys, threshold=1)
    petition.details_public_key = custody.public_keys[0]
    petition.details_custody = custody.petition_member() if custody.version == 2 else None


def _check_photos(mode: str, verification_mode: str) -> None:
    if mode not in PHOTO_MODES:
        raise ValueError(f"photos must be one of {', '.join(PHOTO_MODES)}")
    if mode != PhotoMode.OFF and verification_mode == VerificationMode.EMAIL:
        # A confirmation link carries the sealed record; a photo record is megabytes.
        raise InputError(N_("photo pledges cannot be combined with email verification"))


def set_photos(petition: Petition, mode: str) -> None:
    """Set whether a draft's signers may (``optional``) or must (``required``) add a photo
    of themselves, or not (``off``). ValueError for another mode or a petition no longer a
    draft (the setting is frozen in petition.json when it opens)."""
    _check_photos(mode, petition.verification_mode)
    if petition.status != PetitionStatus.DRAFT:
        raise InputError(N_("the photo setting is frozen once the petition opens"))
    petition.photos = mode
    set_custody(petition, petition.custody())


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
            N_(
                "the closing date %(date)s is in the past (today is %(today)s in UTC); give "
                "today or a later date"
            ),
            date=closes_on.isoformat(),
            today=today.isoformat(),
        )


def create_petition(
    session: Session,
    *,
    vault: Vault,
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
    custody: Custody | None = None,
    photos: str = "off",
) -> Petition:
    """Create a draft petition with fresh per-petition secrets: a dedup key, wrapped under a
    key file of the petition's own (the caller commits), and a salt. ``photos`` is the photo
    setting of :func:`set_photos`.

    ``custody`` names k of n organisations' details keys (version 2 records); without it the
    details are sealed to ``details_public_key`` alone, as before coalition custody.

    ValueError, with a sentence for the organiser, for anything the petition cannot work
    with (a bad slug, mode, goal, key, text, or a phone region no number can be read in):
    SlugUnavailable when the slug is taken (the same answer for every petition, hidden drafts
    included), ClosingDateInPast for a date before ``today`` (UTC by default).
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
    _check_photos(photos, verification_mode)
    region_problem = phone_region_problem(region)
    if region_problem is not None:
        raise ValueError(region_problem)
    if len(details_public_key) != 32:
        raise ValueError("the details public key must be a raw 32-byte X25519 key")
    if (
        custody is not None
        and custody.version == 2
        and custody.public_keys[0] != details_public_key
    ):
        raise ValueError("the details public key must be the custody's first key")
    check_closing_date(closes_on, today)
    if session.scalar(select(Petition.id).where(Petition.slug == slug)) is not None:
        raise SlugUnavailable(SLUG_UNAVAILABLE)
    full_origin = petition_origin(origin, slug)
    key_file, wrapped_dedup_key = new_wrapped_dedup_key(vault, full_origin)
    petition = Petition(
        slug=slug,
        origin=full_origin,
        status=PetitionStatus.DRAFT,
        texts=validate_texts(texts),
        goal=goal,
        closes_on=closes_on,
        identifier_mode=identifier_mode,
        verification_mode=verification_mode,
        region=region,
        salt=new_salt(),
        wrapped_dedup_key=wrapped_dedup_key,
        dedup_key_file=key_file,
        argon2_time_cost=argon2.time_cost,
        argon2_memory_kib=argon2.memory_kib,
        argon2_parallelism=argon2.parallelism,
        details_public_key=details_public_key,
        details_custody=None,
        photos=photos,
    )
    set_custody(petition, custody or single_key_custody(details_public_key))
    try:
        session.add(petition)
        session.flush()
    except BaseException:
        vault.destroy(key_file)
        raise
    return petition


def open_petitions(session: Session) -> Sequence[Petition]:
    """Petitions that accept signatures, newest first."""
    return session.scalars(
        select(Petition).where(Petition.status == PetitionStatus.OPEN).order_by(Petition.id.desc())
    ).all()


def public_petitions(session: Session) -> Sequence[Petition]:
    """Petitions the public may see (every one but drafts), newest first."""
    return session.scalars(
        select(Petition)
        .where(Petition.status != PetitionStatus.DRAFT, Petition.petition_json.is_not(None))
        .order_by(Petition.id.desc())
    ).all()


def _transition(petition: Petition, allowed_from: str, to: str) -> None:
    if petition.status != allowed_from:
        raise PetitionStateError(
            N_("petition %(slug)s is %(status)s; it must be %(allowed)s to become %(to)s"),
            slug=repr(petition.slug),
            status=petition.status,
            allowed=allowed_from,
            to=to,
        )
    petition.status = to


def open_petition(
    session: Session,
    petition: Petition,
    vault: Vault,
    today: dt.date | None = None,
    *,
    can_mail: bool,
) -> None:
    """Open a draft for signing: freeze its texts into petition.json, start its log, and make
    sure there is a sealing epoch to sign into.

    ClosingDateInPast when its deadline is before ``today`` (UTC): change the draft first.
    PetitionStateError for email verification when the service cannot send mail
    (``can_mail``). PetitionMisconfigured for a region no phone number can be read in (a
    draft changed after creation): it could take no signature, and petition.json would
    freeze it.
    """
    today = today or utc_today()
    if petition.verification_mode == VerificationMode.EMAIL and not can_mail:
        raise PetitionStateError(
            N_("email verification needs mail: the operator sets SAMLENG_SMTP_URL")
        )
    if petition.status == PetitionStatus.DRAFT:
        check_closing_date(petition.closes_on, today)
    region_problem = phone_region_problem(petition.region)
    if region_problem is not None:
        raise PetitionMisconfigured(f"petition {petition.slug!r}: {region_problem}")
    check_quorum(session, petition)
    _transition(petition, PetitionStatus.DRAFT, PetitionStatus.OPEN)
    if petition.opens_on is None:
        petition.opens_on = today
    start_log(
        session,
        petition,
        vault.master_key,
        lambda vkey: frozen_policy_file(session, petition, vkey),
    )
    ensure_epoch(session, vault)
    session.flush()


def close_petition(session: Session, petition: Petition, today: dt.date | None = None) -> None:
    """Stop accepting signatures; the day it closed (UTC) is kept for the timeline."""
    _transition(petition, PetitionStatus.OPEN, PetitionStatus.CLOSED)
    petition.closed_on = today or utc_today()
    session.flush()


def forget_petition(session: Session, petition: Petition, vault: Vault) -> int:
    """Destroy the dedup key and every token of a closed petition. Returns tokens deleted.

    The key file goes first: from then on the wrapped key and the tokens are useless
    wherever a copy of them survives (WAL, free pages, replicas, backups), even if the
    caller's commit then fails (forget can simply be run again). Refused while signatures
    of the petition wait to be sealed (their tokens are still to be checked).
    """
    if petition.status == PetitionStatus.CLOSED and has_pending(session, petition):
        raise PetitionStateError(
            N_(
                "petition %(slug)s still has signatures waiting to be sealed; wait for the "
                "next seal, then try again"
            ),
            slug=repr(petition.slug),
        )
    _transition(petition, PetitionStatus.CLOSED, PetitionStatus.FORGOTTEN)
    if petition.dedup_key_file is not None:
        vault.destroy(petition.dedup_key_file)
    petition.wrapped_dedup_key = None
    result = session.execute(delete(DedupToken).where(DedupToken.petition_id == petition.id))
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


def close_expired(session: Session, today: dt.date) -> list[str]:
    """Close every open petition whose deadline has passed; the slugs closed.

    A petition is open until the end of its ``closes_on`` day (UTC). Signing also refuses
    after it (signing/signatures.py), so a late run of this only tidies the status.
    """
    due = session.scalars(
        select(Petition).where(Petition.status == PetitionStatus.OPEN, Petition.closes_on < today)
    ).all()
    closed = []
    for petition in due:
        close_petition(session, petition, petition.closes_on)
        record(session, SYSTEM_ACTOR, "close", petition_slug=petition.slug, detail="deadline")
        closed.append(petition.slug)
    session.commit()
    return closed


def signature_count(session: Session, petition: Petition) -> int:
    """Signatures in the latest published checkpoint (pending ones are not yet counted)."""
    state = latest_checkpoint(session, petition)
    return 0 if state is None else state.count
