"""A petition's campaign after signing starts: organisers' updates, deliveries to
institutions and their responses, and the steps of the goal. All of it is public organiser
text, dated by the day; none of it is about a signer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from samleng.service.platform.errors import N_, Error
from samleng.service.platform.models import (
    LANGUAGES,
    Petition,
    PetitionUpdate,
    SignedCheckpoint,
    TimelineEvent,
    TimelineKind,
    utc_today,
)

MAX_TITLE = 200
MAX_BODY = 20_000
MAX_FIELD = 200
MAX_TEXT = 2_000
MAX_STEPS = 10
MAX_GOAL = 100_000_000
MAX_ATTACHMENT = 10 * 1024 * 1024
ATTACHMENTS = "attachments"
# What a response's attachment may be, known by its first bytes: a scan or a letter.
ATTACHMENT_TYPES = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)


class TimelineInputError(Error, ValueError):
    """A field of an update, a delivery or a response is not acceptable; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _text(value: str, field: str, most: int, *, required: bool) -> str | None:
    text = value.strip()
    if not text:
        if required:
            raise TimelineInputError(field, N_("This field is needed."))
        return None
    if len(text) > most:
        raise TimelineInputError(field, N_("This is longer than the field allows."))
    if "\x00" in text:
        raise TimelineInputError(field, N_("This has a character that cannot be kept."))
    return text


def check_update_texts(texts: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """An update's texts per language: a title and a body in each language given."""
    clean: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        given = texts.get(lang, {})
        title = _text(given.get("title", ""), f"{lang}-title", MAX_TITLE, required=False)
        body = _text(given.get("body", ""), f"{lang}-body", MAX_BODY, required=False)
        if title is None and body is None:
            continue
        if title is None or body is None:
            field = f"{lang}-title" if title is None else f"{lang}-body"
            raise TimelineInputError(field, N_("A language needs a title and a body."))
        clean[lang] = {"title": title, "body": body}
    if not clean:
        raise TimelineInputError("en-title", N_("Write the update in at least one language."))
    return clean


def post_update(
    session: Session,
    petition: Petition,
    texts: Mapping[str, Mapping[str, str]],
    today: dt.date | None = None,
) -> PetitionUpdate:
    """Publish an update on ``petition`` today."""
    update = PetitionUpdate(
        petition_id=petition.id, posted_on=today or utc_today(), texts=check_update_texts(texts)
    )
    session.add(update)
    session.flush()
    return update


def update_text(update: PetitionUpdate, lang: str) -> dict[str, str]:
    """An update's title and body in ``lang``, else in another language it has."""
    for candidate in (lang, "km", "en", *update.texts):
        if candidate in update.texts:
            return dict(update.texts[candidate])
    return {"title": "", "body": ""}


def updates_of(session: Session, petition: Petition) -> Sequence[PetitionUpdate]:
    """The petition's updates, newest first."""
    return session.scalars(
        select(PetitionUpdate)
        .where(PetitionUpdate.petition_id == petition.id)
        .order_by(PetitionUpdate.posted_on.desc(), PetitionUpdate.id.desc())
    ).all()


def recent_updates(session: Session, limit: int = 50) -> Sequence[PetitionUpdate]:
    """Updates of every public petition, newest first (the site's feed)."""
    return session.scalars(
        select(PetitionUpdate)
        .join(Petition, Petition.id == PetitionUpdate.petition_id)
        .where(Petition.petition_json.is_not(None))
        .order_by(PetitionUpdate.posted_on.desc(), PetitionUpdate.id.desc())
        .limit(limit)
    ).all()


def parse_day(value: str, field: str, today: dt.date) -> dt.date:
    """A day written YYYY-MM-DD, not after today."""
    try:
        day = dt.date.fromisoformat(value.strip())
    except ValueError:
        raise TimelineInputError(field, N_("Give the date as YYYY-MM-DD.")) from None
    if day > today:
        raise TimelineInputError(field, N_("This day has not come yet."))
    return day


def record_delivery(
    session: Session, petition: Petition, *, day: dt.date, fields: Mapping[str, str]
) -> TimelineEvent:
    """Record that the petition was handed to an institution."""
    event = TimelineEvent(
        petition_id=petition.id,
        kind=TimelineKind.DELIVERY,
        day=day,
        institution=_text(fields.get("institution", ""), "institution", MAX_FIELD, required=True),
        received_by=_text(fields.get("received_by", ""), "received_by", MAX_FIELD, required=False),
        how=_text(fields.get("how", ""), "how", MAX_FIELD, required=False),
        note=_text(fields.get("note", ""), "note", MAX_TEXT, required=False),
    )
    session.add(event)
    session.flush()
    return event


def attachment_type(data: bytes) -> str:
    """The type of an attachment by its first bytes; TimelineInputError for anything else."""
    if len(data) > MAX_ATTACHMENT:
        raise TimelineInputError("attachment", N_("The file is larger than 10 MB."))
    for magic, kind in ATTACHMENT_TYPES:
        if data.startswith(magic):
            return kind
    raise TimelineInputError("attachment", N_("Attach a PDF, PNG or JPEG file."))


def store_attachment(folder: Path, data: bytes) -> str:
    """Keep ``data`` under its SHA-256 in ``folder`` (written whole, then renamed)."""
    digest = hashlib.sha256(data).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / digest
    if not target.exists():
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".part-", delete=False) as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        Path(out.name).replace(target)
    return digest


