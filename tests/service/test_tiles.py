"""The log's tiles (tlog-tiles) and consistency proofs to a chosen size, through the app.

Every tile the app serves is compared with what ``samleng.crypto.tiles.write_log_tiles``
writes for the same leaves and checkpoint: the app computes tiles from the stored tree, the
writer from the leaves alone.
"""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from samleng.crypto.checkpoint import verify_checkpoint
from samleng.crypto.merkle import verify_consistency
from samleng.crypto.tiles import TILE_WIDTH, Tile, tiles_for_size, write_log_tiles
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import Leaf
from samleng.service.tlog.tiles import tile_exists, tile_width_at
from tests.conftest import OpenPetition, add_petition, seal, sign

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=5"


def grow(app: Flask, client: FlaskClient, slug: str, batches: list[int]) -> list[int]:
    """Sign and seal ``batches`` signatures in turn; return every size with a checkpoint."""
    sizes = [1]
    signed = 0
    for batch in batches:
        for _ in range(batch):
            answer = sign(client, slug, identifier=f"012 {signed // 1000:03d} {signed % 1000:03d}")
            assert answer.status_code == 200
            signed += 1
        sizes.append(seal(app)[slug])
    return sizes


def stored_leaves(app: Flask) -> list[bytes]:
    with app.app_context():
        return list(get_session().scalars(select(Leaf.leaf).order_by(Leaf.index)))


def written_tiles(directory: Path, leaves: list[bytes], note: bytes) -> dict[str, bytes]:
    """What the file writer makes of these leaves: path -> bytes, the checkpoint left out."""
    paths = write_log_tiles(directory, leaves, note)
    return {path: (directory / path).read_bytes() for path in paths if path != "checkpoint"}


def check_served(client: FlaskClient, slug: str, tiles: dict[str, bytes]) -> None:
    for path, data in tiles.items():
        answer = client.get(f"/p/{slug}/{path}")
        assert answer.status_code == 200, path
        assert answer.data == data, path
        assert answer.mimetype == "application/octet-stream"
        full = ".p/" not in path
        assert answer.headers["Cache-Control"] == (IMMUTABLE if full else SHORT), path


def test_the_tiles_of_every_checkpoint_are_the_writer_s(
    app: Flask, client: FlaskClient, petition: OpenPetition, tmp_path: Path
) -> None:
    """A log past 256 leaves: full tiles and bundles, and the partial ones of every
    checkpoint it had, each equal to what write_log_tiles writes for that checkpoint."""
    sizes = grow(app, client, petition.slug, [100, 160, 40])
    assert sizes == [1, 101, 261, 301]
    leaves = stored_leaves(app)
    assert len(leaves) == 301
    served: set[str] = set()
    for size in sizes:
        note = client.get(f"/p/{petition.slug}/checkpoints/{size}").data
        tiles = written_tiles(tmp_path / str(size), leaves[:size], note)
        assert set(tiles) == {tile.path for tile in tiles_for_size(size)}
        check_served(client, petition.slug, tiles)
        served |= set(tiles)
    assert {"tile/0/000", "tile/entries/000", "tile/0/001.p/45", "tile/1/000.p/1"} <= served
    assert {"tile/0/000.p/101", "tile/entries/001.p/5"} <= served  # of older checkpoints
    # A partial width no checkpoint had is served as well: its bytes are fixed all the same.
    between = written_tiles(tmp_path / "between", leaves[:150], b"unused\n")
    check_served(client, petition.slug, {p: d for p, d in between.items() if ".p/150" in p})


def test_a_small_log_s_tiles(
    app: Flask, client: FlaskClient, petition: OpenPetition, tmp_path: Path
) -> None:
    grow(app, client, petition.slug, [3])
    note = client.get(f"/p/{petition.slug}/checkpoint").data
    tiles = written_tiles(tmp_path, stored_leaves(app), note)
    assert set(tiles) == {"tile/0/000.p/4", "tile/entries/000.p/4"}
    check_served(client, petition.slug, tiles)
    # The first checkpoint's (the header leaf alone), and nothing wider than the tree.
    assert client.get(f"/p/{petition.slug}/tile/0/000.p/1").status_code == 200
    for beyond in ["tile/0/000.p/5", "tile/0/000", "tile/entries/000", "tile/1/000.p/1"]:
        assert client.get(f"/p/{petition.slug}/{beyond}").status_code == 404, beyond


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/5",
        "tile/0/0000",
        "tile/0/x000/000",  # not canonical: 0 is 000
        "tile/0/x1/000",
        "tile/0/001/000",  # the first group lacks its x
        "tile/00/000",
        "tile/64/000",
        "tile/99999999999999999999/000",
        "tile/-1/000",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/01",
        "tile/0/000.p/",
        "tile/0/000.p",
        "tile/0/000.p/1/2",
        "tile/entries/000.p/999999999999999999999999",
        "tile/0/000/",
        "tile//000",
        "tile/0",
        "tile/",
        "tile/entry/000",
        "tile/0/٠٠٠",  # Arabic-Indic digits: str.isdigit() takes them, the spec does not
        "tile/0/000.p/٣",
        "tile/٠/000",
        "tile/0/០០០",  # Khmer digits
        "tile/0/x999/x999/x999/x999/x999/x999/999",  # beyond any tree of 2**63 leaves
        "tile/0/" + "x999/" * 1500 + "999",  # more digits than int() converts
        "tile/entries/" + "x001/" * 2000 + "000.p/3",
        "tile/0/000%0a",
        "tile/0/\x00",
    ],
)
def test_bad_tile_paths_are_not_found(
    client: FlaskClient, petition: OpenPetition, path: str
) -> None:
    assert client.get(f"/p/{petition.slug}/tile/0/000.p/1").status_code == 200
    for spelled in (path, quote(path, safe="/")):
        answer = client.get(f"/p/{petition.slug}/{spelled}")
        assert answer.status_code == 404, spelled
        assert answer.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/001",  # a full tile of a tree of one leaf
        "tile/0/000",
        "tile/0/000.p/2",
        "tile/entries/000.p/2",
        "tile/entries/001.p/1",
        "tile/1/000.p/1",
        "tile/63/000.p/1",
        "tile/0/x001/000",
        "tile/entries/x999/x999/x999/x999/x999/999",
    ],
)
def test_tiles_beyond_the_tree_are_not_found(
    client: FlaskClient, petition: OpenPetition, path: str
) -> None:
    assert client.get(f"/p/{petition.slug}/{path}").status_code == 404


