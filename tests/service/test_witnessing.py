"""The witness client against witnesses that misbehave: slow, wrong, garbled, silent.

The real witnesses (litewitness, omniwitness) and their answers are in
tests/interop/test_witnesses.py; here a small HTTP server on loopback answers what a broken or
hostile witness could, so that every branch of the client sees its input. The request the
client sends is checked byte for byte against the tlog-witness text.
"""

from __future__ import annotations

import base64
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from samleng.crypto.cosignature import CosignatureSigner
from samleng.service.tlog import witnessing
from samleng.service.tlog.witnessing import (
    Outcome,
    WitnessClient,
    WitnessConfigError,
    WitnessEndpoint,
    add_checkpoint_body,
    check_proxy_url,
    check_witness_url,
    interpret_answer,
    retry_delay,
)
from tests.crypto.logfactory import make_cosigners, make_log

LOG = make_log(9)
NOTE = LOG.checkpoint()
TEXT = NOTE[: NOTE.rfind(b"\n\n") + 1]
WITNESS, STRANGER = make_cosigners(2, seed=3)


@dataclass
class Script:
    """What the fake witness answers, and what it received."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    drip: float = 0.0  # seconds between bytes of the body
    requests: list[tuple[str, bytes]] = field(default_factory=list)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up (the timeout tests) is the point, not an error to print."""


