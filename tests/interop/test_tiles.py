"""Tiles written by crypto/tiles.py, served over HTTP on loopback, read by two other programs.

Tessera's fsck refetches every entry bundle and tile the checkpoint implies, recomputes each
tile and the root, and compares; torchwood's client (tests/interop/witnessverify) reads every
entry through the tiles, checking each against the checkpoint. The files are served under
``/p/<slug>/`` by Python's http.server, as nginx will serve them from the same folder.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from samleng.crypto.tiles import write_log_tiles
from tests.crypto.logfactory import PetitionLog, make_log
from tests.interop.reference import Built, run_tool

SLUG = "end-impunity"


class _QuietHandler(SimpleHTTPRequestHandler):
    # Keep-alive, as nginx: the Go clients fetch tiles over a few reused connections.
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        """Log nothing: the test reads the tools' output, not the server's."""


class _TileServer(ThreadingHTTPServer):
    # The clients fetch tiles in parallel: socketserver's backlog of 5 would drop their SYNs,
    # each costing a one-second retransmission.
    request_queue_size = 128
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A fetch the client cancelled is not an error; fsck's own output says what failed."""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served on loopback; yield it and the URL of its /p/<slug>/ prefix."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = _TileServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/p/{SLUG}/"
    server.shutdown()
    server.server_close()


@functools.cache
def log_of(signatures: int) -> PetitionLog:
    """A log with this many signatures, made once per run (70,000 take a second)."""
    return make_log(signatures, seed=signatures + 1)


def publish(log: PetitionLog, root: Path) -> Path:
    """Write the log's tiles where /p/<slug>/ is served."""
    prefix = root / "p" / SLUG
    write_log_tiles(prefix, log.leaves, log.checkpoint())
    return prefix


def fsck(tools: Built, log: PetitionLog, url: str, tmp_path: Path) -> str:
    """Run Tessera's fsck on the log at ``url``; return its log output."""
    key = tmp_path / "log.vkey"
    key.write_text(log.signer.vkey + "\n")
    done = run_tool(
        tools.paths["fsck"], f"--storage_url={url}", f"--public_key={key}", "--ui=false", "--N=4"
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.mark.parametrize("signatures", [0, 254, 255, 256, 600, 70000])
def test_fsck_recomputes_every_tile_and_the_root(
    go_tools: Built, served: tuple[Path, str], tmp_path: Path, signatures: int
) -> None:
    log = log_of(signatures)
    root, url = served
    publish(log, root)
    output = fsck(go_tools, log, url, tmp_path)
    assert "fsck failed" not in output, output
    assert f"Successfully fsck'd log with size {log.size} and root" in output, output


@pytest.mark.parametrize(
    "damaged",
    ["tile/entries/001", "tile/0/001", "tile/1/000.p/2", "tile/0/002.p/89"],
)
def test_fsck_finds_a_damaged_tile(
    go_tools: Built, served: tuple[Path, str], tmp_path: Path, damaged: str
) -> None:
    """The check above could fail: one flipped bit in any tile is reported."""
    log = log_of(600)
    root, url = served
    prefix = publish(log, root)
    data = bytearray((prefix / damaged).read_bytes())
    data[-1] ^= 1
    (prefix / damaged).write_bytes(bytes(data))
    output = fsck(go_tools, log, url, tmp_path)
    assert "fsck failed" in output and "Successfully fsck'd" not in output, output


@pytest.mark.parametrize("signatures", [0, 300, 70000])
def test_torchwood_reads_every_entry(
    go_tools: Built, served: tuple[Path, str], tmp_path: Path, signatures: int
) -> None:
    log = log_of(signatures)
    root, url = served
    publish(log, root)
    policy = tmp_path / "policy"
    policy.write_text(f"log {log.signer.vkey}\nquorum none\n")
    done = run_tool(go_tools.paths["witnessverify"], "tiles", url, policy)
    assert done.returncode == 0, done.stderr
    digest = hashlib.sha256(b"".join(log.leaves)).hexdigest()
    assert done.stdout == f"entries {log.size} {digest}\n"
