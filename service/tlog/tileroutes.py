"""The log's tiles (C2SP tlog-tiles) under ``/p/<slug>/``, on the log's blueprint.

``tile/<L>/<N>[.p/<W>]`` and ``tile/entries/<N>[.p/<W>]`` (docs/formats.md §22); the log's
``checkpoint`` (service/tlog/routes.py) is the tile log's checkpoint. The views register on
``routes.bp`` when this module is imported, which app.py does before it registers the
blueprint.
"""

from __future__ import annotations

from flask import Response, abort

from samleng.crypto.errors import TileFormatError
from samleng.crypto.tiles import parse_tile_path
from samleng.service.platform.dbsession import get_read_session, reads_replica
from samleng.service.tlog.routes import CACHE, _published, bp
from samleng.service.tlog.tiles import tile_bytes

# A full tile or entry bundle never changes (a log only grows), so caches may keep it for good.
IMMUTABLE = "public, max-age=31536000, immutable"


# Not merged into one: "tile//000" is no tile's spelling (a 404, not a redirect to another).
@bp.get("/tile/<path:rest>", merge_slashes=False)
@reads_replica
def tile(slug: str, rest: str) -> Response:
    """One hash tile or entry bundle; 404 for any path not spelled as tlog-tiles spells it,
    and for a tile the latest checkpoint does not reach."""
    try:
        coordinates = parse_tile_path(f"tile/{rest}")
    except TileFormatError:
        abort(404)
    session = get_read_session()
    data = tile_bytes(session, _published(session, slug), coordinates)
    if data is None:
        abort(404)
    response = Response(data, mimetype="application/octet-stream")
    response.headers["Cache-Control"] = IMMUTABLE if coordinates.is_full else CACHE
    return response