def test_only_published_logs_serve_tiles(app: Flask, client: FlaskClient) -> None:
    add_petition(app, slug="draft", status="draft")
    assert client.get("/p/draft/tile/0/000.p/1").status_code == 404
    assert client.get("/p/nobody/tile/0/000.p/1").status_code == 404


@pytest.mark.parametrize(
    ("level", "index", "size", "width"),
    [
        (-1, 0, 0, 0),
        (-1, 0, 1, 1),
        (-1, 0, 256, 256),
        (-1, 0, 300, 256),
        (-1, 1, 300, 44),
        (-1, 2, 300, 0),
        (0, 1, 300, 44),
        (1, 0, 300, 1),
        (1, 0, 255, 0),
        (2, 0, 256**2, 1),
        (2, 0, 256**2 - 1, 0),
        (1, 1, 256**3, 256),
        (63, 0, 2**63 - 1, 0),
    ],
)
def test_tile_widths(level: int, index: int, size: int, width: int) -> None:
    assert tile_width_at(size, Tile(level=level, index=index)) == width
    full = Tile(level=level, index=index)
    assert tile_exists(size, full) == (width == TILE_WIDTH)
    for partial in (1, 2, 255):
        assert tile_exists(size, Tile(level=level, index=index, width=partial)) == (
            partial <= width
        )


# --- consistency proofs to a chosen size ------------------------------------------------------


def proof_of(client: FlaskClient, slug: str, query: dict[str, str]) -> tuple[int, list[bytes]]:
    answer = client.get(f"/p/{slug}/proof/consistency", query_string=query)
    assert answer.status_code == 200, answer.status_code
    assert answer.headers["Cache-Control"] == SHORT
    proof = [base64.b64decode(line) for line in answer.data.splitlines()]
    return int(answer.headers["Samleng-Tree-Size"]), proof


def test_consistency_to_a_chosen_checkpoint(
    app: Flask, client: FlaskClient, petition: OpenPetition
) -> None:
    sizes = grow(app, client, petition.slug, [3, 2, 4])
    assert sizes == [1, 4, 6, 10]
    vkey = client.get(f"/p/{petition.slug}/vkey").get_data(as_text=True).strip()
    checkpoints = {
        size: verify_checkpoint(client.get(f"/p/{petition.slug}/checkpoints/{size}").data, vkey)
        for size in sizes
    }
    for new in sizes:
        for old in range(1, new + 1):
            size, proof = proof_of(client, petition.slug, {"old": str(old), "new": str(new)})
            assert size == new
            old_root = checkpoints[old].root if old in checkpoints else None
            if old_root is not None:
                verify_consistency(old, new, old_root, checkpoints[new].root, proof)
            if old == new:
                assert proof == []
    # Without `new`, to the latest size, which the header says.
    assert proof_of(client, petition.slug, {"old": "4"}) == proof_of(
        client, petition.slug, {"old": "4", "new": "10"}
    )
    assert proof_of(client, petition.slug, {"old": "4"})[0] == 10


def test_consistency_to_a_size_without_a_checkpoint(
    app: Flask, client: FlaskClient, petition: OpenPetition
) -> None:
    grow(app, client, petition.slug, [3, 2])
    answer = client.get(f"/p/{petition.slug}/proof/consistency?old=1&new=5")
    assert answer.status_code == 404
    assert answer.get_data(as_text=True) == "no checkpoint of size 5\n"
    assert "Samleng-Tree-Size" not in answer.headers


@pytest.mark.parametrize(
    "query",
    [
        {"new": "4"},  # no old
        {"old": "1", "new": "7"},  # beyond the latest size
        {"old": "5", "new": "4"},  # old after new
        {"old": "1", "new": "0"},
        {"old": "0", "new": "4"},
        {"old": "1", "new": ""},
        {"old": "1", "new": "x"},
        {"old": "1", "new": "٤"},
        {"old": "1", "new": "4.0"},
        {"old": "1", "new": " 4"},
        {"old": "1", "new": "-4"},
        {"old": "1", "new": "+4"},
        {"old": "1", "new": "99999999999999999999999"},
        {"old": "1", "new": "9" * 5000},
        {"old": "9" * 5000, "new": "4"},
    ],
)
def test_bad_consistency_sizes(
    app: Flask, client: FlaskClient, petition: OpenPetition, query: dict[str, str]
) -> None:
    grow(app, client, petition.slug, [3, 2])
    answer = client.get(f"/p/{petition.slug}/proof/consistency", query_string=query)
    assert answer.status_code == 400
