"""The audit trail: who did what to which petition, and when. Never any signer data."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from samleng.service.platform.models import AuditEvent

# The actor of what the service does by itself (closing a petition at its deadline).
SYSTEM_ACTOR = "(deadline)"
# The actor of what an operator does with the ``samleng`` command on the server.
COMMAND_LINE_ACTOR = "(command line)"


def record(
    session: Session,
    actor: str,
    action: str,
    *,
    petition_slug: str | None = None,
    detail: str = "",
    organisation: str = "",
) -> AuditEvent:
    """Add one event to the session (committed with the action it records); ``organisation``
    is the handle of the organisation the actor acted for."""
    event = AuditEvent(
        actor=actor[:64],
        organisation=organisation[:64],
        action=action[:40],
        petition_slug=petition_slug,
        detail=detail[:300],
    )
    session.add(event)
    return event


def events(
    session: Session, *, petition_slug: str | None = None, limit: int = 200
) -> Sequence[AuditEvent]:
    """The newest events first, all or for one petition."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if petition_slug is not None:
        query = query.where(AuditEvent.petition_slug == petition_slug)
    return session.scalars(query).all()
