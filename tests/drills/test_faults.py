"""Reliability drills: faults under a steady signing load, and no acknowledged signature lost.

The stack is the production layout on loopback, with servers of the drill's own: a private
PostgreSQL cluster (deploy/postgresql/samleng.conf), a private Redis (deploy/redis/
samleng.conf) for the limits, gunicorn with deploy/gunicorn.conf.py and two workers
(SAMLENG_SEAL_INTERVAL=0, as samleng-web.service), and one ``samleng seal --watch`` with a
one-second interval, restarted when it exits as samleng-sealer.service is. Four client threads
sign through it the whole time, distinct people and some who sign again, while the tests, in
order: kill -9 a gunicorn worker, restart PostgreSQL (fast, then immediate: a crash), stop and
start Redis (in a rush of page loads), and kill -9 the sealer inside its sealing transaction,
three times. After each fault signing recovers within RECOVERY_SECONDS, sealing within
SEALING_SECONDS, no stored row is lost or half written, and no answer is a 5xx other than the
app's plain 500 page while PostgreSQL is down. The last test stops the load, exports the bundle
with ``samleng export`` and checks it with ``samleng-audit verify``: every receipt a signer was
shown is a leaf, except those of people who had signed already, and the count is what the
clients were told.

``pytest tests/drills -s`` prints what each fault cost; the drill's folder keeps gunicorn.log,
sealer.log and timeline.log (log size and pending rows every half second).

Everything stops by itself: each wait has a bound, and the fixture stops every process.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from samleng.crypto.details import generate_details_keypair
from samleng.crypto.errors import PendingDecryptionError
from samleng.crypto.leaf import LEAF_SIZE, LeafKind, decode_leaf
from samleng.crypto.pending import open_pending_record
from samleng.crypto.tlogproof import verify_receipt
from samleng.crypto.tokens import Argon2Params
from samleng.service.app import create_app
from samleng.service.petitions.lifecycle import create_petition, open_petition
from samleng.service.platform.config import Config, read_master_key
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.keys import ensure_master_key
from samleng.service.platform.vault import KeyFileError, Vault
from samleng.service.tlog.epochs import epoch_private_key
from tests.components import require
from tests.conftest import TEXTS
from tests.deploy.render import DEPLOY, free_port
from tests.drills.load import HOST, Attempt, Ledger, SigningLoad, address, burst, commitment
from tests.drills.servers import PrivatePostgres, PrivateRedis, Sealer, children, stop_process

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
ORIGIN = "petitions.example.org"
SLUG = "drill"
# Cheap, so that two cores can sign fast enough to make large batches; the production
# parameters change only the time per signature, not any path exercised here.
CHEAP_ARGON2 = Argon2Params(time_cost=1, memory_kib=1024, parallelism=1)
# Bounds after each fault: until signatures are acknowledged again, and until a batch is
# sealed again (this includes restarting `samleng seal --watch`, whose start-up takes a few
# seconds of a loaded 2-core machine).
RECOVERY_SECONDS = 15.0
SEALING_SECONDS = 30.0
# Requests that started up to this long after PostgreSQL accepted connections again may
# still have failed on a connection the pool had not yet found dead.
PG_GRACE_SECONDS = 1.0
SEALER_NAME = "samleng-sealer"  # its application_name, to find its backend in pg_locks
# The app's own error pages (plain, translated, with its headers), and what they never hold.
APP_PAGES = {500: "Something went wrong on our side", 503: "The service is busy"}
LEAKS = ("Traceback", 'File "', "psycopg", "sqlalchemy", "OperationalError", "postgres")


@dataclass(frozen=True)
class LogState:
    """The petition's rows, read in one transaction."""

    leaves: int
    size: int
    nodes: int
    pending: int
    tokens: int
    # Commitments both pending and sealed: a batch that was half committed.
    overlap: int

    @property
    def consistent(self) -> bool:
        """Every leaf under the newest checkpoint, every subtree hash stored, each pending
        row sealed at most once, and one dedup token per sealed signature (the sealer
        writes them; a pending signature has none yet)."""
        expected_nodes = sum(self.size >> level for level in range(64))
        return (
            self.leaves == self.size
            and self.nodes == expected_nodes
            and self.overlap == 0
            and self.tokens == self.size - 1
        )


