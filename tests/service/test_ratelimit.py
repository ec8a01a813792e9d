"""Rate limits, circuits, storage failure and overload shedding, on memory and real Redis."""

from __future__ import annotations

import base64
import datetime as dt
import gc
import hashlib
import hmac
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from limits import parse
from limits.strategies import FixedWindowRateLimiter

from samleng.service.app import create_app
from samleng.service.platform import ratelimit
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from samleng.service.platform.gate import Overloaded, WorkGate
from samleng.service.platform.keys import derive_key
from samleng.service.platform.ratelimit import (
    CIRCUIT_HEADER,
    AlignedMemoryStorage,
    BatchedRedisStorage,
    ClientPseudonyms,
    DayKeys,
    SharedStorage,
    client_of,
    window_seconds,
)
from samleng.service.signing.formtoken import RecentKeys, issue_form_token
from samleng.service.web.keptpages import PAGE_SCOPE
from tests.components import PrivateRedis, free_port
from tests.conftest import (
    FORM_TOKEN,
    MASTER_KEY,
    add_petition,
    make_config,
    sign,
    within_one_clock_minute,
)

CIRCUITS = ["fc00:dead:beef:4dad::0:1", "fc00:dead:beef:4dad::0:2"]
ADDRESSES = ["198.51.100.7", "198.51.100.8", "203.0.113.5", "127.0.0.1"]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["memory", "redis"])
def storage_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
        return
    server = PrivateRedis(tmp_path)
    server.start()
    yield server.url
    server.stop()


def limited_app(tmp_path: Path, storage: str, **overrides: object) -> Flask:
    values: dict[str, object] = {
        "ratelimit_storage_uri": storage,
        "ratelimit_sign": "3 per minute",
        "ratelimit_pages": "1000 per minute",
        "circuit_proxies": ("127.0.0.1",),
    }
    values.update(overrides)
    app = create_app(make_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}", **values))
    upgrade(services(app).engine)
    add_petition(app)
    return app


def as_client(app: Flask, address: str, circuit: str | None = None) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    if circuit is not None:
        client.environ_base["HTTP_" + CIRCUIT_HEADER.upper().replace("-", "_")] = circuit
    return client


def fresh_token(app: Flask, slug: str = "free-them") -> str:
    """A new sign-form token, as the petition page would carry (without fetching it)."""
    return issue_form_token(services(app).form_tokens.key, slug)


def statuses(client: FlaskClient, n: int, start: int = 0) -> list[int]:
    return [
        sign(client, "free-them", identifier=f"012 345 {start + i:03d}").status_code
        for i in range(n)
    ]


def test_flood_gets_429_while_others_sign(tmp_path: Path, storage_uri: str) -> None:
    app = limited_app(tmp_path, storage_uri)
    flooder = as_client(app, ADDRESSES[0])
    assert statuses(flooder, 4) == [200, 200, 200, 429]
    refused = sign(flooder, "free-them", lang="km", identifier="012 345 999")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert '<html lang="km">' in refused.get_data(as_text=True)
    assert "Too many requests" not in refused.get_data(as_text=True)  # translated
    assert statuses(as_client(app, ADDRESSES[1]), 3, start=100) == [200, 200, 200]


def test_circuits_are_limited_separately_only_from_the_proxy(
    tmp_path: Path, storage_uri: str
) -> None:
    app = limited_app(tmp_path, storage_uri)
    first = as_client(app, "127.0.0.1", CIRCUITS[0])
    second = as_client(app, "127.0.0.1", CIRCUITS[1])
    assert statuses(first, 4) == [200, 200, 200, 429]
    assert statuses(second, 3, start=100) == [200, 200, 200]
    # From an address that is not the proxy, the header is ignored: one client, one limit.
    spoof_a = as_client(app, ADDRESSES[2], CIRCUITS[0])
    spoof_b = as_client(app, ADDRESSES[2], "fc00:dead:beef:4dad::0:9")
    assert statuses(spoof_a, 2, start=200) == [200, 200]
    assert statuses(spoof_b, 2, start=300) == [200, 429]


