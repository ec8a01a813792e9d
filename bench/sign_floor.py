"""What a signature costs besides its Argon2 hash, and the CPU ratio that leaves (issue 21).

The signing benches divide the CPU of a bare hash by the CPU of a signature. The rest of a
signature's CPU is measured here on its own, part by part, each served by
deploy/gunicorn.conf.py on a private PostgreSQL schema and signed at the same pace (``--rate``,
about what sign_throughput.py reaches) from keep-alive clients:

1. ``hello``: the smallest Flask app answering the same POST (bench/hello_app.py): what any
   request through gunicorn costs at this rate, whatever the app does;
2. ``least``: the least a signature can do on this stack (bench/least_sign_app.py): the form,
   the token's HMAC, the gate's thread, two HPKE seals, one row written through SQLAlchemy
   and psycopg, a page; what no implementation with these libraries can leave out;
3. ``unhashed``: Samleng with dedup_token's Argon2 replaced by BLAKE2b (bench/unhashed_app.py),
   the in-process sealer off: the request, the form, sealing the details, the database write,
   the hand-off to the gate's thread, the receipt page;
4. ``unhashed + sealer``: the same with the sealer on (every ``--seal-interval`` s).

Each part runs beside one process per core hashing Argon2 without pause at the lowest
priority, as a signature runs beside the other signatures' hashes: a request that wakes an
idle core costs more than one on a busy core, and this way the part neither pays for that
nor escapes Argon2's memory traffic. Measured: CPU of gunicorn (master and workers) and of the
PostgreSQL backends of the run's database, per request, in rounds of the four parts. Then the
CPU of one bare hash, as sign_throughput.py measures it (all cores hashing), and the CPU ratio
each floor allows: hash / (hash + the floor).

    .venv/bin/python bench/sign_floor.py --db postgresql://postgres@127.0.0.1:5432/DB
        [--rate 80] [--rounds 3] [--seconds 20] [--seal-interval 5] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common import (
    ROOT,
    UNLIMITED,
    Server,
    bench_env,
    cores,
    form_tokens,
    gunicorn,
    machine,
    median,
    note,
    postgres_cpu,
    prepare_demo,
    private_schema,
    record,
    server_cpu,
)
from sign_throughput import Tally, argon2_ceiling, client

TARGET = 0.92  # signing with two witnesses, issue 21
BENCH = ["--pythonpath", str(ROOT / "bench")]
HELLO, LEAST = "hello (any POST)", "least a signature does"
UNHASHED, SEALER = "unhashed, sealer off", "unhashed + sealer"
PARTS = (HELLO, LEAST, UNHASHED, SEALER)


def total(row: dict[str, float]) -> float:
    """CPU of one request, server and database, ms."""
    return row["server_ms"] + row["db_ms"]


def _hash_without_pause(stop_at: float) -> int:
    """In a pool process, at the lowest priority: Argon2 hashes until ``stop_at``."""
    from samleng.crypto.tokens import DEFAULT_ARGON2, dedup_token

    os.nice(19)
    n = 0
    while time.time() < stop_at:
        dedup_token(b"k" * 32, f"phone:+85512{n:06d}", b"s" * 16, DEFAULT_ARGON2)
        n += 1
    return n


def measure(
    server: Server,
    url: str,
    path: str,
    tokens: Callable[[], str],
    args: argparse.Namespace,
    hogs: ProcessPoolExecutor,
) -> dict[str, float]:
    """Sign ``path`` at ``args.rate`` beside ``hogs`` hashing; CPU per accepted request of the
    server and PostgreSQL."""
    port = int(server.base.rsplit(":", 1)[1])
    tally, stop = Tally(), threading.Event()
    clients = 8
    threads = [
        threading.Thread(target=client, args=(port, tokens, tally, stop, path, clients / args.rate))
        for _ in range(clients)
    ]
    until = time.time() + args.warmup + args.seconds + 1
    busy = [hogs.submit(_hash_without_pause, until) for _ in range(cores())]
    for t in threads:
        t.start()
    time.sleep(args.warmup)
    t0, s0, d0 = time.perf_counter(), server_cpu(server), postgres_cpu(url)
    time.sleep(args.seconds)
    t1, s1, d1 = time.perf_counter(), server_cpu(server), postgres_cpu(url)
    stop.set()
    for t in threads:
        t.join()
    for b in busy:
        b.result()
    window = [r for r in tally.results if t0 <= r[0] < t1]
    ok = sum(1 for r in window if r[1] == 200)
    if ok < len(window) or ok == 0:
        raise RuntimeError(f"{len(window) - ok} of {len(window)} requests to {path} failed")
    return {
        "rate": ok / (t1 - t0),
        "server_ms": 1000 * (s1 - s0) / ok,
        "db_ms": 1000 * (d1 - d0) / ok,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="PostgreSQL URL (a private schema is used)")
    parser.add_argument("--rate", type=float, default=80, help="requests per second")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20, help="measured time per part")
    parser.add_argument("--warmup", type=float, default=4)
    parser.add_argument("--ceiling-seconds", type=float, default=6)
    parser.add_argument("--seal-interval", default="5", help="in-process sealer, seconds")
    parser.add_argument("--no-record", action="store_true", help="do not write to README")
    args = parser.parse_args(argv)

    header = machine()
    note(header)
    work = Path(tempfile.mkdtemp(prefix="samleng-floor-"))
    rows: list[tuple[str, dict[str, float]]] = []
    with (
        private_schema(args.db) as url,
        ProcessPoolExecutor(max_workers=cores()) as pool,
        ProcessPoolExecutor(max_workers=cores()) as hogs,
    ):
        settings = dict(
            DATABASE_URL=url,
            ARGON2_CONCURRENCY="1",
            ARGON2_WAIT="0.5",
            **UNLIMITED,
        )
        env = bench_env(work / "instance", SEAL_INTERVAL="0", **settings)
        prepare_demo(env)
        tokens = form_tokens(work / "instance")
        before = argon2_ceiling(pool, cores(), args.ceiling_seconds)
        sign = "/en/p/demo/sign"
        sealing = bench_env(work / "instance", SEAL_INTERVAL=args.seal_interval, **settings)
        for number in range(1, args.rounds + 1):
            with gunicorn("hello_app:app", env, extra=BENCH) as server:
                rows.append((HELLO, measure(server, url, "/sign", tokens, args, hogs)))
            with gunicorn("least_sign_app:app", env, extra=BENCH) as server:
                rows.append((LEAST, measure(server, url, "/sign", tokens, args, hogs)))
            with gunicorn("unhashed_app:app", env, extra=BENCH) as server:
                rows.append((UNHASHED, measure(server, url, sign, tokens, args, hogs)))
            with gunicorn("unhashed_app:app", sealing, extra=BENCH) as server:
                rows.append((SEALER, measure(server, url, sign, tokens, args, hogs)))
            note(
                f"round {number}: "
                + ", ".join(f"{name} {total(r):.2f} ms" for name, r in rows[-len(PARTS) :])
            )
        after = argon2_ceiling(pool, cores(), args.ceiling_seconds)
    shutil.rmtree(work, ignore_errors=True)
    hash_ms = 1000 * (before[1] + after[1]) / 2

    def allows(floor_ms: float) -> float:
        return hash_ms / (hash_ms + floor_ms)

    lines = [
        f"machine: {header}",
        f"gunicorn: deploy/gunicorn.conf.py, {cores()} gthread workers; PostgreSQL; 8 keep-alive "
        f"clients paced at {args.rate:g} requests/s in all, beside {cores()} processes hashing "
        f"Argon2 at nice 19; {args.rounds} rounds, each part "
        f"{args.seconds:g} s after {args.warmup:g} s warm-up; sealer every "
        f"{args.seal_interval} s where on",
        f"bare Argon2 hash (t=2 m=19456 KiB p=1, all cores hashing): {hash_ms:.1f} ms of CPU "
        f"(before {1000 * before[1]:.1f}, after {1000 * after[1]:.1f})",
        "CPU per request, ms (median of the rounds; the rounds' totals in brackets)",
        "part                         req/s  server  postgres  total                 "
        "cpu-ratio-it-allows",
    ]
    for name in PARTS:
        mine = [r for n, r in rows if n == name]
        floor = median([total(r) for r in mine])
        rounds = " ".join(f"{total(r):.2f}" for r in mine)
        lines.append(
            f"{name:27s}  {median([r['rate'] for r in mine]):5.1f}  "
            f"{median([r['server_ms'] for r in mine]):6.2f}  "
            f"{median([r['db_ms'] for r in mine]):8.2f}  {floor:5.2f} [{rounds}]  "
            f"{allows(floor):.3f}"
        )
    lines.append(
        f"a CPU ratio of {TARGET} allows {hash_ms * (1 / TARGET - 1):.2f} ms of CPU per "
        "signature besides the hash"
    )
    print("\n".join(lines))
    if not args.no_record:
        record("sign_floor.py", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
