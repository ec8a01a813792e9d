"""The campaign's public side: updates (and their Atom feeds), the timeline's attachments.

Feeds are written with feedgen, with absolute addresses on the configured origin, or on the
onion address for a reader who came through it; they carry nothing but the organisers' texts
and days, and load nothing from anywhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flask import Response, abort, current_app, g, render_template, send_file, url_for
from sqlalchemy import select

from samleng.service.petitions.timeline import (
    ATTACHMENTS,
    recent_updates,
    update_text,
    updates_of,
)
from samleng.service.platform.context import services
from samleng.service.platform.dbsession import get_read_session, get_session, reads_replica
from samleng.service.platform.markdown import render_markdown
from samleng.service.platform.models import Petition, PetitionUpdate, TimelineEvent
from samleng.service.web.public import bp, root, visible_petition
from samleng.service.web.security import is_onion_request

FEED_CACHE = "public, max-age=60"
_EXTENSIONS = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}


def site_base() -> str:
    """The absolute start of this site's addresses: the onion for onion readers."""
    cfg = services().config
    if cfg.onion_address and is_onion_request():
        return f"http://{cfg.onion_address}"
    return f"https://{cfg.origin}"


@bp.get("/p/<slug>/updates")
@reads_replica
def updates(slug: str) -> Any:
    """Every update of the petition, newest first."""
    session = get_read_session()
    petition = visible_petition(session, slug)
    listed = [
        (u, update_text(u, g.lang), render_markdown(update_text(u, g.lang)["body"]))
        for u in updates_of(session, petition)
    ]
    return render_template(
        "public/updates.html", petition=petition, text=petition.text(g.lang), updates=listed
    )


def _feed(
    title: str, page: str, feed_url: str, entries: Sequence[tuple[Petition, PetitionUpdate]]
) -> Response:
    # Imported with the first feed asked for: workers that serve none carry neither feedgen
    # nor its lxml (9 MiB).
    from feedgen.feed import FeedGenerator

    feed = FeedGenerator()
    feed.id(feed_url)
    feed.title(title)
    feed.link(href=page, rel="alternate")
    feed.link(href=feed_url, rel="self")
    feed.language(g.lang)
    newest = max((u.posted_on for _, u in entries), default=dt.date(2026, 1, 1))
    feed.updated(dt.datetime.combine(newest, dt.time(), tzinfo=dt.UTC))
    for petition, update in reversed(entries):  # feedgen puts the last added first
        text = update_text(update, g.lang)
        link = site_base() + url_for("public.updates", slug=petition.slug) + f"#update-{update.id}"
        entry = feed.add_entry()
        entry.id(link)
        entry.title(text["title"])
        entry.link(href=link, rel="alternate")
        # A day, never a time of day: the organisers post by the day.
        entry.updated(dt.datetime.combine(update.posted_on, dt.time(), tzinfo=dt.UTC))
        entry.content(str(render_markdown(text["body"])), type="html")
    response = Response(feed.atom_str(pretty=True), mimetype="application/atom+xml")
    response.headers["Cache-Control"] = FEED_CACHE
    return response


@bp.get("/p/<slug>/updates.atom")
@reads_replica
def petition_feed(slug: str) -> Response:
    """The petition's updates as an Atom feed."""
    session = get_read_session()
    petition = visible_petition(session, slug)
    base = site_base()
    entries = [(petition, u) for u in updates_of(session, petition)[:50]]
    return _feed(
        petition.text(g.lang)["title"],
        base + url_for("public.petition", slug=slug),
        base + url_for("public.petition_feed", slug=slug),
        entries,
    )


@bp.get("/updates.atom")
@reads_replica
def site_feed() -> Response:
    """Every petition's updates as one Atom feed."""
    session = get_read_session()
    base = site_base()
    entries = []
    for update in recent_updates(session):
        petition = session.get(Petition, update.petition_id)
        if petition is not None:
            entries.append((petition, update))
    return _feed(
        str(services().config.origin),
        base + url_for("public.index"),
        base + url_for("public.site_feed"),
        entries,
    )


@root.get("/p/<slug>/attachments/<digest>")
def attachment(slug: str, digest: str) -> Response:
    """A response's attachment, as a download (never shown inline)."""
    # On the primary: the file arrives with the row, which a lagging replica may not have yet.
    session = get_session()
    petition = visible_petition(session, slug)
    event = session.scalar(
        select(TimelineEvent).where(
            TimelineEvent.petition_id == petition.id, TimelineEvent.attachment_sha256 == digest
        )
    )
    if event is None or event.attachment_type is None:
        abort(404)
    path = Path(current_app.instance_path) / ATTACHMENTS / digest
    if not path.is_file():
        abort(404)
    extension = _EXTENSIONS.get(event.attachment_type, "bin")
    response = send_file(
        path,
        mimetype=event.attachment_type,
        as_attachment=True,
        download_name=f"{slug}-response-{event.day.isoformat()}.{extension}",
    )
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response
