"""What counting the petition page's limit costs the worker, per page (issue 21).

The page limit is counted on every petition page the app serves. In Redis it used to cost
a round trip per page; the page limits now reach Redis in batches (BatchedRedisStorage).
page_rps.py measures the whole page with one client (wrk), so every batch carries one
counter. This bench measures the counting alone, in this process, with one client and with
many: each hit from a client not seen before (100,000 viewers reloading once a minute are
100,000 counters a minute), where a batch carries one INCRBY and one EXPIREAT per client.

For each way of counting, ``FixedWindowRateLimiter.hit`` under the deployed page limit is
called by 16 threads (gunicorn's threads per worker) for ``--seconds``; the figure is this
process's CPU time per hit (user + system, so the socket work counts), and, for the
batched storage, the round trips it made and how many totals it kept at the end (it keeps
those of clients past half the limit, as the app does). A private redis-server on loopback.

    .venv/bin/python bench/page_limits.py [--seconds 5] [--threads 16] [--no-record]
"""

from __future__ import annotations

import argparse
import itertools
import threading
import time
from collections.abc import Callable

from common import machine, note, record
from limits import parse, parse_many
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter
from page_rps import redis_server

from samleng.service.platform.config import Config
from samleng.service.platform.ratelimit import (
    AlignedMemoryStorage,
    AlignedRedisStorage,
    BatchedRedisStorage,
)


def cpu_per_hit(
    storage: Storage, clients: Callable[[], str], seconds: float, threads: int
) -> tuple[float, int]:
    """CPU µs of this process per hit, and the hits made, with ``threads`` threads hitting."""
    limiter = FixedWindowRateLimiter(storage)
    limit = parse(Config.ratelimit_pages)
    stop = threading.Event()
    counts = [0] * threads

    def hits(slot: int) -> None:
        while not stop.is_set():
            limiter.hit(limit, "samleng", clients(), "public.petition")
            counts[slot] += 1

    workers = [threading.Thread(target=hits, args=(n,)) for n in range(threads)]
    cpu0 = time.process_time()
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    cpu = time.process_time() - cpu0
    return cpu / sum(counts) * 1e6, sum(counts)


class CountingBatches(BatchedRedisStorage):
    """BatchedRedisStorage that counts its round trips, keeping totals as the app does."""

    trips = 0

    def __init__(self, redis: AlignedRedisStorage) -> None:
        half = min(item.amount for item in parse_many(Config.ratelimit_pages)) // 2
        super().__init__(redis, keep_from=half)

    def _send(self, now: float) -> None:
        type(self).trips += 1
        super()._send(now)


def batches(url: str) -> CountingBatches:
    return CountingBatches(AlignedRedisStorage(url))


PER_HIT, BATCHES = "Redis per hit, ", "Redis in batches, "
ONE, MANY = "one client", "a new client every hit"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    lines = [machine()]
    lines.append(
        f"limit {Config.ratelimit_pages!r}; {args.threads} threads for {args.seconds:g} s each; "
        "CPU of this process per hit"
    )
    fresh = itertools.count()

    def one() -> str:
        return "one-client"

    def many() -> str:
        return f"client-{next(fresh)}"

    with redis_server() as url:
        cases: list[tuple[str, Callable[[], Storage], Callable[[], str]]] = [
            ("memory, one client", AlignedMemoryStorage, one),
            ("memory, a new client every hit", AlignedMemoryStorage, many),
            ("Redis per hit, one client", lambda: AlignedRedisStorage(url), one),
            ("Redis per hit, a new client every hit", lambda: AlignedRedisStorage(url), many),
            (
                "Redis in batches, one client",
                lambda: batches(url),
                one,
            ),
            (
                "Redis in batches, a new client every hit",
                lambda: batches(url),
                many,
            ),
        ]
        figures = {}
        for name, make, clients in cases:
            CountingBatches.trips = 0
            storage = make()
            micros, count = cpu_per_hit(storage, clients, args.seconds, args.threads)
            figures[name] = micros
            trips = ""
            if isinstance(storage, CountingBatches):
                trips = f"; {storage.trips} round trips, {storage.held()} totals kept"
            line = f"{name:42s} {micros:7.1f} µs per hit ({count} hits{trips})"
            note(line)
            lines.append(line)
    many_ratio = figures[f"{BATCHES}{MANY}"] / figures[f"{PER_HIT}{MANY}"]
    one_ratio = figures[f"{BATCHES}{ONE}"] / figures[f"{PER_HIT}{ONE}"]
    lines.append(
        f"CPU per hit, batches ÷ a round trip per hit: many clients {many_ratio:.2f}, "
        f"one client {one_ratio:.2f}"
    )
    print("\n".join(lines))
    if not args.no_record:
        record("page_limits.py", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