def test_forwarded_for_only_through_trusted_proxies(tmp_path: Path) -> None:
    app = limited_app(tmp_path, "memory://", trusted_proxies=1)
    for i, address in enumerate(ADDRESSES[:2]):
        client = as_client(app, "127.0.0.1")
        client.environ_base["HTTP_X_FORWARDED_FOR"] = address
        assert statuses(client, 3, start=100 * i) == [200, 200, 200]
    (tmp_path / "b").mkdir()
    untrusted = limited_app(tmp_path / "b", "memory://")
    results = []
    for i, address in enumerate(ADDRESSES[:2]):
        client = as_client(untrusted, "127.0.0.1")
        client.environ_base["HTTP_X_FORWARDED_FOR"] = address
        results += statuses(client, 2, start=100 * i)
    assert results == [200, 200, 200, 429]


def test_unreachable_storage_falls_back_and_never_fails_open(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = limited_app(tmp_path, dead, ratelimit_fallback="4 per minute")
    client = as_client(app, ADDRESSES[0])
    answers = [client.get("/en/p/free-them").status_code for _ in range(6)]
    assert 500 not in answers
    assert answers[:4] == [200] * 4 and answers[-1] == 429


def test_redis_stopped_mid_run(tmp_path: Path, private_redis: PrivateRedis) -> None:
    app = limited_app(tmp_path, private_redis.url, ratelimit_fallback="5 per minute")
    client = as_client(app, ADDRESSES[0])
    assert statuses(client, 2) == [200, 200]
    private_redis.stop()
    after = [client.get("/en/").status_code for _ in range(7)]
    assert 500 not in after and 429 in after
    assert as_client(app, ADDRESSES[1]).get("/en/").status_code == 200


def test_all_clients_together_are_limited_per_petition(tmp_path: Path, storage_uri: str) -> None:
    app = limited_app(tmp_path, storage_uri, ratelimit_sign="100 per minute",
                      ratelimit_petition="4 per minute")  # fmt: skip
    add_petition(app, slug="other")
    answers = [
        statuses(as_client(app, address), 2, start=100 * i)
        for i, address in enumerate(ADDRESSES[:3])
    ]
    assert answers == [[200, 200], [200, 200], [429, 429]]
    refused = sign(as_client(app, ADDRESSES[3]), "free-them", identifier="012 345 900")
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 61
    # The limit is the petition's: another petition still takes signatures.
    other = as_client(app, ADDRESSES[2])
    assert sign(other, "other", identifier="012 345 901").status_code == 200


def test_signing_falls_back_while_redis_is_down_and_shares_again_after(
    tmp_path: Path, private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SharedStorage, "RETRY_SECONDS", 0.5)
    app = limited_app(tmp_path, private_redis.url, ratelimit_fallback="3 per minute")

    def posts(client: FlaskClient, n: int, start: int) -> list[int]:
        # Straight to the sign endpoint, with tokens made here: the pages' own fallback
        # limit is not in the way.
        return [
            client.post(
                "/en/p/free-them/sign",
                data={
                    "form_token": fresh_token(app),
                    "consent": "yes",
                    "identifier": f"012 345 {start + i:03d}",
                },
            ).status_code
            for i in range(n)
        ]

    client = as_client(app, ADDRESSES[0])
    assert posts(client, 2, start=0) == [200, 200]
    private_redis.stop()
    # Never open, never a 500: the fallback, per client, in this process.
    assert posts(client, 4, start=10) == [200, 200, 200, 429]
    assert posts(as_client(app, ADDRESSES[1]), 1, start=20) == [200]
    private_redis.start()  # empty, on the same port
    time.sleep(0.6)
    # The shared limits again (3 per minute, counted afresh), not the spent fallback.
    assert posts(client, 4, start=30) == [200, 200, 200, 429]
    assert b"LIMITER" in private_redis.dump_everything()


def test_redis_holds_no_address_or_circuit(tmp_path: Path, private_redis: PrivateRedis) -> None:
    app = limited_app(tmp_path, private_redis.url)
    for address in ADDRESSES[:3]:
        statuses(as_client(app, address), 4, start=ADDRESSES.index(address) * 100)
    for circuit in CIRCUITS:
        statuses(as_client(app, "127.0.0.1", circuit), 4, start=500 + CIRCUITS.index(circuit))
    everything = private_redis.dump_everything()
    assert b"LIMITER" in everything  # the limiter really used this Redis
    for needle in [*ADDRESSES, *CIRCUITS, "dead:beef", "4dad"]:
        assert needle.encode() not in everything, needle


class HeldSlot:
    """One of ``gate``'s slots, held on a thread of its own until released."""

    def __init__(self, gate: WorkGate) -> None:
        self._holding, self._released = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._hold, args=(gate,))
        self._thread.start()
        assert self._holding.wait(10)

    def _hold(self, gate: WorkGate) -> None:
        with gate.enter():
            self._holding.set()
            self._released.wait(10)

    def release(self, after: float = 0) -> None:
        threading.Timer(after, self._released.set).start()

    def join(self) -> None:
        self._thread.join(10)


