"""C2SP tlog-tiles (https://c2sp.org/tlog-tiles): a log as static files (docs/formats.md §22).

A tile at level ``L`` and index ``N`` holds up to 256 consecutive hashes of tree level ``8 L``:
the perfect subtrees ``(8 L, 256 N + i)``, which the service stores already (samleng.crypto.
merkle). Entry bundles hold the leaves themselves, each after its length as ``u16be``. Paths::

    tile/<L>/<N>[.p/<W>]        hash tiles, W = width of a partial tile (1 to 255)
    tile/entries/<N>[.p/<W>]    entry bundles

where ``N`` is written in groups of three digits, all but the last prefixed with ``x``
(1234067 -> ``x001/x234/067``), so that the files can be served as they lie on a disk, with
no file named like a directory. A full tile never changes; partial tiles are kept for every
size that had a checkpoint (the spec requires it), under their own paths.
"""

import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from samleng.crypto.errors import TileConflictError, TileFormatError
from samleng.crypto.merkle import MAX_TREE_SIZE, MemoryTree, SubtreeHashes, leaf_hash

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
ENTRIES = -1  # the level of entry bundles, as in Go's tlog.Tile
MAX_LEVEL = 63
MAX_ENTRY_BYTES = 0xFFFF
CHECKPOINT_PATH = "checkpoint"
_INDEX_GROUP = re.compile(r"x[0-9]{3}")
_LAST_GROUP = re.compile(r"[0-9]{3}")
_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")


@dataclass(frozen=True, kw_only=True, order=True)
class Tile:
    """One tile (``level`` 0 to 63) or entry bundle (``level`` = ENTRIES) of a tiled log."""

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        """Refuse coordinates no tree can have (ValueError)."""
        if not ENTRIES <= self.level <= MAX_LEVEL:
            raise ValueError(f"tile level {self.level} out of range")
        if not 0 <= self.index <= MAX_TREE_SIZE >> TILE_HEIGHT:
            raise ValueError(f"tile index {self.index} out of range")
        if not 1 <= self.width <= TILE_WIDTH:
            raise ValueError(f"tile width {self.width} out of range")

    @property
    def is_full(self) -> bool:
        """Return whether the tile holds all 256 hashes (or entries): then it never changes."""
        return self.width == TILE_WIDTH

    @property
    def path(self) -> str:
        """Return the tile's path under the log's prefix."""
        return tile_path(self)


def encode_tile_index(index: int) -> str:
    """Write a tile index as groups of 3 digits, all but the last prefixed with ``x``."""
    if index < 0:
        raise ValueError("tile index must not be negative")
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


# The groups of the largest index: a longer path is refused before its digits become a number
# (int() of thousands of digits costs time, and past 4300 raises a ValueError of its own).
_MAX_GROUPS = encode_tile_index(MAX_TREE_SIZE >> TILE_HEIGHT).count("/") + 1


def tile_path(tile: Tile) -> str:
    """Return ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``."""
    level = "entries" if tile.level == ENTRIES else str(tile.level)
    partial = "" if tile.is_full else f".p/{tile.width}"
    return f"tile/{level}/{encode_tile_index(tile.index)}{partial}"


def parse_tile_path(path: str) -> Tile:
    """Parse a tile path strictly (the one spelling :func:`tile_path` writes); TileFormatError."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise TileFormatError(f"{path!r} is not a tile path")
    if parts[1] == "entries":
        level = ENTRIES
    elif _LEVEL.fullmatch(parts[1]) and int(parts[1]) <= MAX_LEVEL:
        level = int(parts[1])
    else:
        raise TileFormatError(f"{path!r}: tile level is not 0 to 63 or 'entries'")
    groups = parts[2:]
    width = TILE_WIDTH
    if len(groups) >= 2 and groups[-2].endswith(".p"):
        if not _WIDTH.fullmatch(groups[-1]) or int(groups[-1]) >= TILE_WIDTH:
            raise TileFormatError(f"{path!r}: partial width is not 1 to 255")
        width = int(groups[-1])
        groups = [*groups[:-2], groups[-2][: -len(".p")]]
    if len(groups) > _MAX_GROUPS:
        raise TileFormatError(f"{path!r}: index has more digits than any tile's")
    if not _LAST_GROUP.fullmatch(groups[-1]) or not all(
        _INDEX_GROUP.fullmatch(group) for group in groups[:-1]
    ):
        raise TileFormatError(f"{path!r}: index is not groups of three digits")
    index = int("".join(group.removeprefix("x") for group in groups))
    try:
        tile = Tile(level=level, index=index, width=width)
    except ValueError as err:
        raise TileFormatError(f"{path!r}: {err}") from None
    if tile_path(tile) != path:
        raise TileFormatError(f"{path!r} is not the canonical spelling {tile_path(tile)!r}")
    return tile


def _level_tiles(count: int, level: int, first_full: int = 0) -> list[Tile]:
    """Return the tiles at ``level`` over ``count`` hashes, full ones from ``first_full`` on."""
    tiles = [Tile(level=level, index=i) for i in range(first_full, count // TILE_WIDTH)]
    if count % TILE_WIDTH:
        tiles.append(Tile(level=level, index=count // TILE_WIDTH, width=count % TILE_WIDTH))
    return tiles


def new_tiles(old_size: int, new_size: int) -> list[Tile]:
    """Return the tiles a log of ``new_size`` serves that one of ``old_size`` did not.

    Every full tile completed by the growth, and the partial tiles of ``new_size`` (the ones of
    ``old_size`` stay valid under their own paths). ``old_size`` 0 gives every tile.
    """
    if not 0 <= old_size <= new_size <= MAX_TREE_SIZE:
        raise ValueError(f"cannot grow a log from size {old_size} to {new_size}")
    if old_size == new_size:
        return []
    tiles = _level_tiles(new_size, ENTRIES, old_size // TILE_WIDTH)
    level = 0
    while new_size >> (TILE_HEIGHT * level):
        old_count = old_size >> (TILE_HEIGHT * level)
        new_count = new_size >> (TILE_HEIGHT * level)
        fresh = _level_tiles(new_count, level, old_count // TILE_WIDTH)
        if old_count == new_count:  # nothing changed at this level or above
            break
        tiles += fresh
        level += 1
    return tiles


def tiles_for_size(size: int) -> list[Tile]:
    """Return every tile and entry bundle a log of ``size`` leaves serves for that size."""
    return new_tiles(0, size)


def hash_tile(tile: Tile, subtree: SubtreeHashes) -> bytes:
    """Return a hash tile's contents, read from the stored perfect-subtree hashes."""
    if tile.level == ENTRIES:
        raise ValueError("an entry bundle holds entries, not hashes")
    level = TILE_HEIGHT * tile.level
    first = tile.index * TILE_WIDTH
    return b"".join(subtree(level, first + i) for i in range(tile.width))


