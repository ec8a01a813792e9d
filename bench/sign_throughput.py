"""Signing throughput through gunicorn on PostgreSQL, as a ratio to the Argon2 ceiling (issue 9).

Serves the demo petition (phone numbers, default Argon2 parameters t=2 m=19 MiB p=1) with
deploy/gunicorn.conf.py (one gthread worker per core, 16 threads) on a private schema of a
PostgreSQL database, with the in-process sealer on, and signs it from many keep-alive client
threads with distinct phone numbers. Target: accepted signatures per second >= 0.85 x ceiling.

The ceiling, measured in the same run right before and right after each round while the
server idles (the round uses their mean: the speed of a shared machine drifts): one
process per core, all started together, each computing ``crypto.tokens.dedup_token`` with
``DEFAULT_ARGON2`` (distinct identifiers) in a loop for a few seconds:
``ceiling = sum over processes of hashes / seconds = cores / (time of one hash, all cores busy)``.
The time of one hash on an otherwise idle machine is printed too (it is usually shorter: no
contention for memory bandwidth), with ``cores / that`` as the optimistic ceiling.

The clients run in this process on the same cores as the server, so their CPU time is
measured and printed; the ratio is reported as it is (target) and, for information, against
the ceiling scaled by the share of CPU the clients left to the server.

On a machine shared with other work, the two wall-clock rates each get whatever CPU the
others leave, so the ratio of rates swings from round to round. The CPU ratio does not: CPU
seconds of one bare hash (the ceiling's processes) / CPU seconds of one accepted signature
(gunicorn master and workers, and every PostgreSQL process, over the round). On an idle
machine the rate ratio is about the CPU ratio times the share of the cores the server keeps
busy; both are printed.

    .venv/bin/python bench/sign_throughput.py --db postgresql://postgres@127.0.0.1:5432/DB
        [--rounds 3] [--seconds 20] [--warmup 5] [--clients 16] [--no-record]

The database is not changed outside a schema created for the run and dropped after it.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import resource
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    UNLIMITED,
    bench_env,
    cores,
    form_tokens,
    gunicorn,
    load_average,
    machine,
    median,
    note,
    postgres_cpu,
    prepare_demo,
    private_schema,
    record,
    server_cpu,
    workers_rss,
)

TARGET = 0.85
TOKEN = re.compile(rb'name="form_token" value="([^"]+)"')
RECEIPT = re.compile(rb'<p class="receipt">')


def _hash_loop(args: tuple[int, float, float]) -> tuple[int, float, float]:
    """In a pool process: dedup tokens with the default parameters for ``seconds``."""
    from samleng.crypto.tokens import DEFAULT_ARGON2, dedup_token

    seed, start_at, seconds = args
    key, salt = os.urandom(32), os.urandom(16)
    time.sleep(max(0.0, start_at - time.time()))  # all processes start together
    start, cpu = time.time(), time.process_time()
    n = 0
    while time.time() < start_at + seconds:
        dedup_token(key, f"phone:+8551{seed}{n:07d}", salt, DEFAULT_ARGON2)
        n += 1
    return n, time.time() - start, time.process_time() - cpu


def argon2_ceiling(
    pool: ProcessPoolExecutor, processes: int, seconds: float
) -> tuple[float, float]:
    """Hashes per second of ``processes`` processes hashing together (see the module doc),
    and the CPU seconds one hash took."""
    start_at = time.time() + 0.5  # so that no process hashes alone while the others start
    results = list(pool.map(_hash_loop, [(i, start_at, seconds) for i in range(processes)]))
    rate = sum(n / elapsed for n, elapsed, _ in results)
    return rate, sum(cpu for *_, cpu in results) / sum(n for n, *_ in results)


@dataclass
class Tally:
    """What the client threads saw: (finish time, status, seconds) per request."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    results: list[tuple[float, int, float]] = field(default_factory=list)
    counter: int = 0

    def next_number(self) -> str:
        """A distinct, valid Cambodian mobile number for every request of the run."""
        with self.lock:
            n = self.counter
            self.counter += 1
        prefix = ("012", "017", "011", "015")[n // 1_000_000]
        n %= 1_000_000
        return f"{prefix} {n // 1000:03d} {n % 1000:03d}"


def client(
    port: int,
    tokens: Callable[[], str],
    tally: Tally,
    stop: threading.Event,
    path: str = "/en/p/demo/sign",
    period: float = 0.0,
) -> None:
    """Sign ``path`` over one keep-alive connection until ``stop`` is set: as fast as the
    answers come, or one request every ``period`` seconds."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    due = time.perf_counter()
    while not stop.is_set():
        body = urllib.parse.urlencode(
            {"form_token": tokens(), "identifier": tally.next_number(), "consent": "yes"}
        )
        started = time.perf_counter()
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            page = response.read()
            status = response.status
            if status == 200 and not RECEIPT.search(page):
                status = -200  # a 200 without a receipt is not a signature
        except (OSError, http.client.HTTPException):
            status = -1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        finished = time.perf_counter()
        with tally.lock:
            tally.results.append((finished, status, finished - started))
        if period:
            due += period
            stop.wait(max(0.0, due - time.perf_counter()))
    conn.close()


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / ticks, sum(fields[:8]) / ticks


def self_cpu() -> float:
    """CPU seconds of this process (the client threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="PostgreSQL URL (a private schema is used)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20, help="measured time per round")
    parser.add_argument("--warmup", type=float, default=5, help="unmeasured time per round")
    parser.add_argument("--ceiling-seconds", type=float, default=6)
    parser.add_argument("--clients", type=int, default=16, help="concurrent keep-alive clients")
    parser.add_argument("--threads", type=int, help="gunicorn threads (default: the conf's)")
    parser.add_argument(
        "--bound", type=int, default=1, help="Argon2 slots per worker (deploy/samleng.env: 1)"
    )
    parser.add_argument(
        "--wait", type=float, default=0.5, help="seconds a signature may wait for a slot"
    )
    parser.add_argument("--seal-interval", default="10", help="in-process sealer, seconds")
    parser.add_argument("--no-record", action="store_true", help="do not write to README")
    args = parser.parse_args(argv)

    n_cores = cores()
    threads = args.threads or 16
    bound = args.bound
    header = machine()
    note(header)
    work = Path(tempfile.mkdtemp(prefix="samleng-sign-"))
    rows: list[dict[str, float]] = []
    errors = ""
    with (
        private_schema(args.db) as url,
        ProcessPoolExecutor(max_workers=n_cores) as pool,
    ):
        env = bench_env(
            work / "instance",
            DATABASE_URL=url,
            ARGON2_CONCURRENCY=str(bound),
            ARGON2_WAIT=str(args.wait),
            **UNLIMITED,
            SEAL_INTERVAL=args.seal_interval,
        )
        prepare_demo(env)
        alone, _ = argon2_ceiling(pool, 1, args.ceiling_seconds)  # also warms the pool up
        with gunicorn("samleng.service.wsgi:app", env, threads=args.threads) as server:
            port = int(server.base.rsplit(":", 1)[1])
            conn = http.client.HTTPConnection("127.0.0.1", port)
            conn.request("GET", "/en/p/demo")
            match = TOKEN.search(conn.getresponse().read())
            conn.close()
            assert match, "the petition page has no form token"
            tokens = form_tokens(work / "instance")
            tally = Tally()
            time.sleep(2)  # let PostgreSQL settle after the demo's setup
            before = argon2_ceiling(pool, n_cores, args.ceiling_seconds)
            for round_ in range(1, args.rounds + 1):
                stop = threading.Event()
                pool_threads = [
                    threading.Thread(target=client, args=(port, tokens, tally, stop))
                    for _ in range(args.clients)
                ]
                for t in pool_threads:
                    t.start()
                time.sleep(args.warmup)
                t0, c0, m0 = time.perf_counter(), self_cpu(), machine_cpu()
                s0, d0 = server_cpu(server), postgres_cpu(url)
                time.sleep(args.seconds)
                t1, c1, m1 = time.perf_counter(), self_cpu(), machine_cpu()
                s1, d1 = server_cpu(server), postgres_cpu(url)
                rss = workers_rss(server)
                stop.set()
                for t in pool_threads:
                    t.join()
                time.sleep(2)  # let the sealer's last round and PostgreSQL settle
                # The ceiling right before and right after the round (the next round's "before"):
                # on a shared machine whose speed drifts, their mean is what the round had.
                after = argon2_ceiling(pool, n_cores, args.ceiling_seconds)
                ceiling = (before[0] + after[0]) / 2
                hash_cpu = (before[1] + after[1]) / 2
                spread = abs(before[0] - after[0]) / ceiling
                before = after
                window = [r for r in tally.results if t0 <= r[0] < t1]
                ok = [r for r in window if r[1] == 200]
                wall = t1 - t0
                client_cores = (c1 - c0) / wall
                row = {
                    "ceiling": ceiling,
                    "spread": spread,
                    "rate": len(ok) / wall,
                    "ratio": len(ok) / wall / ceiling,
                    "adjusted": len(ok) / wall / (ceiling * (n_cores - client_cores) / n_cores),
                    "client_cores": client_cores,
                    "server_cores": (s1 - s0) / wall,
                    "db_cores": (d1 - d0) / wall,
                    # CPU seconds of a bare hash / CPU seconds (gunicorn + PostgreSQL) of a
                    # signature: independent of how much CPU other users of the machine took.
                    "cpu_ratio": hash_cpu / ((s1 - s0 + (d1 - d0)) / max(1, len(ok))),
                    "machine_busy": (m1[0] - m0[0]) / (m1[1] - m0[1]),
                    "latency_ms": median([r[2] for r in ok]) * 1000 if ok else float("nan"),
                    "other": len(window) - len(ok),
                    "rss": max(rss),
                }
                rows.append(row)
                statuses = sorted({r[1] for r in window})
                note(
                    f"round {round_}: ceiling {ceiling:.1f}/s (before/after differ by "
                    f"{spread:.0%}), signed {row['rate']:.1f}/s = "
                    f"{row['ratio']:.3f} (adjusted {row['adjusted']:.3f}); client "
                    f"{client_cores:.2f} cores, server {row['server_cores']:.2f} + postgres "
                    f"{row['db_cores']:.2f} cores, CPU ratio {row['cpu_ratio']:.3f}, "
                    f"machine {row['machine_busy']:.0%} busy; statuses {statuses}; "
                    f"load {load_average()}"
                )
            errors = server.errors()
    shutil.rmtree(work, ignore_errors=True)

    def med(key: str) -> float:
        return median([r[key] for r in rows])

    ratio = med("ratio")
    lines = [
        f"machine: {header}",
        f"gunicorn: deploy/gunicorn.conf.py, {n_cores} gthread workers x {threads} threads; "
        f"PostgreSQL; Argon2 t=2 m=19456 KiB p=1; {bound} slot(s)/worker, wait up to "
        f"{args.wait:g} s; sealer every "
        f"{args.seal_interval} s",
        f"clients: {args.clients} keep-alive threads in the bench process, distinct numbers; "
        f"{args.rounds} rounds of {args.seconds:.0f} s after {args.warmup:.0f} s warm-up",
        "ceiling: the mean of one measured right before and one right after each round "
        "(their difference in the spread column)",
        "round  ceiling/s  spread  signed/s  ratio  adjusted  cpu-ratio  client-cores  "
        "server-cores  postgres-cores  busy  median-ms  non-200",
        *(
            f"{i:5d}  {r['ceiling']:9.1f}  {r['spread']:6.0%}  {r['rate']:8.1f}  "
            f"{r['ratio']:5.3f}  {r['adjusted']:8.3f}  {r['cpu_ratio']:9.3f}  "
            f"{r['client_cores']:12.2f}  {r['server_cores']:12.2f}  {r['db_cores']:14.2f}  "
            f"{r['machine_busy']:4.0%}  {r['latency_ms']:9.1f}  {int(r['other']):7d}"
            for i, r in enumerate(rows, 1)
        ),
        f"median: signed {med('rate'):.1f}/s, ceiling {med('ceiling'):.1f}/s "
        f"(= {n_cores} / {n_cores / med('ceiling') * 1000:.1f} ms per hash, all cores busy; "
        f"one process alone: {1000 / alone:.1f} ms per hash, {n_cores * alone:.1f}/s)",
        f"ratio {ratio:.3f} (target >= {TARGET}: {'MET' if ratio >= TARGET else 'MISSED'}); "
        f"discounting the clients' CPU: {med('adjusted'):.3f}; CPU of a bare hash / CPU of a "
        f"signature (gunicorn + PostgreSQL): {med('cpu_ratio'):.3f}",
        f"worker RSS after the rounds: {med('rss'):.0f} MiB (max of the workers)",
    ]
    if "Traceback" in errors:
        lines.append("the server logged a traceback: " + errors[-1500:])
    print("\n".join(lines))
    if not args.no_record:
        record("sign_throughput.py", lines)
    return 0 if "Traceback" not in errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
