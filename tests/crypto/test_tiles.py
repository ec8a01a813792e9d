"""C2SP tlog-tiles: paths, which tiles a size has, tile contents, entry bundles, the files.

tests/interop/test_tiles.py has Tessera's fsck and torchwood's client read the same files.
"""

import os
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samleng.crypto.errors import TileConflictError, TileFormatError
from samleng.crypto.merkle import MemoryTree, leaf_hash, root_hash
from samleng.crypto.tiles import (
    ENTRIES,
    TILE_WIDTH,
    Tile,
    encode_tile_index,
    entry_bundle,
    entry_range,
    hash_tile,
    new_tiles,
    parse_entry_bundle,
    parse_tile_path,
    tile_path,
    tiles_for_size,
    write_log_tiles,
    write_tiles,
)
from tests.crypto.logfactory import make_log


def test_index_encoding_of_the_spec() -> None:
    assert encode_tile_index(1234067) == "x001/x234/067"
    assert [encode_tile_index(n) for n in (0, 7, 999, 1000, 1001000)] == [
        "000",
        "007",
        "999",
        "x001/000",
        "x001/x001/000",
    ]
    assert tile_path(Tile(level=0, index=1234067)) == "tile/0/x001/x234/067"
    assert tile_path(Tile(level=3, index=2, width=17)) == "tile/3/002.p/17"
    assert tile_path(Tile(level=ENTRIES, index=0, width=1)) == "tile/entries/000.p/1"


def test_the_tiles_of_the_spec_examples() -> None:
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0
    # tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and one
    # partial level 2 tile of width 1"; entry bundles mirror level 0.
    tiles = tiles_for_size(70000)
    count = Counter((t.level, t.is_full) for t in tiles)
    assert count == {
        (ENTRIES, True): 273,
        (ENTRIES, False): 1,
        (0, True): 273,
        (0, False): 1,
        (1, True): 1,
        (1, False): 1,
        (2, False): 1,
    }
    partial = sorted(t.path for t in tiles if not t.is_full)
    assert partial == [
        "tile/0/273.p/112",
        "tile/1/001.p/17",
        "tile/2/000.p/1",
        "tile/entries/273.p/112",
    ]
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile
    # of width 1"
    assert sorted(t.path for t in tiles_for_size(256)) == [
        "tile/0/000",
        "tile/1/000.p/1",
        "tile/entries/000",
    ]
    assert tiles_for_size(0) == []


@given(old=st.integers(0, 2**20), grow=st.integers(0, 2**20))
def test_new_tiles_are_exactly_the_difference(old: int, grow: int) -> None:
    before = {t.path for t in tiles_for_size(old)}
    after = {t.path for t in tiles_for_size(old + grow)}
    fresh = [t.path for t in new_tiles(old, old + grow)]
    assert len(fresh) == len(set(fresh))
    assert set(fresh) == after - before


@given(
    level=st.integers(ENTRIES, 63),
    index=st.integers(0, 2**55 - 1),
    width=st.integers(1, TILE_WIDTH),
)
def test_paths_round_trip(level: int, index: int, width: int) -> None:
    tile = Tile(level=level, index=index, width=width)
    assert parse_tile_path(tile.path) == tile


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/5",
        "tile/0/0005",
        "tile/0/x000/005",  # not canonical: index 5 is 005
        "tile/0/x1/005",
        "tile/0/001/005",  # the first group lacks its x
        "tile/00/000",
        "tile/64/000",
        "tile/-1/000",
        "tile/data/000",
        "tile/0/000.p/256",
        "tile/0/000.p/0",
        "tile/0/000.p/05",
        "tile/0/000.p",
        "tile/0/000.p/1/2",
        "tile/0/",
        "tile/0",
        "tiles/0/000",
        "/tile/0/000",
        "tile/0/x001/000/",
        # More groups than any index has: refused before the digits become a number
        # (int() refuses more than 4300 digits with a ValueError of its own).
        "tile/0/" + "x001/" * 6 + "000",
        "tile/0/" + "x999/" * 1500 + "999",
        "tile/entries/" + "x001/" * 1500 + "000.p/5",
    ],
)
def test_non_canonical_paths_are_refused(path: str) -> None:
    with pytest.raises(TileFormatError):
        parse_tile_path(path)


