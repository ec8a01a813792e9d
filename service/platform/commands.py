"""What the packages' commands share: the petition a command names, and the audit trail of
what the operator did."""

from __future__ import annotations

import click

from samleng.service.platform import trail
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.errors import PetitionNotFound
from samleng.service.platform.models import Petition, get_petition


def named_petition(slug: str) -> Petition:
    """The petition SLUG, or a clear command-line error."""
    try:
        return get_petition(get_session(), slug)
    except PetitionNotFound:
        raise click.ClickException(f"no petition with slug {slug!r}") from None


def record_command(action: str, petition: Petition, detail: str = "") -> None:
    """Add what the operator did to the audit trail, committed with the change itself."""
    trail.record(
        get_session(), trail.COMMAND_LINE_ACTOR, action, petition_slug=petition.slug, detail=detail
    )
