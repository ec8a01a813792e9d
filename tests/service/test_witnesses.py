"""A petition's witnesses through the service: configuration, the frozen policy, and the
witness rounds against a witness on loopback that answers as told (slow, garbled, 409, a
split view). The real witnesses are in tests/interop/test_service_witnesses.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from samleng.crypto.errors import KeyProblem
from samleng.crypto.policy import parse_policy
from samleng.service.petitions.lifecycle import open_petition
from samleng.service.petitions.scheduler import Witnessing
from samleng.service.platform.config import Config
from samleng.service.platform.context import services
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.errors import ConfigError, PetitionStateError
from samleng.service.platform.models import (
    AuditEvent,
    Cosignature,
    PendingSignature,
    SealEpoch,
    Witness,
    get_petition,
)
from samleng.service.tlog.store import seal_all
from samleng.service.tlog.witnesses import (
    WITNESS_KEY_PROBLEMS,
    Backoff,
    WitnessSetupError,
    add_witness,
    coverage,
    due_witnesses,
    published_policy,
    remove_witness,
    set_quorum,
    witness_round,
)
from samleng.service.tlog.witnessing import Outcome, WitnessClient
from tests.conftest import add_petition, make_config, receipt_of, sign
from tests.crypto.logfactory import make_cosigners

COSIGNER, OTHER = make_cosigners(2, seed=7)


@dataclass
class FakeWitness:
    """A witness on loopback: cosigns with COSIGNER unless ``answer`` says otherwise."""

    url: str = ""
    answer: Callable[[bytes], tuple[int, dict[str, str], bytes]] | None = None
    delay: float = 0.0
    requests: list[bytes] = field(default_factory=list)

    def cosign(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """What an honest witness answers (it checks nothing: the service is under test)."""
        note = body[body.index(b"\n\n") + 2 :]
        text = note[: note.index(b"\n\n") + 1]
        return 200, {"Content-Type": "text/plain"}, COSIGNER.cosign(text, int(time.time()))


@pytest.fixture
def witness() -> Iterator[FakeWitness]:
    fake = FakeWitness()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            """Quiet."""

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            fake.requests.append(body)
            time.sleep(fake.delay)
            status, headers, answer = (fake.answer or fake.cosign)(body)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            try:
                self.wfile.write(answer)
            except (BrokenPipeError, ConnectionResetError):
                pass

    class Quiet(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            """A client that gave up is the point of the timeout test."""

    server = Quiet(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()


def witnessed_petition(app: Flask, url: str, *, quorum: int | None = None) -> str:
    """A petition with one witness at ``url`` frozen into its policy, opened."""
    petition = add_petition(app, status="draft")
    with app.app_context():
        session = get_session()
        draft = get_petition(session, petition.slug)
        add_witness(session, draft, name="partner", url=url, vkey=COSIGNER.verifier.vkey)
        set_quorum(session, draft, quorum)
        open_petition(session, draft, services(app).vault, can_mail=False)
        session.commit()
    return petition.slug


def round_(app: Flask, backoff: Backoff | None = None, timeout: float = 5) -> list[Outcome]:
    client = WitnessClient(timeout=timeout)
    try:
        asked = witness_round(services(app).engine, client, backoff or Backoff())
    finally:
        client.close()
    return [a.answer.outcome for a in asked]


def seal(app: Flask) -> dict[str, int]:
    return seal_all(services(app).engine, services(app).vault)


def sign_some(client: FlaskClient, slug: str, count: int, start: int = 0) -> list[str]:
    return [
        receipt_of(sign(client, slug, identifier=f"012 345 {start + i:03d}", name="N"))
        for i in range(count)
    ]


def test_the_drafts_witnesses_are_frozen_into_petition_json(
    app: Flask, witness: FakeWitness
) -> None:
    slug = witnessed_petition(app, witness.url)
    with app.app_context():
        petition = get_petition(get_session(), slug)
        assert petition.petition_json is not None
        document = json.loads(petition.petition_json)
        policy = parse_policy(document["witness_policy"].encode())
        assert [w.name for w in policy.witnesses] == ["partner"]
        assert policy.witnesses[0].url == witness.url
        assert policy.groups[0].threshold == 1 and policy.quorum == "witnesses"
        assert policy.lists_log(petition.log_vkey or "")
        assert published_policy(petition) == policy
        # A witness added once the petition is open is asked, but not frozen.
        later = add_witness(
            get_session(), petition, name="later", url=witness.url, vkey=OTHER.verifier.vkey
        )
        assert not later.frozen
        get_session().commit()
        assert published_policy(petition) == policy


def test_a_petition_without_witnesses_has_no_policy(app: Flask) -> None:
    petition = add_petition(app)
    with app.app_context():
        opened = get_petition(get_session(), petition.slug)
        assert b"witness_policy" not in (opened.petition_json or b"")
        assert coverage(get_session(), opened) is None


@pytest.mark.parametrize(
    ("name", "url", "vkey", "message"),
    [
        ("", "http://w.example", None, "witness name"),
        ("has space", "http://w.example", None, "witness name"),
        ("witnesses", "http://w.example", None, "witness name"),
        ("none", "http://w.example", None, "witness name"),
        ("x" * 65, "http://w.example", None, "witness name"),
        ("ok", "ftp://w.example", None, "http(s)"),
        ("ok", "http://w.example/?q=1", None, "query"),
        ("ok", "http://w.example", "not a key", "key"),
        ("ok", "http://w.example", "__log__", "type"),
    ],
)
def test_bad_witnesses_are_refused_and_nothing_is_stored(
    app: Flask, name: str, url: str, vkey: str | None, message: str
) -> None:
    petition = add_petition(app, status="draft")
    with app.app_context():
        session = get_session()
        draft = get_petition(session, petition.slug)
        if vkey == "__log__":
            vkey = "petitions.example.org+12345678+ASmsuuFBvMrwsi4alNNNC8c2HlJtC/4SyJeUvJMilm3X"
        with pytest.raises(
            WitnessSetupError, match=message.replace("(", r"\(").replace(")", r"\)")
        ):
            add_witness(session, draft, name=name, url=url, vkey=vkey or COSIGNER.verifier.vkey)
        session.rollback()
        assert session.scalars(select(Witness)).all() == []


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("not a key", "joined by '+'"),
        ("+12345678+AAAA", "the name before the first '+'"),
        ("w+1234ABCD+AAAA", "8 digits or letters a-f"),
        ("w+1234abcd+@@", "not base64"),
        ("w+1234abcd+", "not a witness's cosignature key"),
        ("petitions.example.org+12345678+ASmsuuFBvMrwsi4alNNNC8c2HlJtC/4SyJeUvJMilm3X",
         "a log's own key does not fit here"),
        ("w+1234abcd+BAAA", "does not hold an Ed25519 key"),
        ("w+1234abcd+" + COSIGNER.verifier.vkey.split("+", 2)[2], "copy the whole key again"),
    ],
)  # fmt: skip
def test_a_bad_witness_key_is_refused_saying_which_part_is_wrong(
    app: Flask, vkey: str, message: str
) -> None:
    petition = add_petition(app, status="draft")
    with app.app_context():
        session = get_session()
        draft = get_petition(session, petition.slug)
        with pytest.raises(WitnessSetupError) as refused:
            add_witness(session, draft, name="w", url="https://w.example", vkey=vkey)
        assert message in str(refused.value)
        assert refused.value.message in WITNESS_KEY_PROBLEMS.values()
        session.rollback()
        assert session.scalars(select(Witness)).all() == []


def test_every_key_problem_has_words_of_its_own() -> None:
    assert set(WITNESS_KEY_PROBLEMS) == set(KeyProblem)


def test_a_name_or_key_is_used_once_per_petition(app: Flask) -> None:
    petition = add_petition(app, status="draft")
    with app.app_context():
        session = get_session()
        draft = get_petition(session, petition.slug)
        add_witness(session, draft, name="a", url="http://a.example", vkey=COSIGNER.verifier.vkey)
        with pytest.raises(WitnessSetupError, match="already has a witness named"):
            add_witness(session, draft, name="a", url="http://b.example", vkey=OTHER.verifier.vkey)
        with pytest.raises(WitnessSetupError, match="already has this key"):
            add_witness(
                session, draft, name="b", url="http://b.example", vkey=COSIGNER.verifier.vkey
            )


def test_a_quorum_larger_than_the_witnesses_stops_opening(app: Flask) -> None:
    petition = add_petition(app, status="draft")
    with app.app_context():
        session = get_session()
        draft = get_petition(session, petition.slug)
        add_witness(session, draft, name="a", url="http://a.example", vkey=COSIGNER.verifier.vkey)
        set_quorum(session, draft, 2)
        with pytest.raises(WitnessSetupError, match="the quorum is 2 but the petition has 1"):
            open_petition(session, draft, services(app).vault, can_mail=False)
        assert draft.status == "draft" and draft.petition_json is None
        session.rollback()
        with pytest.raises(WitnessSetupError, match="between 1 and 16"):
            set_quorum(session, draft, 0)


def test_the_quorum_is_frozen_once_open(app: Flask, witness: FakeWitness) -> None:
    slug = witnessed_petition(app, witness.url)
    with app.app_context():
        session = get_session()
        with pytest.raises(PetitionStateError, match="frozen when it opened"):
            set_quorum(session, get_petition(session, slug), 1)


def test_removing_a_witness_after_opening_keeps_its_cosignatures(
    app: Flask, client: FlaskClient, witness: FakeWitness
) -> None:
    slug = witnessed_petition(app, witness.url)
    assert round_(app) == [Outcome.COSIGNED]
    with app.app_context():
        session = get_session()
        remove_witness(session, get_petition(session, slug), "partner")
        session.commit()
        assert session.scalars(select(Cosignature)).all()
        assert due_witnesses(session) == []
    sign_some(client, slug, 2)
    seal(app)
    assert round_(app) == []
    # The old checkpoint still carries its cosignature.
    assert COSIGNER.verifier.name.encode() in client.get(f"/p/{slug}/checkpoints/1").data


def test_a_round_cosigns_the_newest_checkpoint_with_the_proof_from_the_last(
    app: Flask, client: FlaskClient, witness: FakeWitness
) -> None:
    slug = witnessed_petition(app, witness.url)
    assert round_(app) == [Outcome.COSIGNED]
    assert witness.requests[-1].startswith(b"old 0\n\n")
    sign_some(client, slug, 3)
    seal(app)
    sign_some(client, slug, 2, start=3)
    seal(app)  # two batches, one round: the witness gets size 6 from size 1
    assert round_(app) == [Outcome.COSIGNED]
    body = witness.requests[-1]
    assert body.startswith(b"old 1\n")
    assert b"\n6\n" in body
    assert round_(app) == []  # nothing more is due
    served = client.get(f"/p/{slug}/checkpoint").data
    assert served.count(b"\n\xe2\x80\x94 ") == 2
    page = client.get(f"/en/p/{slug}").get_data(as_text=True)
    assert "Witnessed by 1 of 1 organisations: partner." in page
    km = client.get(f"/km/p/{slug}").get_data(as_text=True)
    assert "អង្គការសាក្សី" in km


def test_a_slow_witness_times_out_and_is_backed_off(
    app: Flask, client: FlaskClient, witness: FakeWitness
) -> None:
    slug = witnessed_petition(app, witness.url)
    witness.delay = 2.5
    backoff = Backoff()
    began = time.monotonic()
    assert round_(app, backoff, timeout=1) == [Outcome.UNAVAILABLE]
    assert time.monotonic() - began < 2.4
    assert round_(app, backoff, timeout=1) == []  # backing off
    # Signing and sealing went on meanwhile.
    sign_some(client, slug, 2)
    assert seal(app) == {slug: 3}
    witness.delay = 0
    assert round_(app, Backoff()) == [Outcome.COSIGNED]
    with app.app_context():
        cover = coverage(get_session(), get_petition(get_session(), slug))
    assert cover is not None and cover.met and cover.size == 3


def test_garbage_five_times_shows_the_witness_to_the_organisers(
    app: Flask, witness: FakeWitness
) -> None:
    witnessed_petition(app, witness.url)
    witness.answer = lambda _body: (200, {}, b"\xff\xfe not a signature\n")
    backoff = Backoff()
    for _ in range(5):
        backoff.not_before.clear()
        assert round_(app, backoff) == [Outcome.GARBAGE]
    with app.app_context():
        problem = get_session().scalars(select(Witness.problem)).one()
    assert problem is not None and "5 times in a row" in problem


def test_a_stale_size_is_resent_from_the_witnesss(
    app: Flask, client: FlaskClient, witness: FakeWitness
) -> None:
    slug = witnessed_petition(app, witness.url)
    sign_some(client, slug, 3)
    seal(app)
    answers = iter([(409, {"Content-Type": "text/x.tlog.size"}, b"1\n")])
    witness.answer = lambda body: next(answers, None) or witness.cosign(body)
    assert round_(app) == [Outcome.COSIGNED]
    assert [r.split(b"\n", 1)[0] for r in witness.requests] == [b"old 0", b"old 1"]
    with app.app_context():
        assert get_session().scalars(select(Witness.known_size)).one() == 4


def test_a_key_the_witness_does_not_have_is_a_problem_not_a_cosignature(
    app: Flask, witness: FakeWitness
) -> None:
    witnessed_petition(app, witness.url)

    def other_key(body: bytes) -> tuple[int, dict[str, str], bytes]:
        note = body[body.index(b"\n\n") + 2 :]
        return 200, {}, OTHER.cosign(note[: note.index(b"\n\n") + 1], int(time.time()))

    witness.answer = other_key
    assert round_(app) == [Outcome.WRONG_KEY]
    with app.app_context():
        session = get_session()
        assert session.scalars(select(Cosignature)).all() == []
        assert session.scalars(select(Witness.problem)).one()
        assert "witness-problem" in session.scalars(select(AuditEvent.action)).all()


def test_a_422_halts_the_petition_until_resumed(
    app: Flask, client: FlaskClient, witness: FakeWitness
) -> None:
    slug = witnessed_petition(app, witness.url)
    witness.answer = lambda _body: (422, {}, b"inconsistent\n")
    assert round_(app) == [Outcome.SPLIT_VIEW]
    sign_some(client, slug, 2)
    assert seal(app) == {}  # nothing published, the signatures wait
    assert seal(app) == {}
    with app.app_context():
        session = get_session()
        epochs = session.scalars(select(SealEpoch.id)).all()
        waiting = session.scalars(select(PendingSignature.epoch_id)).all()
    # ... carried to the newest epoch each round, so that the older ones retire.
    assert len(waiting) == 2 and set(waiting) == {max(epochs)} and len(epochs) <= 2
    witness.answer = None
    assert round_(app) == []  # and no witness is asked
    page = client.get(f"/en/p/{slug}").get_data(as_text=True)
    assert "The count is on hold" in page
    runner = app.test_cli_runner()
    assert "STOPPED" in runner.invoke(args=["witness", "list", slug]).output
    resumed = runner.invoke(args=["witness", "resume", slug])
    assert resumed.exit_code == 0, resumed.output
    assert seal(app) == {slug: 3}
    assert round_(app) == [Outcome.COSIGNED]
    again = runner.invoke(args=["witness", "resume", slug])
    assert "nothing changed" in again.output


def test_a_witness_that_knows_more_than_the_log_is_a_split_view(
    app: Flask, witness: FakeWitness
) -> None:
    slug = witnessed_petition(app, witness.url)
    with app.app_context():
        session = get_session()
        session.scalars(select(Witness)).one().known_size = 9
        session.commit()
    assert round_(app) == [Outcome.SPLIT_VIEW]
    assert witness.requests == []
    with app.app_context():
        halt = get_petition(get_session(), slug).witness_halt
    assert halt is not None and "only 1 leaves" in halt


def test_the_witnessing_thread_asks_after_a_wake(
    app: Flask, client: FlaskClient, witness: FakeWitness
) -> None:
    slug = witnessed_petition(app, witness.url)
    thread = Witnessing(services(app).engine, WitnessClient(timeout=5), interval=30)
    thread.start()
    try:
        thread.wake()
        deadline = time.monotonic() + 10
        while not witness.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        sign_some(client, slug, 2)
        seal(app)
        thread.wake()
        while len(witness.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        thread.stop()
    assert len(witness.requests) == 2
    with app.app_context():
        assert sorted(get_session().scalars(select(Cosignature.size))) == [1, 3]


def test_the_witness_commands(app: Flask, witness: FakeWitness) -> None:
    petition = add_petition(app, status="draft")
    runner = app.test_cli_runner()
    vkey = COSIGNER.verifier.vkey
    added = runner.invoke(
        args=["witness", "add", petition.slug, "--name", "w1", "--url", witness.url, "--vkey", vkey]
    )
    assert added.exit_code == 0 and "frozen into the policy" in added.output
    refused = runner.invoke(
        args=[
            "witness",
            "add",
            petition.slug,
            "--name",
            "w 2",
            "--url",
            witness.url,
            "--vkey",
            vkey,
        ]
    )
    assert refused.exit_code == 1 and "witness name" in refused.output
    assert runner.invoke(args=["witness", "quorum", petition.slug, "1"]).exit_code == 0
    listed = runner.invoke(args=["witness", "list", petition.slug])
    assert (
        "w1" in listed.output and "in the policy" in listed.output and "quorum: 1" in listed.output
    )
    missing = runner.invoke(args=["witness", "remove", petition.slug, "nobody"])
    assert missing.exit_code == 1 and "no witness named" in missing.output
    assert runner.invoke(args=["witness", "remove", petition.slug, "w1"]).exit_code == 0
    unknown = runner.invoke(args=["witness", "list", "no-such"])
    assert unknown.exit_code == 1 and "no petition" in unknown.output
    with app.app_context():
        actions = get_session().scalars(select(AuditEvent.action)).all()
    assert {"witness-add", "witness-quorum", "witness-remove"} <= set(actions)


def test_the_witness_settings_are_checked(tmp_path: Path, database_url: str) -> None:
    base = make_config(tmp_path, database_url)
    assert base.witness_proxy is None and base.witness_timeout == 10
    for bad in ({"witness_timeout": 0.5}, {"witness_proxy": "socks5://127.0.0.1:9050"}):
        with pytest.raises(ConfigError, match="SAMLENG_WITNESS"):
            Config(**{**base.__dict__, **bad})
    assert Config(**{**base.__dict__, "witness_proxy": "socks5h://127.0.0.1:9050"})


def test_an_onion_witness_without_a_proxy_is_shown_to_the_organisers(app: Flask) -> None:
    onion = "http://" + "a" * 56 + ".onion"
    witnessed_petition(app, onion)
    assert round_(app) == [Outcome.MISCONFIGURED]
    with app.app_context():
        problem = get_session().scalars(select(Witness.problem)).one()
    assert problem is not None and "SAMLENG_WITNESS_PROXY" in problem
