"""A petition's log as C2SP tlog-tiles, read from the stored tree (docs/formats.md §22).

The bytes of a tile depend only on the leaves below it, so one function makes them for both
ways of publishing: the app's tile routes (service/tlog/tileroutes.py) answer with
:func:`tile_bytes`, and a sealer that writes the tiles as files for nginx to serve (as
``samleng.crypto.tiles.write_tiles`` does) writes the same bytes under the same paths.
Takes a session as an argument; imports nothing of Flask.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from samleng.crypto.tiles import ENTRIES, TILE_HEIGHT, TILE_WIDTH, Tile, entry_bundle, entry_range
from samleng.service.platform.models import Leaf, Petition, TreeNode
from samleng.service.tlog.store import latest_checkpoint


def tile_width_at(size: int, tile: Tile) -> int:
    """The width tile ``tile.level``/``tile.index`` has in a tree of ``size`` leaves:
    0 if the tree does not reach it yet, 256 once it is full."""
    level = 0 if tile.level == ENTRIES else TILE_HEIGHT * tile.level
    count = size >> level
    return max(0, min(TILE_WIDTH, count - tile.index * TILE_WIDTH))


def tile_exists(size: int, tile: Tile) -> bool:
    """Whether a log of ``size`` leaves serves ``tile``.

    A full tile once the tree holds its 256 members; a partial tile of width W whenever the
    tile has at least W members: its bytes are then fixed forever, whether or not a
    checkpoint was signed at the size where the tile had exactly W, so every partial tile of
    every past checkpoint stays served, as tlog-tiles requires.
    """
    return tile.width <= tile_width_at(size, tile)


def tile_bytes(session: Session, petition: Petition, tile: Tile) -> bytes | None:
    """The contents of ``tile`` of the petition's log, or None if the log's latest checkpoint
    does not reach it (see :func:`tile_exists`).

    Hash tiles are read as one range of stored perfect-subtree hashes (tree level ``8 L``),
    entry bundles as one range of leaves. This is what a sealer writing tiles as files would
    write too, for a tile the size it just signed serves.
    """
    state = latest_checkpoint(session, petition)
    if state is None or not tile_exists(state.size, tile):
        return None
    if tile.level == ENTRIES:
        start, end = entry_range(tile)
        leaves = session.scalars(
            select(Leaf.leaf)
            .where(Leaf.petition_id == petition.id, Leaf.index >= start, Leaf.index < end)
            .order_by(Leaf.index)
        ).all()
        _check_complete(tile, len(leaves))
        return entry_bundle(leaves)
    first = tile.index * TILE_WIDTH
    hashes = session.scalars(
        select(TreeNode.hash)
        .where(
            TreeNode.petition_id == petition.id,
            TreeNode.level == TILE_HEIGHT * tile.level,
            TreeNode.index >= first,
            TreeNode.index < first + tile.width,
        )
        .order_by(TreeNode.index)
    ).all()
    _check_complete(tile, len(hashes))
    return b"".join(hashes)


def _check_complete(tile: Tile, found: int) -> None:
    # Leaves, nodes and their checkpoint are committed together, so this does not happen;
    # if it did, a short tile must never be served (a client would take it as the tile).
    if found != tile.width:
        raise LookupError(f"{tile.path}: {found} of its {tile.width} rows are stored")
