"""The log's public, machine-readable endpoints: checkpoints, proofs and the count.

These are language-independent and cacheable for a few seconds (DESIGN §10).
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, jsonify, request, send_file
from sqlalchemy.orm import Session

from samleng.service.platform.dbsession import get_read_session, get_session, reads_replica
from samleng.service.platform.errors import PetitionNotFound
from samleng.service.platform.models import Petition, PetitionStatus, get_petition
from samleng.service.tlog.delivery import DeliveryError
from samleng.service.tlog.export import cached_bundle_zip
from samleng.service.tlog.store import checkpoint_note, consistency, latest_checkpoint

bp = Blueprint("log", __name__, url_prefix="/p/<slug>")
CACHE = "public, max-age=5"
# The log stays public after "forget" (which destroys only the dedup key and tokens): the
# delivery document's QR code points at the bundle for as long as the site runs.
PUBLISHED = (PetitionStatus.OPEN, PetitionStatus.CLOSED, PetitionStatus.FORGOTTEN)
CLOSED = (PetitionStatus.CLOSED, PetitionStatus.FORGOTTEN)
BUNDLE_CACHE_DIR = "bundles"
# Log sizes are stored as 64-bit signed integers (SQLite INTEGER, PostgreSQL BIGINT).
MAX_LOG_SIZE = 2**63 - 1
# Which size a consistency proof goes to, since `new` may be left out.
TREE_SIZE_HEADER = "Samleng-Tree-Size"
logger = logging.getLogger(__name__)


def _published(session: Session, slug: str, statuses: tuple[str, ...] = PUBLISHED) -> Petition:
    """A petition whose log is public (and whose status is one of ``statuses``), or 404."""
    try:
        petition = get_petition(session, slug)
    except PetitionNotFound:
        abort(404)
    if petition.status not in statuses or petition.log_vkey is None:
        abort(404)
    return petition


def _text(body: bytes) -> Response:
    response = Response(body, mimetype="text/plain")
    response.headers["Cache-Control"] = CACHE
    return response


@bp.get("/checkpoint")
@reads_replica
def checkpoint(slug: str) -> Response:
    """The latest signed checkpoint."""
    session = get_read_session()
    state = latest_checkpoint(session, _published(session, slug))
    if state is None:  # opening a petition publishes its first checkpoint; never here
        abort(404)
    return _text(state.note)


@bp.get("/checkpoints/<int:size>")
@reads_replica
def historical_checkpoint(slug: str, size: int) -> Response:
    """The checkpoint published when the log had ``size`` leaves."""
    if size > MAX_LOG_SIZE:  # no log is that large, and the database could not compare it
        abort(404)
    session = get_read_session()
    note = checkpoint_note(session, _published(session, slug), size)
    if note is None:
        abort(404)
    return _text(note)


@bp.get("/vkey")
@reads_replica
def vkey(slug: str) -> Response:
    """The log's verifier key (also in petition.json)."""
    petition = _published(get_read_session(), slug)
    vkey = petition.log_vkey or ""  # _published answers 404 when there is none
    return _text(vkey.encode() + b"\n")


def _size_argument(name: str, largest: int, default: int | None = None) -> int:
    """A log size from the query string, 1 to ``largest``, or 400; ``default`` if absent."""
    text = request.args.get(name)
    if text is None and default is not None:
        return default
    if text is None:
        abort(400)
    # ASCII digits only: int() would also take "٣", "1_000" or " 7"; and no more digits than
    # a 64-bit size has (int() refuses more than 4300 digits with a ValueError of its own).
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_LOG_SIZE)):
        abort(400)
    size = int(text)
    if not 1 <= size <= largest:
        abort(400)
    return size


@bp.get("/proof/consistency")
@reads_replica
def consistency_proof(slug: str) -> Response:
    """RFC 9162 consistency proof from size ``old`` to size ``new`` (a checkpoint's; the
    latest by default), one base64 hash a line; ``Samleng-Tree-Size`` says ``new``."""
    session = get_read_session()
    petition = _published(session, slug)
    state = latest_checkpoint(session, petition)
    if state is None:
        abort(404)
    new = _size_argument("new", state.size, default=state.size)
    old = _size_argument("old", new)
    if new != state.size and checkpoint_note(session, petition, new) is None:
        # A proof to a size nobody was shown a checkpoint of proves nothing to anyone.
        return Response(f"no checkpoint of size {new}\n", 404, mimetype="text/plain")
    proof = consistency(session, petition, old, new)
    response = _text(b"".join(base64.b64encode(h) + b"\n" for h in proof))
    response.headers[TREE_SIZE_HEADER] = str(new)
    return response


@bp.get("/count.json")
@reads_replica
def count_json(slug: str) -> Response:
    """The count (online and on paper apart, and the photo pledges among the online ones),
    the goal and the log size of the latest checkpoint."""
    session = get_read_session()
    petition = _published(session, slug)
    state = latest_checkpoint(session, petition)
    if state is None:  # opening a petition publishes its first checkpoint; never here
        abort(404)
    response = jsonify(
        {
            "count": state.count,
            "online": state.online,
            "paper": state.paper,
            "photos": state.photos,
            "goal": petition.goal,
            "size": state.size,
        }
    )
    response.headers["Cache-Control"] = CACHE
    return response


@bp.get("/bundle.zip")
def bundle_zip(slug: str) -> Response:
    """The export bundle of a closed petition as a zip (what delivery.pdf's QR code opens).

    From the primary: the zip made replaces the petition's older ones, and a replica a batch
    behind would make an older one again (writing a whole bundle, to delete the newer)."""
    session = get_session()
    petition = _published(session, slug, CLOSED)
    cache = Path(current_app.instance_path) / BUNDLE_CACHE_DIR
    try:
        path = cached_bundle_zip(session, petition, cache)
    except DeliveryError as exc:
        logger.error("bundle.zip for %s: %s", petition.slug, exc)
        abort(503)
    response = send_file(
        path,
        mimetype="application/zip",
        as_attachment=True,
        download_name=f"{petition.slug}-bundle.zip",
        conditional=True,
        max_age=60,
    )
    response.headers["Cache-Control"] = CACHE
    return response