def record_response(
    session: Session,
    petition: Petition,
    *,
    day: dt.date,
    fields: Mapping[str, str],
    attachment: bytes | None,
    folder: Path,
) -> TimelineEvent:
    """Record an institution's response; its attachment is checked before anything is kept."""
    institution = _text(fields.get("institution", ""), "institution", MAX_FIELD, required=True)
    summary = _text(fields.get("summary", ""), "summary", MAX_TEXT, required=True)
    note = _text(fields.get("note", ""), "note", MAX_TEXT, required=False)
    kind = attachment_type(attachment) if attachment else None
    event = TimelineEvent(
        petition_id=petition.id,
        kind=TimelineKind.RESPONSE,
        day=day,
        institution=institution,
        summary=summary,
        note=note,
        attachment_type=kind,
        attachment_sha256=store_attachment(folder, attachment) if attachment else None,
    )
    session.add(event)
    session.flush()
    return event


def events_of(session: Session, petition: Petition) -> Sequence[TimelineEvent]:
    """Deliveries and responses, oldest first."""
    return session.scalars(
        select(TimelineEvent)
        .where(TimelineEvent.petition_id == petition.id)
        .order_by(TimelineEvent.day, TimelineEvent.id)
    ).all()


def parse_steps(text: str) -> list[int] | None:
    """Goal steps as typed: numbers separated by commas or spaces, increasing; empty: none."""
    words = text.replace(",", " ").replace("→", " ").split()
    if not words:
        return None
    steps = []
    for word in words:
        if not word.isdecimal() or len(word) > 9 or not 0 < int(word) <= MAX_GOAL:
            raise TimelineInputError(
                "steps", N_("Give the steps as whole numbers, like 15000 100000 500000.")
            )
        steps.append(int(word))
    if steps != sorted(set(steps)) or len(steps) > MAX_STEPS:
        raise TimelineInputError("steps", N_("The steps go up, at most 10 of them."))
    return steps


def set_goal_steps(petition: Petition, steps: list[int] | None) -> None:
    """Set the steps of the goal (None: the goal alone)."""
    petition.goal_steps = steps


@dataclass(frozen=True, kw_only=True)
class GoalStep:
    """Where the count stands against the goal's steps."""

    current: int  # the step being worked towards (the last one once all are reached)
    number: int  # its 1-based number
    total: int  # how many steps
    next: int | None  # the step after it, if any


def goal_step(petition: Petition, count: int) -> GoalStep:
    """The step the count works towards now."""
    steps = list(petition.goal_steps or [petition.goal])
    for number, step in enumerate(steps, start=1):
        if count < step:
            following = steps[number] if number < len(steps) else None
            return GoalStep(current=step, number=number, total=len(steps), next=following)
    return GoalStep(current=steps[-1], number=len(steps), total=len(steps), next=None)


def steps_reached(session: Session, petition: Petition) -> list[tuple[int, dt.date]]:
    """Each step reached, with the first day a published checkpoint counted it."""
    steps = list(petition.goal_steps or [petition.goal])
    reached: list[tuple[int, dt.date]] = []
    rows = session.execute(
        select(SignedCheckpoint.size, SignedCheckpoint.signatures, SignedCheckpoint.published_on)
        .where(SignedCheckpoint.petition_id == petition.id)
        .order_by(SignedCheckpoint.size)
    )
    for size, signatures, day in rows:
        count = size - 1 if signatures is None else signatures
        while steps and day is not None and count >= steps[0]:
            reached.append((steps.pop(0), day))
    return reached


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One line of the public timeline."""

    day: dt.date
    kind: str  # opened, step, closed, delivery, response, update
    value: Any = None


def public_timeline(session: Session, petition: Petition) -> list[Entry]:
    """The campaign's days, oldest first: opened, steps reached, closed, deliveries and
    responses, updates."""
    entries = []
    if petition.opens_on:
        entries.append(Entry(day=petition.opens_on, kind="opened"))
    entries += [Entry(day=d, kind="step", value=s) for s, d in steps_reached(session, petition)]
    if petition.closed_on:
        entries.append(Entry(day=petition.closed_on, kind="closed"))
    entries += [Entry(day=e.day, kind=e.kind, value=e) for e in events_of(session, petition)]
    entries += [
        Entry(day=u.posted_on, kind="update", value=u) for u in updates_of(session, petition)
    ]
    order = {"opened": 0, "step": 1, "closed": 2, "delivery": 3, "response": 4, "update": 5}
    return sorted(entries, key=lambda e: (e.day, order[e.kind]))


def days_without_response(
    session: Session, petition: Petition, today: dt.date
) -> tuple[TimelineEvent, int] | None:
    """The last delivery with no response after it, and the days since; None otherwise."""
    last_delivery = None
    for event in events_of(session, petition):
        if event.kind == TimelineKind.DELIVERY:
            last_delivery = event
        elif last_delivery is not None and event.day >= last_delivery.day:
            last_delivery = None
    if last_delivery is None:
        return None
    return last_delivery, (today - last_delivery.day).days