def test_overload_is_shed_with_503_after_the_wait(tmp_path: Path) -> None:
    app = limited_app(tmp_path, "memory://", argon2_concurrency=1, argon2_wait=0.3)
    gate: WorkGate = services(app).argon2_gate
    client = as_client(app, ADDRESSES[0])
    with gate.enter():
        started = time.monotonic()
        response = sign(client, "free-them", lang="km", identifier="012 345 678")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert '<html lang="km">' in response.get_data(as_text=True)
    assert 0.3 <= elapsed < 5  # waited for a slot, then answered rather than queued on
    assert sign(client, "free-them", identifier="012 345 678").status_code == 200


@pytest.mark.parametrize("lang", ["en", "km"])
def test_a_shed_signature_says_it_was_not_counted_and_keeps_the_form(
    tmp_path: Path, lang: str
) -> None:
    """The 503 page is the sign form again: not counted, sign again; what was typed is kept,
    except the phone number and the email for news, which are never echoed."""
    app = limited_app(tmp_path, "memory://", argon2_concurrency=1, argon2_wait=0.1)
    gate: WorkGate = services(app).argon2_gate
    client = as_client(app, ADDRESSES[0])
    typed = {
        "identifier": "012 987 654",
        "name": "Sok Dara",
        "locality": "Kampot",
        "comment": "Free them now",
        "contact": "dara@example.org",
    }
    with gate.enter():
        response = sign(client, "free-them", lang=lang, **typed)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    not_counted = {
        "en": "Your signature was not counted",
        "km": "យើងមិនទាន់បានរាប់ហត្ថលេខារបស់អ្នកទេ",
    }[lang]
    assert not_counted in page
    assert f'action="/{lang}/p/free-them/sign#sign"' in page  # the form, to sign again
    assert 'value="Sok Dara"' in page and 'value="Kampot"' in page
    assert (
        ">Free them now</textarea>" in page
        and 'name="consent" value="yes" required checked' in page
    )
    assert "987" not in page and "dara@example.org" not in page
    assert (
        'id="f-identifier"' in page
        and 'aria-invalid="true" aria-describedby="e-identifier"' in page
    )
    assert sign(client, "free-them", lang=lang, **typed).status_code == 200


def test_a_slot_freed_during_the_wait_is_taken(tmp_path: Path) -> None:
    app = limited_app(tmp_path, "memory://", argon2_concurrency=1, argon2_wait=10)
    gate: WorkGate = services(app).argon2_gate
    held = HeldSlot(gate)
    held.release(after=0.2)
    started = time.monotonic()
    response = sign(as_client(app, ADDRESSES[0]), "free-them", identifier="012 345 678")
    elapsed = time.monotonic() - started
    held.join()
    assert response.status_code == 200
    assert 0.2 <= elapsed < 5


def test_no_wait_sheds_at_once(tmp_path: Path) -> None:
    gate = WorkGate(1, 0)
    with gate.enter():
        started = time.monotonic()
        with pytest.raises(Overloaded):
            with gate.enter():
                pass
        assert time.monotonic() - started < 0.1
    with gate.enter():  # the slot came back
        pass


