"""The log's public, machine-readable endpoints: checkpoints, proofs and the count.

These are language-independent and cacheable for a few seconds (DESIGN §10).
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, jsonify, request, send_file

from samleng.service.platform.dbsession import get_session
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
logger = logging.getLogger(__name__)


def _published(slug: str, statuses: tuple[str, ...] = PUBLISHED) -> Petition:
    """A petition whose log is public (and whose status is one of ``statuses``), or 404."""
    try:
        petition = get_petition(get_session(), slug)
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
def checkpoint(slug: str) -> Response:
    """The latest signed checkpoint."""
    petition = _published(slug)
    state = latest_checkpoint(get_session(), petition)
    if state is None:  # opening a petition publishes its first checkpoint; never here
        abort(404)
    return _text(state.note)


@bp.get("/checkpoints/<int:size>")
def historical_checkpoint(slug: str, size: int) -> Response:
    """The checkpoint published when the log had ``size`` leaves."""
    if size > MAX_LOG_SIZE:  # no log is that large, and the database could not compare it
        abort(404)
    note = checkpoint_note(get_session(), _published(slug), size)
    if note is None:
        abort(404)
    return _text(note)


@bp.get("/vkey")
def vkey(slug: str) -> Response:
    """The log's verifier key (also in petition.json)."""
    petition = _published(slug)
    vkey = petition.log_vkey or ""  # _published answers 404 when there is none
    return _text(vkey.encode() + b"\n")


@bp.get("/proof/consistency")
def consistency_proof(slug: str) -> Response:
    """RFC 9162 consistency proof from size ``old`` to the latest, one base64 hash a line."""
    petition = _published(slug)
    session = get_session()
    state = latest_checkpoint(session, petition)
    if state is None:
        abort(404)
    text = request.args.get("old", "")
    # ASCII digits only: int() would also take "٣", "1_000" or " 7".
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= state.size:
        abort(400)
    old = int(text)
    proof = consistency(session, petition, old, state.size)
    return _text(b"".join(base64.b64encode(h) + b"\n" for h in proof))


@bp.get("/count.json")
def count_json(slug: str) -> Response:
    """The count, the goal and the log size of the latest checkpoint."""
    petition = _published(slug)
    state = latest_checkpoint(get_session(), petition)
    if state is None:  # opening a petition publishes its first checkpoint; never here
        abort(404)
    response = jsonify({"count": state.count, "goal": petition.goal, "size": state.size})
    response.headers["Cache-Control"] = CACHE
    return response


@bp.get("/bundle.zip")
def bundle_zip(slug: str) -> Response:
    """The export bundle of a closed petition as a zip (what delivery.pdf's QR code opens)."""
    petition = _published(slug, CLOSED)
    cache = Path(current_app.instance_path) / BUNDLE_CACHE_DIR
    try:
        path = cached_bundle_zip(get_session(), petition, cache)
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
