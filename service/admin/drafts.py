"""Drafts from the admin's form, the deadline, and the figures of a petition's dashboard.

Takes the DB session as an argument and imports nothing of Flask. The form is parsed into
values and a message per field, like the sign form (signing/forms.py).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from samleng.crypto.custody import MAX_KEYS, Custody
from samleng.service.petitions.lifecycle import (
    TEXT_FIELDS,
    check_closing_date,
    details_custody,
    parse_details_public_keys,
    set_custody,
    set_photos,
    validate_texts,
)
from samleng.service.platform.errors import N_, Error, InputError, PetitionStateError
from samleng.service.platform.models import (
    IDENTIFIER_MODES,
    LANGUAGES,
    PHOTO_MODES,
    SLUG,
    VERIFICATION_MODES,
    Petition,
    PetitionStatus,
    SignedCheckpoint,
)

# Character limits per text field; the body is Markdown source.
TEXT_LIMITS = {"title": 200, "target": 300, "summary": 1000, "body": 20000}
MAX_GOAL = 100_000_000
# A .pub file is one line of 45 characters; a coalition's keys, one per line, at most 16 of
# them. Anything much longer is not a key file.
MAX_KEY_FILE_BYTES = 1024
PAST_DEADLINE = N_("The deadline is in the past.")
TOO_LONG = N_("This is longer than the field allows.")
BAD_THRESHOLD = N_("The threshold is a whole number from 1 to 16.")  # 16: custody.MAX_KEYS


@dataclass(frozen=True, kw_only=True)
class DraftForm:
    """The parsed petition form: values to show again, an error per field, and the result."""

    values: Mapping[str, str]
    # A message marked for the catalogue, or an error whose message and values the view says.
    errors: Mapping[str, str | Error] = field(default_factory=dict)
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    goal: int = 0
    closes_on: dt.date | None = None
    # Who will open the details: None when the form has errors, or when a draft's form gives
    # no key (its custody is kept).
    custody: Custody | None = None


def text_field_name(lang: str, name: str) -> str:
    """The form field of one text: ``en-title``, ``km-body``…"""
    return f"{lang}-{name}"


def form_values(petition: Petition) -> dict[str, str]:
    """A draft's current values, to fill the edit form."""
    custody = petition.custody()
    values = {
        "slug": petition.slug,
        "goal": str(petition.goal),
        "closes_on": petition.closes_on.isoformat() if petition.closes_on else "",
        "identifier_mode": petition.identifier_mode,
        "verification_mode": petition.verification_mode,
        "photos": petition.photos,
        "region": petition.region,
        # The public keys, so that a coalition can check them and their order (share order).
        "details_key_text": "\n".join(
            base64.b64encode(key).decode("ascii") for key in custody.public_keys
        ),
        # Empty for one key, so that keys added later need a threshold chosen for them.
        "details_threshold": "" if custody.version == 1 else str(custody.threshold),
    }
    for lang, texts in petition.texts.items():
        for name in TEXT_FIELDS:
            values[text_field_name(lang, name)] = str(texts.get(name, ""))
    return values


def parse_draft_form(
    form: Mapping[str, str],
    key_file: bytes | None,
    *,
    new: bool,
    today: dt.date,
    current: Custody | None = None,
) -> DraftForm:
    """Check the petition form. ``key_file`` is the uploaded details public key file, if any
    (one key per line); ``current`` is the custody of the draft being changed, whose keys a
    form without any keeps."""
    values = {k: str(form.get(k, "")).strip() for k in _field_names()}
    errors: dict[str, str | Error] = {}
    if new and not SLUG.match(values["slug"]):
        errors["slug"] = N_("Use 1-64 lower-case letters, digits and inner hyphens.")
    texts: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        given = {n: values[text_field_name(lang, n)] for n in TEXT_FIELDS}
        for name, text in given.items():
            if len(text) > TEXT_LIMITS[name]:
                errors[text_field_name(lang, name)] = TOO_LONG
        if any(given.values()):
            if not given["title"] or not given["body"]:
                errors[text_field_name(lang, "title")] = N_("A language needs a title and a body.")
            texts[lang] = {n: v for n, v in given.items() if v}
    if not texts:
        errors["texts"] = N_("Write the petition in at least one language.")
    else:
        try:
            validate_texts(texts)
        except ValueError as exc:
            errors.setdefault("texts", str(exc))
    goal = whole_number(values["goal"], MAX_GOAL) or 0
    if not goal:
        errors["goal"] = N_("The goal is a whole number of signatures, at least 1.")
    closes_on = None
    if values["closes_on"]:
        try:
            closes_on = dt.date.fromisoformat(values["closes_on"])
        except ValueError:
            errors["closes_on"] = N_("Give the date as YYYY-MM-DD.")
        else:
            if closes_on < today:
                errors["closes_on"] = PAST_DEADLINE
    if values["identifier_mode"] not in IDENTIFIER_MODES:
        errors["identifier_mode"] = N_("Choose what signers are asked for.")
    if values["verification_mode"] not in VERIFICATION_MODES:
        errors["verification_mode"] = N_("Choose a verification mode.")
    elif values["verification_mode"] == "email" and values["identifier_mode"] != "email":
        errors["verification_mode"] = N_("Email verification needs the identifier mode email.")
    values["photos"] = values["photos"] or "off"
    if values["photos"] not in PHOTO_MODES:
        errors["photos"] = N_("Choose whether signers add a photo.")
    elif values["photos"] != "off" and values["verification_mode"] == "email":
        errors["photos"] = N_(
            "Photo pledges cannot be combined with email verification: choose one of them."
        )
    values["region"] = values["region"].upper() or "KH"
    if len(values["region"]) != 2 or not values["region"].isalpha():
        errors["region"] = N_("A two-letter country code, like KH.")
    custody = _parse_custody(values, key_file, errors, new=new, current=current)
    return DraftForm(
        values=values,
        errors=errors,
        texts=texts,
        goal=goal,
        closes_on=closes_on,
        custody=custody,
    )