def test_client_pseudonyms_rotate_daily() -> None:
    day = [dt.date(2026, 11, 21)]
    keys = ClientPseudonyms(DayKeys(AlignedMemoryStorage(), today=lambda: day[0]))
    monday = keys.pseudonym("ip", "198.51.100.7")
    assert monday == keys.pseudonym("ip", "198.51.100.7")
    assert "198" not in monday and monday.startswith("ip:")
    assert monday != keys.pseudonym("ip", "198.51.100.8")
    assert monday != keys.pseudonym("circuit", "198.51.100.7")
    day[0] = dt.date(2026, 11, 22)
    assert monday != keys.pseudonym("ip", "198.51.100.7")


def test_the_slot_is_held_only_while_hashing_on_the_gates_own_thread() -> None:
    gate = WorkGate(1, 0)
    where = gate.run(threading.current_thread)
    assert where is not threading.current_thread()
    assert where.name.startswith("samleng-argon2")
    assert gate.run(threading.current_thread) is where  # the same thread every time
    with gate.enter():  # the slot came back after each run
        with pytest.raises(Overloaded):
            gate.run(int)


def test_work_shed_after_the_wait_never_runs_later() -> None:
    gate = WorkGate(1, 0.2)
    ran: list[int] = []
    held = HeldSlot(gate)
    started = time.monotonic()
    with pytest.raises(Overloaded):
        gate.run(ran.append, 1)
    assert 0.2 <= time.monotonic() - started < 5
    held.release()
    held.join()
    assert gate.run(ran.append, 2) is None
    assert ran == [2]  # the shed work was dropped from the queue, not run late


def test_an_error_in_the_work_reaches_the_caller_and_frees_the_slot() -> None:
    gate = WorkGate(1, 0)
    with pytest.raises(ZeroDivisionError):
        gate.run(divmod, 1, 0)
    assert gate.run(divmod, 7, 2) == (3, 1)  # no wait: the slot was free at once


def test_the_gates_threads_end_with_the_gate() -> None:
    before = set(threading.enumerate())
    gate = WorkGate(2, 0)
    threads = [t for t in set(threading.enumerate()) - before if t.name.startswith("samleng-")]
    assert len(threads) == 2
    del gate
    gc.collect()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()


def test_the_gate_works_in_a_forked_child() -> None:
    # gunicorn --preload builds the app before it forks: the child must get its own threads.
    gate = WorkGate(1, 1)
    assert gate.run(sum, [1, 2]) == 3
    held = HeldSlot(gate)  # a slot taken at the moment of the fork
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if the gate answers (with the slot free)
        code = 1
        try:
            code = 0 if gate.run(sum, [2, 3]) == 5 else 1
        finally:
            os._exit(code)
    held.release()
    held.join()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    raise AssertionError("the forked child's gate never ran the work")


def test_the_memory_storage_starts_no_thread_per_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    """limits' own memory storage starts a timer thread after almost every hit under load."""
    storage = AlignedMemoryStorage()
    started: list[threading.Timer] = []
    real_start = threading.Timer.start

    def counted(timer: threading.Timer) -> None:
        started.append(timer)
        real_start(timer)

    monkeypatch.setattr(threading.Timer, "start", counted)
    limiter = FixedWindowRateLimiter(storage)
    limit = parse("1000 per minute")
    for n in range(200):
        assert limiter.hit(limit, f"client-{n % 7}")
        time.sleep(0.0005)
    assert started == []
    assert limiter.get_window_stats(limit, "client-0").remaining < 1000


def test_the_memory_storage_still_forgets_expired_keys() -> None:
    storage = AlignedMemoryStorage()
    storage.SWEEP_SECONDS = 0.05
    limiter = FixedWindowRateLimiter(storage)
    limiter.hit(parse("5 per second"), "gone")
    time.sleep(1.2)
    limiter.hit(parse("5 per hour"), "other")  # a hit sweeps, at most once per SWEEP_SECONDS
    assert storage.reset() == 1  # only "other" was left


