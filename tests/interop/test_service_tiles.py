"""The tiles the app serves, read by two other programs over HTTP on loopback.

The app runs as a real HTTP server; a petition's log grows past one full tile over several
sealing rounds. After each round Tessera's fsck fetches every entry bundle and tile the
latest checkpoint implies from ``/p/<slug>/``, recomputes each tile and the root, and
compares; at the end torchwood's client (tests/interop/witnessverify) reads every entry
through the tiles, each checked against the checkpoint.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.serving import make_server

from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import Leaf
from tests.conftest import OpenPetition, seal, sign
from tests.interop.reference import Built, run_tool

# Three rounds: a partial first tile, still partial, then one full tile and a partial second.
BATCHES = [150, 100, 60]


@pytest.fixture
def live(app: Flask) -> Iterator[str]:
    """The app served on loopback by a threaded server; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def fsck(tools: Built, url: str, key: Path) -> str:
    """Run Tessera's fsck on the tile log at ``url``; return its log output."""
    done = run_tool(
        tools.paths["fsck"], f"--storage_url={url}", f"--public_key={key}", "--ui=false", "--N=4"
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_fsck_and_torchwood_read_the_app_s_tiles(
    go_tools: Built,
    app: Flask,
    client: FlaskClient,
    petition: OpenPetition,
    live: str,
    tmp_path: Path,
) -> None:
    url = f"{live}/p/{petition.slug}/"
    vkey = client.get(f"/p/{petition.slug}/vkey").get_data(as_text=True).strip()
    key = tmp_path / "log.vkey"
    key.write_text(vkey + "\n")
    signed = 0
    for batch in BATCHES:
        for _ in range(batch):
            identifier = f"012 {signed // 1000:03d} {signed % 1000:03d}"
            assert sign(client, petition.slug, identifier=identifier).status_code == 200
            signed += 1
        size = seal(app)[petition.slug]
        output = fsck(go_tools, url, key)
        assert "fsck failed" not in output, output
        assert f"Successfully fsck'd log with size {size} and root" in output, output
    assert size == 1 + sum(BATCHES) > 256

    policy = tmp_path / "policy"
    policy.write_text(f"log {vkey}\nquorum none\n")
    done = run_tool(go_tools.paths["witnessverify"], "tiles", url, policy)
    assert done.returncode == 0, done.stderr
    with app.app_context():
        leaves = get_session().scalars(select(Leaf.leaf).order_by(Leaf.index)).all()
    digest = hashlib.sha256(b"".join(leaves)).hexdigest()
    assert done.stdout == f"entries {size} {digest}\n"