def test_tile_contents_are_the_stored_subtrees() -> None:
    leaves = [i.to_bytes(4, "big") for i in range(TILE_WIDTH * TILE_WIDTH + 300)]
    hashes = [leaf_hash(leaf) for leaf in leaves]
    tree = MemoryTree(hashes)
    first = hash_tile(Tile(level=0, index=1), tree.subtree)
    assert first == b"".join(hashes[256:512])
    partial = hash_tile(Tile(level=0, index=256, width=44), tree.subtree)
    assert partial == b"".join(hashes[65536 : 65536 + 44])
    # Level 1: each hash is the tree hash of 256 leaves (a whole tile of level 0).
    level1 = hash_tile(Tile(level=1, index=0), tree.subtree)
    assert len(level1) == 32 * 256
    for i in (0, 1, 255):
        assert level1[32 * i : 32 * (i + 1)] == root_hash(hashes[256 * i : 256 * (i + 1)])
    level2 = hash_tile(Tile(level=2, index=0, width=1), tree.subtree)
    assert level2 == root_hash(hashes[:65536])
    with pytest.raises(ValueError, match="no complete subtree"):
        hash_tile(Tile(level=0, index=257, width=45), tree.subtree)  # one past the end
    with pytest.raises(ValueError):
        hash_tile(Tile(level=ENTRIES, index=0), tree.subtree)


def test_entry_bundles() -> None:
    leaves = [bytes([i]) * 81 for i in range(3)]
    bundle = entry_bundle(leaves)
    assert bundle == b"".join(b"\x00\x51" + leaf for leaf in leaves)
    assert parse_entry_bundle(bundle) == leaves
    assert parse_entry_bundle(entry_bundle([b"", b"x" * 65535])) == [b"", b"x" * 65535]
    for bad in (bundle[:-1], bundle + b"\x00", b"\x00\x05abc"):
        with pytest.raises(TileFormatError):
            parse_entry_bundle(bad)
    with pytest.raises(TileFormatError, match="256"):
        parse_entry_bundle(b"\x00\x00" * 257)
    with pytest.raises(ValueError):
        entry_bundle([b"x" * 65536])
    with pytest.raises(ValueError):
        entry_bundle([])
    assert entry_range(Tile(level=ENTRIES, index=2, width=5)) == (512, 517)


def _files(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_write_a_log_then_grow_it(tmp_path: Path) -> None:
    log = make_log(600)
    written = write_log_tiles(tmp_path / "all", log.leaves, log.checkpoint())
    files = _files(tmp_path / "all")
    assert written[-1] == "checkpoint" and set(written) == set(files)
    assert files["checkpoint"] == log.checkpoint()
    assert set(files) == {"checkpoint", *(t.path for t in tiles_for_size(601))}
    assert parse_entry_bundle(files["tile/entries/001"]) == log.leaves[256:512]
    assert files["tile/0/002.p/89"] == b"".join(leaf_hash(x) for x in log.leaves[512:])
    assert files["tile/1/000.p/2"] == log.tree.subtree(8, 0) + log.tree.subtree(8, 1)
    assert all(oct(os.stat(tmp_path / "all" / p).st_mode)[-3:] == "644" for p in files)

    # Grown in three steps, as the sealer would: the same files, plus each step's partials.
    grown = tmp_path / "grown"
    steps = [0, 1, 300, 601]
    for old, new in zip(steps, steps[1:], strict=False):
        write_tiles(
            grown,
            size=new,
            subtree=log.tree.subtree,
            entries=lambda start, end: log.leaves[start:end],
            checkpoint=log.checkpoint(new),
            since=old,
        )
    after = _files(grown)
    assert {k: v for k, v in after.items() if k in files} == files
    extra = set(after) - set(files)
    assert extra == {t.path for size in (1, 300) for t in tiles_for_size(size) if not t.is_full}
    assert not list(grown.rglob(".tmp-*"))


def test_a_published_tile_is_never_replaced(tmp_path: Path) -> None:
    log = make_log(300)
    write_log_tiles(tmp_path, log.leaves, log.checkpoint())
    assert write_log_tiles(tmp_path, log.leaves, log.checkpoint()) == ["checkpoint"]
    other = make_log(300, seed=9)  # another log under the same folder: its tiles differ
    with pytest.raises(TileConflictError, match="tile/entries/000"):
        write_log_tiles(tmp_path, other.leaves, other.checkpoint())
    assert (tmp_path / "checkpoint").read_bytes() == log.checkpoint()