def test_memory_uri_selects_the_aligned_storage(tmp_path: Path) -> None:
    app = limited_app(tmp_path, "memory://")
    assert isinstance(services(app).rate_limits.limiter.storage, AlignedMemoryStorage)


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_windows_are_aligned_on_the_clock(
    tmp_path: Path, kind: str, private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A counter's expiry is its window's end, whenever its first hit came."""
    monkeypatch.setattr(ratelimit, "WINDOW_ORIGIN", 0)  # the real clock's minutes
    within_one_clock_minute(10)
    storage: Any = (
        AlignedMemoryStorage() if kind == "memory" else storage_from(f"samleng+{private_redis.url}")
    )
    limit = parse("3 per minute")
    limiter = FixedWindowRateLimiter(storage)
    assert limiter.hit(limit, "a")
    time.sleep(1.1)
    assert limiter.hit(limit, "b")
    ends = {storage.get_expiry(limit.key_for(name)) for name in ("a", "b")}
    assert len(ends) == 1 and ends.pop() % 60 == 0
    assert window_seconds(limit.key_for("a")) == 60


def storage_from(uri: str) -> Any:
    from limits.storage import storage_from_string

    return storage_from_string(uri)


# --- The page limits' batches --------------------------------------------------------------


def counters_in(server: PrivateRedis, pattern: str = "*") -> list[int]:
    """The values of the counters in ``server`` whose names match ``pattern``."""
    connection = redis.Redis.from_url(server.url)
    try:
        return [int(connection.get(name) or 0) for name in connection.scan_iter(pattern)]
    finally:
        connection.close()


def batched(url: str) -> BatchedRedisStorage:
    return BatchedRedisStorage(storage_from(f"samleng+{url}"))


@pytest.fixture
def one_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows on the clock's minutes, and the test's hits all in one of them."""
    monkeypatch.setattr(ratelimit, "WINDOW_ORIGIN", 0)
    within_one_clock_minute(10)


def test_page_limits_count_in_batches_exactly_within_a_process(
    tmp_path: Path, private_redis: PrivateRedis, one_window: None
) -> None:
    """The petition page's limit in Redis: one process refuses the hit after the limit even
    when none of its hits has reached Redis yet, and what reaches Redis is the whole count."""
    app = limited_app(tmp_path, private_redis.url, ratelimit_pages="3 per minute")
    assert isinstance(services(app).rate_limits.pages.counters, BatchedRedisStorage)
    client = as_client(app, ADDRESSES[0])
    answers = [client.get("/en/p/free-them").status_code for _ in range(5)]
    assert answers == [200, 200, 200, 429, 429]
    time.sleep(BatchedRedisStorage.BATCH_SECONDS * 2)
    assert client.get("/en/p/free-them").status_code == 429  # sends the batch
    counts = counters_in(private_redis, f"*{PAGE_SCOPE}*")
    assert sum(counts) == 6


def by_hand(url: str) -> BatchedRedisStorage:
    """A batched storage that sends its first hit at once and then only when flushed."""
    storage = batched(url)
    storage.BATCH_SECONDS = 3600
    return storage


def test_batches_bring_back_the_other_processes_hits(
    private_redis: PrivateRedis, one_window: None
) -> None:
    """Two processes' counters on one Redis: each learns the other's hits with its next
    round trip; in between it counts in memory."""
    first, second = by_hand(private_redis.url), by_hand(private_redis.url)
    key = parse("100 per minute").key_for("client")
    assert [first.incr(key, 60) for _ in range(3)] == [1, 2, 3]  # the first one sent
    first.flush()
    assert second.incr(key, 60) == 4  # its first hit goes out, and brings back first's 3
    assert second.incr(key, 60) == 5  # in memory: no round trip yet
    assert first.get(key) == 3  # first has not asked Redis since
    assert first.incr(key, 60) == 4
    first.flush()
    assert first.get(key) == 5  # second's last hit is still in its memory
    assert second.get(key) == 5
    second.flush()
    assert second.get(key) == 6
    assert counters_in(private_redis) == [6]


def test_a_batch_that_fails_is_sent_when_redis_answers_again(
    private_redis: PrivateRedis, one_window: None
) -> None:
    storage = by_hand(private_redis.url)
    key = parse("100 per minute").key_for("client")
    assert storage.incr(key, 60) == 1  # sent
    assert storage.incr(key, 60) == 2  # waiting
    private_redis.stop()
    with pytest.raises(redis.RedisError):
        storage.flush()  # the round trip fails, and the batch is kept
    assert storage.get(key) == 2
    private_redis.start()  # empty, on the same port
    assert storage.incr(key, 60) == 3
    storage.flush()  # the kept hit and this one; the first left with Redis
    assert storage.get(key) == 2
    assert counters_in(private_redis) == [2]


def test_batches_keep_only_the_totals_of_clients_past_half_a_limit(
    private_redis: PrivateRedis, one_window: None
) -> None:
    """Totals far below the limit are forgotten once sent (memory stays small with many
    viewers); a client paced slower than the batches is still refused at its limit."""
    storage = BatchedRedisStorage(storage_from(f"samleng+{private_redis.url}"), keep_from=5)
    limiter = FixedWindowRateLimiter(storage)
    limit = parse("10 per minute")
    for n in range(100):
        assert limiter.hit(limit, f"viewer-{n}")
    time.sleep(BatchedRedisStorage.BATCH_SECONDS * 1.5)
    answers = []
    for _ in range(12):
        answers.append(limiter.hit(limit, "paced"))
        time.sleep(BatchedRedisStorage.BATCH_SECONDS * 1.5)
    assert answers == [True] * 10 + [False] * 2
    assert storage.held() == 1  # the paced client's: every viewer's total was forgotten
    assert storage.get(limit.key_for("paced")) == 12


def test_the_page_limits_keep_from_half_the_smallest_limit(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    app = limited_app(tmp_path, private_redis.url, ratelimit_pages="40 per minute; 300 per hour")
    counters = services(app).rate_limits.pages.counters
    assert isinstance(counters, BatchedRedisStorage) and counters._keep_from == 20


def test_many_threads_lose_no_hit(private_redis: PrivateRedis, one_window: None) -> None:
    """gunicorn's threads share one storage: every hit reaches Redis exactly once."""
    storage = batched(private_redis.url)
    key = parse("100000 per minute").key_for("client")

    def hits() -> None:
        for _ in range(200):
            storage.incr(key, 60)

    threads = [threading.Thread(target=hits) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    storage.flush()
    assert storage.get(key) == 1600
    assert counters_in(private_redis) == [1600]


# --- IPv6: a client is its /64, and a /48 is bounded -----------------------------------------

ONE_64 = [f"2001:db8:1:2::{n:x}" for n in range(1, 13)] + ["2001:db8:1:2:ffff:ffff:ffff:ffff"]


def test_every_address_of_an_ipv6_64_is_one_client(tmp_path: Path, storage_uri: str) -> None:
    """One subscriber gets a /64 and can use any of its addresses: they are one client."""
    app = limited_app(tmp_path, storage_uri)
    answers = [
        sign(as_client(app, address), "free-them", identifier=f"012 345 {i:03d}").status_code
        for i, address in enumerate(ONE_64)
    ]
    assert answers[:3] == [200] * 3 and set(answers[3:]) == {429}
    # The next /64 is another client.
    assert statuses(as_client(app, "2001:db8:1:3::1"), 3, start=100) == [200] * 3


def test_an_ipv6_48_is_bounded_together(tmp_path: Path, storage_uri: str) -> None:
    app = limited_app(tmp_path, storage_uri, ratelimit_ipv6_site_factor=2)
    # Three /64s of one /48, three signatures each: the /48 may sign 2 x 3 times a minute.
    answers = [
        statuses(as_client(app, f"2001:db8:7:{net:x}::1"), 3, start=100 * net)
        for net in range(1, 4)
    ]
    assert answers == [[200] * 3, [200] * 3, [429] * 3]
    # Another /48 is another site.
    assert statuses(as_client(app, "2001:db8:8:1::1"), 3, start=900) == [200] * 3


def test_ipv6_pages_are_limited_per_64_and_per_48(tmp_path: Path, storage_uri: str) -> None:
    app = limited_app(tmp_path, storage_uri, ratelimit_pages="4 per minute",
                      ratelimit_ipv6_site_factor=2)  # fmt: skip
    first = [as_client(app, address).get("/en/").status_code for address in ONE_64[:5]]
    assert first == [200] * 4 + [429]
    second = [as_client(app, f"2001:db8:1:9::{n}").get("/en/").status_code for n in range(1, 6)]
    assert second == [200] * 4 + [429]
    # 8 pages from the /48 (2001:db8:1::/48) in this minute: a third /64 gets none.
    assert as_client(app, "2001:db8:1:a::1").get("/en/").status_code == 429
    assert as_client(app, "2001:db8:2:a::1").get("/en/").status_code == 200


def test_client_identity() -> None:
    keys = ClientPseudonyms(DayKeys(AlignedMemoryStorage(), today=lambda: dt.date(2026, 11, 21)))
    one = client_of("2001:db8:1:2::1", keys)
    assert one == client_of("2001:DB8:1:2:aaaa:bbbb:cccc:dddd", keys)
    assert one.key != client_of("2001:db8:1:3::1", keys).key
    assert one.site == client_of("2001:db8:1:3::1", keys).site
    assert one.site != client_of("2001:db8:2:2::1", keys).site
    assert "2001" not in one.key and "db8" not in str(one.site)
    # IPv4, also written as IPv4-mapped IPv6, is its own address, with no site.
    v4 = client_of("198.51.100.7", keys)
    assert v4.site is None
    assert v4 == client_of("::ffff:198.51.100.7", keys)
    assert v4 != client_of("198.51.100.8", keys)
    assert client_of("fe80::1%eth0", keys) == client_of("fe80::2", keys)
    assert client_of("not an address", keys).site is None


# --- the petition's cap counts only checked submissions --------------------------------------


def test_junk_does_not_use_up_the_petitions_signatures(tmp_path: Path, storage_uri: str) -> None:
    """Empty posts, bad tokens and reused tokens, from many clients, are refused (400) before
    they count against the petition: a real signature still gets through."""
    app = limited_app(tmp_path, storage_uri, ratelimit_sign="100 per minute",
                      ratelimit_petition="3 per minute")  # fmt: skip
    used = fresh_token(app)
    assert sign(as_client(app, "203.0.113.1"), "free-them", form_token=used,
                identifier="012 345 001").status_code == 200  # fmt: skip
    junk = [
        {},
        {"consent": "yes"},
        {"form_token": "1.forged", "consent": "yes", "identifier": "012 345 678"},
        {"form_token": used, "consent": "yes", "identifier": "012 345 678"},
        {"form_token": fresh_token(app), "consent": "yes"},  # no phone number
        {"form_token": fresh_token(app), "consent": "yes", "identifier": "012", "website": "x"},
    ]
    answers = [
        as_client(app, f"198.51.100.{i}").post("/en/p/free-them/sign", data=fields).status_code
        for i in range(3)
        for fields in junk
    ]
    assert answers == [400] * len(answers)
    good = [
        sign(as_client(app, "203.0.113.2"), "free-them", identifier=f"012 345 1{i:02d}")
        for i in range(3)
    ]
    assert [answer.status_code for answer in good] == [200, 200, 429]


# --- a form token is good for one submission ---------------------------------------------------


def test_a_form_token_is_good_once(tmp_path: Path, storage_uri: str) -> None:
    app = limited_app(tmp_path, storage_uri, ratelimit_sign="100 per minute")
    token = fresh_token(app)
    fields = {"form_token": token, "consent": "yes", "identifier": "012 345 678"}
    first = as_client(app, ADDRESSES[0]).post("/en/p/free-them/sign", data=fields)
    assert first.status_code == 200
    for address in ADDRESSES[:3]:  # from anywhere, with any number
        again = as_client(app, address).post(
            "/km/p/free-them/sign", data={**fields, "identifier": "012 345 679"}
        )
        assert again.status_code == 400
        page = again.get_data(as_text=True)
        assert '<html lang="km">' in page and "already sent" not in page  # translated
        english = as_client(app, address).post("/en/p/free-them/sign", data=fields)
        assert "This form was already sent" in english.get_data(as_text=True)
        assert 'class="receipt"' not in page
    # The refused page carries a fresh token, which works.
    match = FORM_TOKEN.search(english.get_data(as_text=True))
    assert match and match.group(1) != token
    refill = {**fields, "form_token": match.group(1), "identifier": "012 345 680"}
    assert as_client(app, ADDRESSES[0]).post("/en/p/free-them/sign", data=refill).status_code == 200


def test_used_tokens_are_kept_as_hmacs_only(tmp_path: Path, private_redis: PrivateRedis) -> None:
    app = limited_app(tmp_path, private_redis.url, form_max_age=600)
    tokens = [fresh_token(app) for _ in range(3)]
    for i, token in enumerate(tokens):
        fields = {"form_token": token, "consent": "yes", "identifier": f"012 345 {i:03d}"}
        assert (
            as_client(app, ADDRESSES[0]).post("/en/p/free-them/sign", data=fields).status_code
            == 200
        )
    everything = private_redis.dump_everything()
    assert everything.count(b"form-used:") == 3
    for token in tokens:
        for part in token.split("."):
            assert part.encode() not in everything
    ttls = private_redis_ttls(private_redis, b"form-used:")
    # Kept for the tokens' lifetime, rounded up to ten minutes: the expiry dates a use no
    # closer than that.
    assert len(ttls) == 3 and all(600 <= ttl <= 1200 for ttl in ttls)


def private_redis_ttls(server: PrivateRedis, prefix: bytes) -> list[int]:
    """The time to live of every key of ``server`` whose name holds ``prefix``."""
    client = redis.Redis(host="127.0.0.1", port=server.port)
    try:
        return [int(client.ttl(key)) for key in client.scan_iter() if prefix in key]
    finally:
        client.close()


def test_single_use_holds_while_redis_is_down(
    tmp_path: Path, private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SharedStorage, "RETRY_SECONDS", 0.5)
    app = limited_app(tmp_path, private_redis.url, ratelimit_fallback="100 per minute")
    client = as_client(app, ADDRESSES[0])
    private_redis.stop()
    token = fresh_token(app)
    fields = {"form_token": token, "consent": "yes", "identifier": "012 345 678"}
    answers = [client.post("/en/p/free-them/sign", data=fields).status_code for _ in range(3)]
    assert answers == [200, 400, 400]


def test_the_memory_store_of_used_tokens_is_bounded() -> None:
    now = [0.0]
    recent = RecentKeys(seconds=60, capacity=3, clock=lambda: now[0])
    assert [recent.add(name) for name in "abc"] == [True] * 3
    assert not recent.add("a")
    assert recent.add("d") and len(recent) == 3  # the oldest went
    now[0] = 61.0
    assert recent.add("b") and len(recent) == 1  # expired names went too
    assert not recent.add("b")


def test_redis_keys_name_nobody_and_date_nothing(
    tmp_path: Path, private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a seized Redis holds after clients of known addresses signed: no key name that
    the master key (or anything else the instance keeps) recomputes for those addresses,
    and no expiry finer than its window, whenever the first request came."""
    monkeypatch.setattr(ratelimit, "WINDOW_ORIGIN", 0)  # the real clock's minutes
    within_one_clock_minute(10)
    app = limited_app(tmp_path, private_redis.url)
    for n, address in enumerate(ADDRESSES[:3]):
        client = as_client(app, address)
        time.sleep(0.3 * n)  # first hits at different moments within the window
        assert sign(client, "free-them", identifier=f"012 345 70{n}").status_code == 200
    import redis

    connection = redis.Redis.from_url(private_redis.url)
    names = [bytes(name) for name in connection.scan_iter("*")]
    assert any(b"LIMITER" in name for name in names)
    # What the master key used to derive for these addresses, on any day around now.
    base = derive_key(MASTER_KEY, "rate-limit")
    today = dt.datetime.now(dt.UTC).date()
    for day in (today - dt.timedelta(days=1), today, today + dt.timedelta(days=1)):
        day_key = hmac.new(base, day.isoformat().encode(), hashlib.sha256).digest()
        for address in ADDRESSES[:3]:
            digest = hmac.new(day_key, f"ip\n{address}".encode(), hashlib.sha256).digest()
            old = base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=").encode()
            assert not [name for name in names if old in name]
    for name in names:
        expires = int(connection.execute_command("EXPIRETIME", name))
        assert expires > 0, name  # nothing stays for ever
        assert expires % 60 == 0, (name, expires)  # a window's end, never a request's time
    connection.close()