@dataclass
class Drill:
    """The running stack, its load, and when each fault happened."""

    root: Path
    env: dict[str, str]
    port: int
    gunicorn: subprocess.Popen[bytes]
    postgres: PrivatePostgres
    database_url: str
    redis: PrivateRedis
    sealer: Sealer
    load: SigningLoad
    # Fault windows (monotonic seconds): PostgreSQL down, and a worker killed.
    pg_down: list[tuple[float, float]] = field(default_factory=list)
    worker_kills: list[tuple[float, float]] = field(default_factory=list)
    # Windows whose answers a fault test has checked already.
    checked: list[tuple[float, float]] = field(default_factory=list)
    results: dict[str, str] = field(default_factory=dict)

    def _snapshot(self) -> tuple[tuple[int, ...], set[bytes], set[bytes]]:
        """The row counts, the sealed commitments and the pending ones (opened with the
        sealer's epoch keys, as it would), all of one snapshot."""
        counts = """
            SELECT (SELECT count(*) FROM leaf WHERE petition_id = p.id),
                   (SELECT max(size) FROM checkpoint WHERE petition_id = p.id),
                   (SELECT count(*) FROM tree_node WHERE petition_id = p.id),
                   (SELECT count(*) FROM pending_signature WHERE petition_id = p.id),
                   (SELECT count(*) FROM dedup_token WHERE petition_id = p.id)
            FROM petition p WHERE p.slug = %s
        """
        sealed = """
            SELECT commitment FROM leaf WHERE index > 0
                AND petition_id = (SELECT id FROM petition WHERE slug = %s)
        """
        pending = """
            SELECT epoch_id, sealed FROM pending_signature
                WHERE petition_id = (SELECT id FROM petition WHERE slug = %s)
        """
        vault = Vault(Path(self.env["SAMLENG_INSTANCE"]), b"")
        for _ in range(50):
            with psycopg.connect(self.database_url, connect_timeout=10) as conn:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                row = conn.execute(counts, (SLUG,)).fetchone()
                leaves = {bytes(r[0]) for r in conn.execute(sealed, (SLUG,))}
                rows = conn.execute(pending, (SLUG,)).fetchall()
            assert row is not None
            try:
                waiting = {
                    open_pending_record(
                        epoch_private_key(vault, epoch), f"{ORIGIN}/p/{SLUG}", bytes(blob)
                    ).commitment
                    for epoch, blob in rows
                }
            except (KeyFileError, PendingDecryptionError):
                # Sealed, and its key destroyed (or being overwritten) since the snapshot.
                time.sleep(0.1)
                continue
            return tuple(int(v) for v in row), leaves, waiting
        raise AssertionError("the pending signatures' epoch keys keep vanishing")

    def log_state(self) -> LogState:
        """Count the petition's rows in one snapshot."""
        counts, leaves, waiting = self._snapshot()
        return LogState(*counts, overlap=len(leaves & waiting))

    def sealed_and_waiting(self) -> tuple[set[bytes], set[bytes]]:
        """Commitments of every signature stored: sealed, and waiting."""
        _, leaves, waiting = self._snapshot()
        return leaves, waiting

    def wait_signing(self) -> None:
        """Wait until signatures are being acknowledged."""
        since = time.monotonic()
        waited = self.load.first_acknowledged_after(since, RECOVERY_SECONDS)
        if waited is None:
            # Say why: a client that raised stops them all; otherwise, what the stack answered.
            recent = Counter(
                (a.step, a.status) for a in self.load.snapshot() if a.start >= since - 5
            )
            raise AssertionError(
                f"the stack does not acknowledge signatures: clients running "
                f"{self.load.running}, errors {self.load.errors!r}, answers since 5 s before "
                f"the wait {dict(recent)}"
            )

    def wait_sealed_beyond(self, size: int, since: float) -> float:
        """Wait until the log grows beyond ``size``; seconds from ``since``."""
        while self.log_state().size <= size:
            assert time.monotonic() - since < SEALING_SECONDS, "nothing was sealed"
            time.sleep(0.2)
        return time.monotonic() - since

    def assert_nothing_lost(self) -> None:
        """Every receipt that must be in the log is stored, no repeat's receipt is, and the
        rows are consistent."""
        ledger = Ledger.of(self.load.snapshot())
        sealed, waiting = self.sealed_and_waiting()
        shown = ledger.receipts_of(f"{ORIGIN}/p/{SLUG}")
        # Every acknowledged person has a receipt stored (a repeat waits like any signature
        # and is dropped when sealed), unless an attempt of theirs that nobody saw may be.
        lost = [
            person
            for person in ledger.acknowledged - ledger.maybe_stored
            if not shown[person] & (sealed | waiting)
        ]
        assert lost == [], f"{len(lost)} acknowledged signers have nothing stored"
        twice = [person for person, mine in shown.items() if len(mine & sealed) > 1]
        assert twice == [], f"{len(twice)} signers were sealed twice"
        state = self.log_state()
        assert state.consistent, state

    def answer_problems(self, attempts: list[Attempt]) -> list[str]:
        """Answers that no fault explains: a 5xx other than 503 outside PostgreSQL's downtime,
        no answer outside a worker's death, or a 5xx page that is not the app's plain one."""
        problems = []

        def during(windows: list[tuple[float, float]], a: Attempt) -> bool:
            return any(a.start <= end and a.end >= begin for begin, end in windows)

        for a in attempts:
            what = (
                f"{a.step} of person {a.person} "
                f"at {a.start - self.load.began:.1f}-{a.end - self.load.began:.1f} s"
            )
            if a.status is None and not during(self.worker_kills, a):
                problems.append(f"no answer to the {what}")
            elif a.status is not None and a.status >= 500:
                # 503: shed at the Argon2 gate, at any time.
                if a.status != 503 and not during(self.pg_down, a):
                    problems.append(f"{a.status} to the {what}")
                page = APP_PAGES.get(a.status)
                if page is None or page not in a.body or any(x in a.body for x in LEAKS):
                    problems.append(f"the {a.status} page to the {what} is not the app's")
        return problems

    def check_answers(self, since: float, extra: list[Attempt] | None = None) -> None:
        """Check the answers given since ``since`` (and ``extra``); the last test checks
        the rest."""
        attempts = [a for a in self.load.snapshot() if a.start >= since] + (extra or [])
        self.checked.append((since, time.monotonic()))
        problems = self.answer_problems(attempts)
        assert problems == [], "\n".join(problems[:20])

    def note(self, name: str, text: str) -> None:
        """Keep a figure for the summary that the last test prints."""
        self.results[name] = text