def entry_range(tile: Tile) -> tuple[int, int]:
    """Return ``[start, end)``, the leaf indices an entry bundle holds."""
    if tile.level != ENTRIES:
        raise ValueError("only an entry bundle holds entries")
    start = tile.index * TILE_WIDTH
    return start, start + tile.width


def entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Return an entry bundle: each entry after its length as a 2-byte big-endian number."""
    if not 1 <= len(entries) <= TILE_WIDTH:
        raise ValueError("an entry bundle holds 1 to 256 entries")
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_ENTRY_BYTES:
            raise ValueError("an entry is longer than 65535 bytes")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def parse_entry_bundle(data: bytes) -> list[bytes]:
    """Split an entry bundle into its entries; TileFormatError if it is truncated or too long."""
    entries: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise TileFormatError("entry bundle ends inside a length prefix")
        length = int.from_bytes(data[offset : offset + 2], "big")
        offset += 2
        if offset + length > len(data):
            raise TileFormatError("entry bundle ends inside an entry")
        entries.append(data[offset : offset + length])
        offset += length
        if len(entries) > TILE_WIDTH:
            raise TileFormatError("entry bundle holds more than 256 entries")
    return entries


def _write_atomically(path: Path, data: bytes) -> None:
    """Write a file so that a reader (nginx) sees either nothing or all of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_tile(directory: Path, tile: Tile, data: bytes) -> bool:
    """Write one tile unless it is there already; return whether it was written.

    A tile of a given path has one content forever (full tiles, and partial tiles of one
    size). Finding other bytes there means the log changed under a published tile: refuse.
    """
    path = directory / tile.path
    if path.is_file():
        if path.read_bytes() != data:
            raise TileConflictError(
                f"{tile.path} is already written with other contents: the log changed under "
                "a published tile"
            )
        return False
    _write_atomically(path, data)
    return True


def write_tiles(
    directory: Path,
    *,
    size: int,
    subtree: SubtreeHashes,
    entries: Callable[[int, int], Sequence[bytes]],
    checkpoint: bytes,
    since: int = 0,
) -> list[str]:
    """Write the tiles of a log grown from ``since`` to ``size`` leaves, then its checkpoint.

    ``subtree`` serves the stored perfect-subtree hashes, ``entries(start, end)`` the leaves
    ``[start, end)``, and ``checkpoint`` is the signed note of ``size`` (served at
    ``<prefix>/checkpoint``). The checkpoint is written last, so that it never names a size
    whose tiles are not there yet. Return the paths written, tiles first.
    """
    written: list[str] = []
    for tile in new_tiles(since, size):
        if tile.level == ENTRIES:
            data = entry_bundle(entries(*entry_range(tile)))
        else:
            data = hash_tile(tile, subtree)
        if _write_tile(directory, tile, data):
            written.append(tile.path)
    _write_atomically(directory / CHECKPOINT_PATH, checkpoint)
    written.append(CHECKPOINT_PATH)
    return written


def write_log_tiles(directory: Path, leaves: Sequence[bytes], checkpoint: bytes) -> list[str]:
    """Write every tile of the log of these leaves, and its checkpoint, into ``directory``."""
    tree = MemoryTree([leaf_hash(leaf) for leaf in leaves])
    return write_tiles(
        directory,
        size=len(leaves),
        subtree=tree.subtree,
        entries=lambda start, end: leaves[start:end],
        checkpoint=checkpoint,
    )