def whole_number(text: str, most: int) -> int | None:
    """The number from 1 to ``most`` that ``text`` writes in decimal digits, else None."""
    # isdecimal, not isdigit: int() refuses "²", which isdigit lets through; the length bound
    # keeps int() far from its 4300-digit limit.
    if not text.isdecimal() or len(text) > len(str(most)):
        return None
    number = int(text)
    return number if 1 <= number <= most else None


def _parse_custody(
    values: Mapping[str, str],
    key_file: bytes | None,
    errors: dict[str, str | Error],
    *,
    new: bool,
    current: Custody | None,
) -> Custody | None:
    """The custody the form asks for; None when it has an error (put in ``errors``), or when
    a draft's form gives no key and no threshold (its custody stays)."""
    key_text = values["details_key_text"]
    if key_file:
        key_text = key_file[: MAX_KEY_FILE_BYTES + 1].decode("ascii", "replace")
    threshold: int | None = None
    if values["details_threshold"]:
        threshold = whole_number(values["details_threshold"], MAX_KEYS)
        if threshold is None:
            errors["details_threshold"] = BAD_THRESHOLD
            return None
    keys: list[bytes] = []
    if key_text:
        if len(key_text) > MAX_KEY_FILE_BYTES:
            errors["details_key"] = N_("This is too large for a list of details public keys.")
            return None
        try:
            keys = parse_details_public_keys(key_text)
        except InputError as exc:
            errors["details_key"] = exc
            return None
    if not keys:
        if new:
            errors["details_key"] = N_(
                "Upload the organisers' details public key (the .pub file), or paste one key "
                "per organisation."
            )
            return None
        if threshold is None:
            return None  # nothing about the keys was changed: they stay
        if current is None:
            errors["details_key"] = N_("Give the details keys with the threshold.")
            return None
        keys = list(current.public_keys)
    try:
        return details_custody(keys, threshold)
    except InputError as exc:
        field = "details_threshold" if "threshold" in exc.message else "details_key"
        errors[field] = exc
        return None


def _field_names() -> list[str]:
    names = ["slug", "goal", "closes_on", "identifier_mode", "verification_mode", "photos"]
    names += ["region"]
    names += ["details_key_text", "details_threshold"]
    names += [text_field_name(lang, n) for lang in LANGUAGES for n in TEXT_FIELDS]
    return names


def update_draft(
    session: Session, petition: Petition, form: DraftForm, today: dt.date | None = None
) -> None:
    """Change a draft from a checked form; PetitionStateError once it has opened, and
    ClosingDateInPast for a deadline before ``today`` (UTC)."""
    if petition.status != PetitionStatus.DRAFT:
        raise PetitionStateError(
            f"petition {petition.slug!r} is {petition.status}: texts are frozen"
        )
    check_closing_date(form.closes_on, today)
    petition.texts = validate_texts(form.texts)
    petition.goal = form.goal
    petition.closes_on = form.closes_on
    petition.identifier_mode = form.values["identifier_mode"]
    petition.verification_mode = form.values["verification_mode"]
    petition.region = form.values["region"]
    set_photos(petition, form.values["photos"])
    if form.custody is not None:
        set_custody(petition, form.custody)
    session.flush()


@dataclass(frozen=True, kw_only=True)
class DayCount:
    """Signatures added to the log on one UTC day."""

    day: dt.date
    signatures: int


def signatures_per_day(session: Session, petition: Petition) -> list[DayCount]:
    """New signatures per day: the growth of the last checkpoint of each day over the day
    before (checkpoints carry a date only, never a time; endorsements are not signatures)."""
    rows = session.execute(
        select(SignedCheckpoint.published_on, SignedCheckpoint.size, SignedCheckpoint.signatures)
        .where(SignedCheckpoint.petition_id == petition.id)
        .order_by(SignedCheckpoint.size)
    ).all()
    by_day: dict[dt.date | None, int] = {}
    for day, size, signatures in rows:
        count = int(size) - 1 if signatures is None else int(signatures)
        by_day[day] = max(by_day.get(day, 0), count)
    previous = by_day.pop(None, 0)
    days = []
    for day in sorted(d for d in by_day if d is not None):
        days.append(DayCount(day=day, signatures=max(by_day[day] - previous, 0)))
        previous = max(previous, by_day[day])
    return days