class Timeline:
    """The log's size and the pending rows every half second, in timeline.log: what a
    failed drill's report is read against (with gunicorn.log and sealer.log)."""

    def __init__(self, drill: Drill) -> None:
        self._drill = drill
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drill-timeline", daemon=True)

    def start(self) -> None:
        """Start recording."""
        self._thread.start()

    def stop(self) -> None:
        """Stop recording."""
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        drill = self._drill
        with (drill.root / "timeline.log").open("w") as out:
            while not self._stop.wait(0.5):
                at = time.monotonic() - drill.load.began
                try:
                    state = drill.log_state()
                except psycopg.Error as exc:
                    line = type(exc).__name__
                else:
                    line = f"size {state.size} pending {state.pending}"
                out.write(f"{at:7.2f} {line} sealer exits {drill.sealer.exits}\n")
                out.flush()


def start_gunicorn(env: dict[str, str], port: int, log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    command = [
        str(BIN / "gunicorn"), "-c", str(DEPLOY / "gunicorn.conf.py"),
        "--bind", f"127.0.0.1:{port}", "--workers", "2", "samleng.service.wsgi:app",
    ]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    stop_process(proc)
    raise AssertionError("gunicorn did not answer:\n" + log.read_text())


def create_drill_petition(instance: Path, database_url: str) -> None:
    """Migrate the database and open the petition, as `samleng init` and `petition` would."""
    config = Config(
        instance_path=instance,
        database_url=database_url,
        origin=ORIGIN,
        master_key=read_master_key(instance),
        argon2=CHEAP_ARGON2,
        testing=True,
        seal_interval=0,
    )
    app = create_app(config)
    engine = services(app).engine
    try:
        upgrade(engine)
        with app.app_context():
            session = get_session()
            petition = create_petition(
                session, vault=services(app).vault, origin=ORIGIN, slug=SLUG,
                texts=TEXTS,
                goal=100_000, identifier_mode="phone", argon2=CHEAP_ARGON2,
                details_public_key=generate_details_keypair()[1],
            )  # fmt: skip
            open_petition(session, petition, services(app).vault, can_mail=False)
            session.commit()
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drill]:
    require("gunicorn", (BIN / "gunicorn").exists(), "make install")
    root = tmp_path_factory.mktemp("drill")
    with ExitStack() as cleanup:
        postgres = PrivatePostgres()
        cleanup.callback(postgres.destroy)
        postgres.init()
        postgres.start()
        with psycopg.connect(postgres.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE samleng")
        database_url = postgres.url("samleng")
        redis = PrivateRedis(root / "redis", deploy=True)
        redis.start()
        cleanup.callback(redis.stop)

        instance = root / "instance"
        ensure_master_key(instance)
        create_drill_petition(instance, database_url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAMLENG_")}
        env.update(
            SAMLENG_INSTANCE=str(instance),
            SAMLENG_ORIGIN=ORIGIN,
            SAMLENG_DATABASE_URL=database_url,
            SAMLENG_RATELIMIT_STORAGE_URI=redis.url,
            SAMLENG_SEAL_INTERVAL="0",
            # As deploy/samleng.env: nginx in front (here the clients send X-Forwarded-For
            # themselves, one address per person), one Argon2 computation per process.
            SAMLENG_TRUSTED_PROXIES="1",
            SAMLENG_ARGON2_CONCURRENCY="1",
            # A load generator posts at once. The per-petition cap (3,000 a minute by default)
            # is out of the way: with the petition page answered from its kept copy the load
            # reaches it, and then every signature is refused until the minute ends, longer
            # than the drill waits for signing to recover. Every other limit keeps its default.
            SAMLENG_FORM_MIN_SECONDS="0",
            SAMLENG_RATELIMIT_PETITION="1000000 per minute",
        )
        port = free_port()
        gunicorn = start_gunicorn(env, port, root / "gunicorn.log", root)
        cleanup.callback(stop_process, gunicorn, signal.SIGINT)

        sealer_env = dict(
            env,
            SAMLENG_SEAL_INTERVAL="1",
            SAMLENG_DATABASE_URL=postgres.url("samleng", application_name=SEALER_NAME),
            PYTHONUNBUFFERED="1",  # its log is read after it was killed
        )
        sealer = Sealer(
            [str(BIN / "samleng"), "seal", "--watch"], sealer_env, root / "sealer.log", root
        )
        sealer.start()
        cleanup.callback(sealer.stop)

        load = SigningLoad(port, SLUG, threads=4, seed=random.randrange(1 << 30))
        drill = Drill(root, env, port, gunicorn, postgres, database_url, redis, sealer, load)
        load.start()
        cleanup.callback(lambda: load.stop() if load.running else None)
        timeline = Timeline(drill)
        timeline.start()
        cleanup.callback(timeline.stop)
        yield drill


def test_kill_9_a_gunicorn_worker(drill: Drill) -> None:
    """The master replaces a killed worker; the other one serves meanwhile."""
    drill.wait_signing()
    workers = children(drill.gunicorn.pid)
    assert len(workers) == 2, workers
    victim = random.choice(sorted(workers))
    began = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    # Requests the victim was serving lose their connection.
    drill.worker_kills.append((began, began + 1.0))
    while True:
        now = children(drill.gunicorn.pid)
        if victim not in now and len(now) == 2:
            break
        assert time.monotonic() - began < RECOVERY_SECONDS, "no worker replaced the killed one"
        time.sleep(0.05)
    replaced = time.monotonic() - began
    recovered = drill.load.first_acknowledged_after(began, RECOVERY_SECONDS)
    assert recovered is not None
    time.sleep(2)  # both workers under load again
    drill.check_answers(began)
    drill.assert_nothing_lost()
    drill.note("worker kill -9", f"replaced in {replaced:.1f} s, next receipt {recovered:.2f} s")


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_restart_postgresql(drill: Drill, mode: str) -> None:
    """``pg_ctl -m fast`` (clients disconnected) and ``-m immediate`` (a crash, WAL replay):
    the pools reconnect, the sealer comes back, and every commit survives."""
    drill.wait_signing()
    before = drill.log_state()
    began = time.monotonic()
    drill.postgres.stop(mode)
    time.sleep(1.5)  # under load with the database gone
    drill.postgres.start()
    up = time.monotonic()
    drill.pg_down.append((began, up + PG_GRACE_SECONDS))
    recovered = drill.load.first_acknowledged_after(up, RECOVERY_SECONDS)
    assert recovered is not None, f"no signature acknowledged {RECOVERY_SECONDS} s after restart"
    sealed = drill.wait_sealed_beyond(before.size, up)
    drill.check_answers(began)
    drill.assert_nothing_lost()
    drill.note(
        f"postgresql -m {mode}",
        f"down {up - began:.1f} s, next receipt {recovered:.2f} s, next batch {sealed:.1f} s",
    )


def test_stop_and_start_redis(drill: Drill) -> None:
    """Without Redis the app limits per process and keeps signing, also for the requests
    in flight when it fell over; when Redis is back, the counters go to it again."""
    import redis

    drill.wait_signing()
    began = time.monotonic()
    pages: list[Attempt] = []
    rush = threading.Thread(
        target=lambda: pages.extend(burst(drill.port, f"/en/p/{SLUG}", 24, 1.5)), daemon=True
    )
    rush.start()
    time.sleep(0.5)
    drill.redis.stop()
    time.sleep(2.0)
    ended = time.monotonic()
    rush.join(timeout=60)
    during = [a for a in drill.load.snapshot() if a.acknowledged and a.start >= began + 0.5]
    assert during, "nothing was signed while Redis was down"
    drill.redis.start()
    up = time.monotonic()
    recovered = drill.load.first_acknowledged_after(up, RECOVERY_SECONDS)
    assert recovered is not None
    conn = redis.Redis(port=drill.redis.port)
    try:
        while conn.dbsize() == 0:
            assert time.monotonic() - up < RECOVERY_SECONDS, "the limiter did not return to Redis"
            time.sleep(0.1)
    finally:
        conn.close()
    back = time.monotonic() - up
    drill.check_answers(began, pages)
    drill.assert_nothing_lost()
    drill.note(
        "redis stop/start",
        f"{len(during)} receipts in {ended - began - 0.5:.1f} s without Redis, "
        f"{len(pages)} page loads in the rush, next receipt {recovered:.2f} s, "
        f"counters back in Redis {back:.1f} s",
    )


LEAF_LOCK = """
    SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE a.application_name = %s AND l.locktype = 'relation' AND l.granted
          AND l.relation = 'leaf'::regclass AND l.mode = 'RowExclusiveLock')
"""
SEALER_BACKENDS = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"


def fetch_flag(watch: psycopg.Connection, query: str) -> int:
    row = watch.execute(query, (SEALER_NAME,)).fetchone()
    assert row is not None
    return int(row[0])


def kill_inside_batch(drill: Drill, watch: psycopg.Connection, timeout: float = 30) -> bool:
    """Start a sealer; kill -9 it once it has inserted leaves and not yet committed (it holds
    the leaf table's row lock). False if it finished its batch before it was caught."""
    proc = drill.sealer.spawn()
    caught = False
    try:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if fetch_flag(watch, LEAF_LOCK):
                os.kill(proc.pid, signal.SIGKILL)
                caught = True
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    # The server notices the closed connection and rolls the transaction back.
    deadline = time.monotonic() + 10
    while fetch_flag(watch, SEALER_BACKENDS):
        assert time.monotonic() < deadline, "the killed sealer's backend lingers"
        time.sleep(0.02)
    return caught


def test_kill_9_the_sealer_inside_a_batch(drill: Drill) -> None:
    """A sealer killed after inserting leaves and before committing leaves nothing behind:
    no leaf, node or checkpoint of the batch, every pending row still pending."""
    drill.wait_signing()
    began = time.monotonic()
    drill.sealer.hold()
    rolled_back: list[int] = []
    rounds = 0
    try:
        with psycopg.connect(drill.database_url, autocommit=True) as watch:
            while len(rolled_back) < 3 and rounds < 8:
                rounds += 1
                time.sleep(1.0)  # a backlog builds up
                before = drill.log_state()
                assert before.consistent, before
                caught = kill_inside_batch(drill, watch)
                after = drill.log_state()
                assert after.consistent, (before, after)
                if caught and after.size == before.size:
                    assert after.pending >= before.pending
                    rolled_back.append(after.pending)
    finally:
        drill.sealer.release()
    released = time.monotonic()
    assert len(rolled_back) >= 2, f"caught the sealer inside a batch {len(rolled_back)} times"
    sealed = drill.wait_sealed_beyond(drill.log_state().size, released)
    drill.check_answers(began)
    drill.assert_nothing_lost()
    drill.note(
        "sealer kill -9 inside a batch",
        f"{len(rolled_back)} of {rounds} kills inside a batch (up to "
        f"{max(rolled_back)} pending rows, all kept), next batch {sealed:.1f} s",
    )


def test_kill_9_the_sealer_anywhere_in_its_round(drill: Drill) -> None:
    """Killed at any moment of a round (opening an epoch, sealing, retiring epochs and
    destroying their keys), a sealer loses nothing: every epoch key a waiting signature
    needs is still there, and the next sealer seals them and tidies the keys left over."""
    drill.wait_signing()
    began = time.monotonic()
    drill.sealer.hold()
    rng = random.Random(22)
    try:
        for _ in range(8):
            time.sleep(0.5)  # a backlog builds up
            proc = drill.sealer.spawn()
            # `samleng seal --watch` takes about a second to start on a loaded machine; kill
            # it anywhere from its start-up to well into its rounds.
            time.sleep(rng.uniform(0.5, 4.0))
            proc.kill()
            proc.wait()
            state = drill.log_state()  # opens every waiting signature with its epoch key
            assert state.consistent, state
    finally:
        drill.sealer.release()
    released = time.monotonic()
    sealed = drill.wait_sealed_beyond(drill.log_state().size, released)
    drill.check_answers(began)
    drill.assert_nothing_lost()
    drill.note("sealer kill -9 anywhere", f"8 kills, nothing lost, next batch {sealed:.1f} s")


def test_every_acknowledged_signature_is_in_the_log(drill: Drill, tmp_path: Path) -> None:
    """Runs last: stop the load, let the sealer finish, export and verify the bundle, and
    find every receipt that must be there (also through the receipt page's proof)."""
    drill.wait_signing()
    drill.load.stop()
    drill.sealer.release()
    deadline = time.monotonic() + SEALING_SECONDS
    while (state := drill.log_state()).pending:
        assert time.monotonic() < deadline, f"{state.pending} signatures stay pending"
        time.sleep(0.2)
    assert state.consistent, state
    # Every epoch but the current one is retired once nothing waits, and its key is gone.
    deadline = time.monotonic() + SEALING_SECONDS
    while len(list((Path(drill.env["SAMLENG_INSTANCE"]) / "keys").glob("epoch-*.key"))) > 1:
        assert time.monotonic() < deadline, "epoch keys outlive their signatures"
        time.sleep(0.2)

    bundle = tmp_path / "bundle"
    run = [str(BIN / "samleng"), "export", SLUG, str(bundle), "--no-pdf"]
    done = subprocess.run(run, env=drill.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    run = [str(BIN / "samleng-audit"), "verify", str(bundle)]
    done = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    count = int(done.stdout.strip().splitlines()[-1].removeprefix("count "))

    data = (bundle / "leaves.bin").read_bytes()
    leaves = [decode_leaf(data[i : i + LEAF_SIZE]) for i in range(0, len(data), LEAF_SIZE)]
    index = {leaf.c: i for i, leaf in enumerate(leaves) if leaf.kind != LeafKind.HEADER}
    assert count == len(index) == state.size - 1 == state.tokens

    attempts = drill.load.snapshot()
    ledger = Ledger.of(attempts)
    origin = f"{ORIGIN}/p/{SLUG}"
    assert ledger.check(origin, set(index)) == []
    # Answers outside the fault tests' own windows: no fault explains any error there.
    unchecked = [
        a for a in attempts if not any(begin <= a.start <= end for begin, end in drill.checked)
    ]
    assert drill.answer_problems(unchecked) == []

    # A signer's own check: the receipt page's proof, verified offline against the vkey.
    vkey = (bundle / "vkey").read_text().strip()
    sealed_codes = sorted(
        code
        for code in {**ledger.required, **ledger.optional, **ledger.repeats}
        if commitment(origin, code) in index
    )
    for code in random.sample(sealed_codes, min(8, len(sealed_codes))):
        check = verify_receipt(post_receipt(drill.port, code), vkey)
        assert check.index == index[commitment(origin, code)] and check.size == state.size

    # Nothing the servers wrote while failing names a signer or their address.
    typed = re.compile(rb"\+?855 ?12 ?5\d\d ?\d\d\d|012 5\d\d \d\d\d|\b10\.\d+\.\d+\.\d+\b")
    logs = [drill.root / "gunicorn.log", drill.root / "sealer.log", drill.redis.log]
    for log in [*logs, drill.postgres.log]:
        assert typed.search(log.read_bytes()) is None, log

    statuses: dict[str, int] = {}
    for a in attempts:
        key = "no answer" if a.status is None else str(a.status)
        statuses[key] = statuses.get(key, 0) + 1
    drill.note(
        "load",
        f"{len(attempts)} attempts in {time.monotonic() - drill.load.began:.0f} s "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))}); "
        f"{len(ledger.acknowledged)} people acknowledged, count {count}, "
        f"{len(ledger.repeats)} repeats; sealer exits {drill.sealer.exits}",
    )
    print("\nreliability drills:\n" + "\n".join(f"  {k}: {v}" for k, v in drill.results.items()))


def post_receipt(port: int, code: str) -> bytes:
    """The tlog-proof file the receipt page gives for ``code``."""
    import http.client
    import urllib.parse

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    body = urllib.parse.urlencode({"receipt": code, "format": "proof"}).encode()
    headers = {
        "Host": HOST,
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Forwarded-For": address(1),
    }
    try:
        conn.request("POST", f"/en/p/{SLUG}/receipt", body=body, headers=headers)
        answer = conn.getresponse()
        proof = answer.read()
    finally:
        conn.close()
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/plain")
    return proof