@pytest.fixture
def fake() -> Iterator[tuple[Script, str]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            """Quiet."""

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            script.requests.append((self.path, self.rfile.read(length)))
            time.sleep(script.delay)
            self.send_response(script.status)
            for name, value in script.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(script.body)))
            self.end_headers()
            try:
                if script.drip:
                    for byte in script.body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(script.drip)
                else:
                    self.wfile.write(script.body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = _QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield script, f"http://127.0.0.1:{server.server_address[1]}/witness/"
    server.shutdown()
    server.server_close()


def ask(url: str, *, timeout: float = 5, old: int = 0, proof: list[bytes] | None = None):  # type: ignore[no-untyped-def]
    client = WitnessClient(timeout=timeout)
    try:
        endpoint = WitnessEndpoint(url=url, verifier=WITNESS.verifier)
        return client.add_checkpoint(endpoint, NOTE, old, proof or [])
    finally:
        client.close()


def test_the_request_is_the_spec_body(fake: tuple[Script, str]) -> None:
    script, url = fake
    script.body = WITNESS.cosign(TEXT, 1_800_000_000)
    proof = LOG.tree.consistency_proof(4, LOG.size)
    answer = ask(url, old=4, proof=proof)
    assert answer.outcome is Outcome.COSIGNED
    assert answer.cosignatures == script.body and answer.timestamp == 1_800_000_000
    [(path, body)] = script.requests
    assert path == "/witness/add-checkpoint"
    expected = b"old 4\n" + b"".join(base64.b64encode(h) + b"\n" for h in proof) + b"\n" + NOTE
    assert body == expected == add_checkpoint_body(4, proof, NOTE)


def test_other_keys_lines_are_ignored(fake: tuple[Script, str]) -> None:
    script, url = fake
    script.body = STRANGER.cosign(TEXT, 5) + WITNESS.cosign(TEXT, 6)
    answer = ask(url)
    assert answer.outcome is Outcome.COSIGNED
    assert answer.cosignatures == WITNESS.cosign(TEXT, 6)


def _answers() -> list[tuple[int, dict[str, str], bytes, Outcome]]:
    other_text = LOG.checkpoint(3)[: LOG.checkpoint(3).rfind(b"\n\n") + 1]
    size = {"Content-Type": "text/x.tlog.size"}
    return [
        (200, {}, b"hello\n", Outcome.GARBAGE),
        (200, {}, b"", Outcome.GARBAGE),
        (200, {}, WITNESS.cosign(TEXT, 5)[:-1], Outcome.GARBAGE),  # no final newline
        (200, {}, WITNESS.cosign(other_text, 5), Outcome.GARBAGE),  # cosigns another checkpoint
        (200, {}, WITNESS.cosign(TEXT, 0), Outcome.GARBAGE),  # the spec forbids time 0
        (200, {}, STRANGER.cosign(TEXT, 5), Outcome.WRONG_KEY),
        (409, size, b"7\n", Outcome.CONFLICT),
        (409, {"Content-Type": "text/x.tlog.size; charset=utf-8"}, b"0\n", Outcome.CONFLICT),
        (409, size, b"11\n", Outcome.SPLIT_VIEW),  # larger than the checkpoint's 10
        (409, {"Content-Type": "text/plain"}, b"7\n", Outcome.GARBAGE),
        (409, size, b"07\n", Outcome.GARBAGE),
        (409, size, b"7", Outcome.GARBAGE),
        (409, size, b"-1\n", Outcome.GARBAGE),
        (409, size, b"99999999999999999999\n", Outcome.GARBAGE),
        (422, {}, b"bad proof", Outcome.SPLIT_VIEW),
        (404, {}, b"", Outcome.UNKNOWN_LOG),
        (403, {}, b"", Outcome.FORBIDDEN),
        (400, {}, b"", Outcome.BAD_REQUEST),
        (429, {}, b"", Outcome.UNAVAILABLE),
        (500, {}, b"", Outcome.UNAVAILABLE),
        (503, {"Retry-After": "5"}, b"", Outcome.UNAVAILABLE),
        (302, {"Location": "http://127.0.0.1:1/"}, b"", Outcome.GARBAGE),  # never followed
        (201, {}, b"", Outcome.GARBAGE),
        (418, {}, b"", Outcome.GARBAGE),
    ]


@pytest.mark.parametrize(("status", "headers", "body", "outcome"), _answers())
def test_every_answer_has_an_outcome(
    fake: tuple[Script, str], status: int, headers: dict[str, str], body: bytes, outcome: Outcome
) -> None:
    script, url = fake
    script.status, script.headers, script.body = status, headers, body
    answer = ask(url)
    assert answer.outcome is outcome, answer
    assert answer.status == status
    assert answer.cosignatures == b"" or outcome is Outcome.COSIGNED
    content_type = headers.get("Content-Type", "")
    direct = interpret_answer(status, content_type, body, checkpoint=NOTE, witness=WITNESS.verifier)
    assert direct == answer


def test_a_long_answer_is_garbage(fake: tuple[Script, str]) -> None:
    script, url = fake
    script.body = WITNESS.cosign(TEXT, 5) * 1000
    answer = ask(url)
    assert answer.outcome is Outcome.GARBAGE and "longer than" in answer.detail


def test_a_slow_witness_times_out(fake: tuple[Script, str]) -> None:
    script, url = fake
    script.delay = 3
    started = time.monotonic()
    answer = ask(url, timeout=0.5)
    assert time.monotonic() - started < 2.5
    assert (answer.outcome, answer.detail) == (Outcome.UNAVAILABLE, "no answer: timed out")
    assert answer.should_retry


def test_a_dripping_witness_is_cut_off_at_the_deadline(fake: tuple[Script, str]) -> None:
    """Each byte arrives within the read timeout, the whole answer does not."""
    script, url = fake
    script.body = WITNESS.cosign(TEXT, 5)
    script.drip = 0.02  # about 150 bytes: 3 s in all
    started = time.monotonic()
    answer = ask(url, timeout=0.8)
    assert time.monotonic() - started < 2
    assert answer.outcome is Outcome.UNAVAILABLE and "within 0.8 s" in answer.detail


def test_a_witness_that_is_not_there() -> None:
    from tests.components import free_port

    answer = ask(f"http://127.0.0.1:{free_port()}")
    assert answer.outcome is Outcome.UNAVAILABLE
    assert answer.detail == "no answer: could not connect (or the proxy could not)"


def test_submit_resends_once_from_the_size_the_witness_knows(fake: tuple[Script, str]) -> None:
    script, url = fake
    script.status, script.headers, script.body = 409, {"Content-Type": "text/x.tlog.size"}, b"3\n"
    asked: list[int] = []

    def proof_from(old: int) -> list[bytes]:
        asked.append(old)
        return LOG.tree.consistency_proof(old, LOG.size)

    client = WitnessClient(timeout=5)
    answer = client.submit(WitnessEndpoint(url=url, verifier=WITNESS.verifier), NOTE, 0, proof_from)
    assert asked == [0, 3]  # once more, from 3; a second 409 is returned, not chased
    assert (answer.outcome, answer.known_size) == (Outcome.CONFLICT, 3)
    assert [body.split(b"\n", 1)[0] for _, body in script.requests] == [b"old 0", b"old 3"]
    script.status, script.body = 422, b""
    answer = client.submit(WitnessEndpoint(url=url, verifier=WITNESS.verifier), NOTE, 5, proof_from)
    assert (answer.outcome, answer.known_size) == (Outcome.SPLIT_VIEW, None)


def test_request_body_rules() -> None:
    assert add_checkpoint_body(0, [], NOTE) == b"old 0\n\n" + NOTE
    for old, proof in ((-1, []), (0, [bytes(32)]), (3, [bytes(31)]), (3, [bytes(32)] * 64)):
        with pytest.raises(ValueError):
            add_checkpoint_body(old, proof, NOTE)


def test_configuration_is_checked() -> None:
    assert (
        check_witness_url("https://w.example/prefix/") == "https://w.example/prefix/add-checkpoint"
    )
    for bad in (
        "ftp://w.example",
        "w.example",
        "https://user@w.example",
        "https://w/?x=1",
        "http://",
        # urlsplit raises ValueError on these; the caller must still get a WitnessConfigError.
        "http://[w.example/",
        "http://w.example:99999/",
        "http://w.example:0/",
        # A URL is one word of visible ASCII: the policy file and the request line carry it.
        "http://w.example/a b",
        "http://w.example/a\nwitness x",
        "http://w.example/\x01",
        "http://w.example/\u2028",
        "https://wé.example/",
    ):
        with pytest.raises(WitnessConfigError):
            check_witness_url(bad)
    assert check_proxy_url("socks5h://127.0.0.1:9050") == "socks5h://127.0.0.1:9050"
    for bad in ("socks5://127.0.0.1:9050", "http://127.0.0.1:9050", "socks5h://127.0.0.1"):
        with pytest.raises(WitnessConfigError):
            check_proxy_url(bad)
    with pytest.raises(ValueError, match="not a signed checkpoint"):
        WitnessClient().add_checkpoint(
            WitnessEndpoint(url="http://127.0.0.1:1", verifier=WITNESS.verifier), b"x\n", 0, []
        )


def test_retry_delays_double_up_to_an_hour() -> None:
    rng = random.Random(1)
    delays = [retry_delay(n, rng=rng) for n in range(1, 14)]
    assert 5 <= delays[0] <= 6 and 10 <= delays[1] <= 12
    assert all(3600 <= d <= 4320 for d in delays[-3:])
    assert retry_delay(10**6, rng=rng) <= 4320


def test_the_module_loads_neither_flask_nor_sqlalchemy() -> None:
    """The sealer's integration comes later; the client itself stays free of the web stack.

    Loaded from its file (the package's __init__ imports the app factory today).
    """
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('witnessing', {witnessing.__file__!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'sqlalchemy'))\n"
        "print(loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"
    assert Path(witnessing.__file__).name == "witnessing.py"
    assert isinstance(WITNESS, CosignatureSigner)


def test_a_cut_off_answer_does_not_spoil_the_next_request(fake: tuple[Script, str]) -> None:
    script, url = fake
    client = WitnessClient(timeout=0.8)
    endpoint = WitnessEndpoint(url=url, verifier=WITNESS.verifier)
    try:
        script.body = WITNESS.cosign(TEXT, 5) * 1000
        assert client.add_checkpoint(endpoint, NOTE, 0, []).outcome is Outcome.GARBAGE
        script.body, script.drip = WITNESS.cosign(TEXT, 6), 0.02
        assert client.add_checkpoint(endpoint, NOTE, 0, []).outcome is Outcome.UNAVAILABLE
        script.drip = 0
        answer = client.add_checkpoint(endpoint, NOTE, 0, [])
        assert (answer.outcome, answer.timestamp) == (Outcome.COSIGNED, 6)
    finally:
        client.close()
