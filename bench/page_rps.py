"""Petition page requests per second through gunicorn, as a ratio to a minimal Flask page (issue 9).

Two servers with the same deploy/gunicorn.conf.py (one gthread worker per core, 16 threads):
Samleng serving the demo petition from a private schema of a PostgreSQL database, and
bench/hello_app.py answering "hello". ``wrk`` (C, keep-alive; ``apt-get install wrk``) loads
each in turn, interleaved round by round so both see the same background load. Targets:
petition page rate >= 0.5 x hello rate; the server's CPU per request, hello's ÷ the petition
page's, >= 0.8 (issue 21); worker resident memory < 120 MB (VmRSS of each worker from /proc
after the warm-up and after the rounds).

Also printed: the servers' CPU time per request (workers + master, from /proc) and wrk's
own CPU time, since wrk shares the cores with the server.

    .venv/bin/python bench/page_rps.py --db postgresql://postgres@127.0.0.1:5432/DB
        [--rounds 5] [--seconds 10] [--connections 16] [--path /en/p/demo]
        [--limiter memory|redis] [--no-record]
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common import (
    Server,
    bench_env,
    cores,
    database,
    free_port,
    gunicorn,
    load_average,
    machine,
    median,
    note,
    postgres_cpu,
    prepare_demo,
    record,
    server_cpu,
    workers_rss,
)

RATIO_TARGET = 0.5
CPU_RATIO_TARGET = 0.8  # issue 21: CPU of a hello request / CPU of a petition page request
RSS_TARGET_MB = 120
WRK = shutil.which("wrk") or "/usr/bin/wrk"
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


@contextmanager
def redis_server() -> Iterator[str]:
    """A private, memory-only redis-server on a free port; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def children_cpu() -> float:
    """CPU seconds of this process's finished children (wrk)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load(
    server: Server, path: str, seconds: float, connections: int, db: str | None = None
) -> dict[str, float]:
    """Run wrk against ``server`` and return its rate and the CPU spent per request."""
    s0, w0, d0 = server_cpu(server), children_cpu(), postgres_cpu(db)
    done = subprocess.run(
        [WRK, "-t", "2", "-c", str(connections), "-d", f"{seconds:.0f}s", "--latency",
         server.base + path],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    s1, w1, d1 = server_cpu(server), children_cpu(), postgres_cpu(db)
    out = done.stdout
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"([0-9]+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+([0-9]+)", out)
    errors = re.search(r"Socket errors:.*", out)
    p50 = re.search(r"\s50%\s+(\S+)", out)
    return {
        "rate": rate,
        "requests": total,
        "non2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": 0 if errors is None else 1,
        "server_ms": (s1 - s0) / total * 1000,
        "wrk_ms": (w1 - w0) / total * 1000,
        "db_ms": (d1 - d0) / total * 1000,
        "p50": p50.group(1) if p50 else "?",  # type: ignore[dict-item]
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db", required=True, help="PostgreSQL URL (a private schema is used), or 'sqlite'"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--path", default="/en/p/demo")
    parser.add_argument("--limiter", choices=["memory", "redis"], default="memory")
    parser.add_argument(
        "--app", default="samleng.service.wsgi:app", help="WSGI app to compare (tests)"
    )
    parser.add_argument("--no-record", action="store_true", help="do not write to README")
    args = parser.parse_args(argv)

    header = machine()
    note(header)
    work = Path(tempfile.mkdtemp(prefix="samleng-pages-"))
    rows: list[tuple[dict[str, float], dict[str, float]]] = []
    with database(args.db) as url, _limiter(args.limiter) as storage:
        settings = {"DATABASE_URL": url} if url else {}
        env = bench_env(
            work / "instance",
            RATELIMIT_STORAGE_URI=storage,
            RATELIMIT_PAGES="100000000 per minute",
            **settings,
        )
        prepare_demo(env)
        with (
            gunicorn(args.app, env, extra=["--pythonpath", "bench"]) as samleng,
            gunicorn("hello_app:app", env, extra=["--pythonpath", "bench"]) as hello,
        ):
            with urllib.request.urlopen(samleng.base + args.path) as page:
                size = len(page.read())
            note(f"petition page {args.path}: {size} bytes; warming up")
            load(samleng, args.path, 3, args.connections, url)
            load(hello, "/", 3, args.connections)
            rss_warm = workers_rss(samleng)
            hello_rss = workers_rss(hello)
            for round_ in range(1, args.rounds + 1):
                # Alternate which goes first, so that neither always follows the other.
                if round_ % 2:
                    h = load(hello, "/", args.seconds, args.connections)
                    p = load(samleng, args.path, args.seconds, args.connections, url)
                else:
                    p = load(samleng, args.path, args.seconds, args.connections, url)
                    h = load(hello, "/", args.seconds, args.connections)
                rows.append((p, h))
                note(
                    f"round {round_}: petition {p['rate']:.0f}/s, hello {h['rate']:.0f}/s, "
                    f"ratio {p['rate'] / h['rate']:.3f}; non-2xx {p['non2xx']}/{h['non2xx']}; "
                    f"load {load_average()}"
                )
            rss_end = workers_rss(samleng)
            errors = samleng.errors()
    shutil.rmtree(work, ignore_errors=True)

    ratios = [p["rate"] / h["rate"] for p, h in rows]
    ratio = median(ratios)
    cpu_ratio = median([h["server_ms"] / p["server_ms"] for p, h in rows])
    rss = max(rss_end + rss_warm)
    lines = [
        f"machine: {header}",
        f"servers: deploy/gunicorn.conf.py, {cores()} gthread workers x 16 threads each; "
        f"Samleng on {'SQLite' if args.db == 'sqlite' else 'PostgreSQL'}, limiter storage "
        f"{args.limiter}; page {args.path} ({size} bytes)",
        f"load: wrk -t 2 -c {args.connections}, {args.rounds} interleaved rounds of "
        f"{args.seconds:.0f} s after 3 s warm-up each",
        "CPU ms per request: gunicorn (master + workers), postgres (all its processes), wrk",
        "round  petition/s  hello/s  ratio  gunicorn-ms (petition, hello)  postgres-ms  "
        "wrk-ms (petition, hello)  p50 (petition, hello)",
        *(
            f"{i:5d}  {p['rate']:10.0f}  {h['rate']:7.0f}  {p['rate'] / h['rate']:5.3f}  "
            f"{p['server_ms']:11.2f}, {h['server_ms']:.2f}{'':12}  {p['db_ms']:11.2f}  "
            f"{p['wrk_ms']:12.3f}, {h['wrk_ms']:.3f}{'':5}  {p['p50']}, {h['p50']}"
            for i, (p, h) in enumerate(rows, 1)
        ),
        f"median: petition {median([p['rate'] for p, _ in rows]):.0f}/s, hello "
        f"{median([h['rate'] for _, h in rows]):.0f}/s; ratio {ratio:.3f} (target >= "
        f"{RATIO_TARGET}: {'MET' if ratio >= RATIO_TARGET else 'MISSED'}); CPU per request "
        f"{median([p['server_ms'] for p, _ in rows]):.2f} ms vs "
        f"{median([h['server_ms'] for _, h in rows]):.2f} ms; CPU ratio (hello ÷ petition, "
        f"median of the rounds) {cpu_ratio:.3f} (target >= {CPU_RATIO_TARGET}: "
        f"{'MET' if cpu_ratio >= CPU_RATIO_TARGET else 'MISSED'})",
        f"worker VmRSS: after warm-up {', '.join(f'{r:.0f}' for r in rss_warm)} MiB; after the "
        f"rounds {', '.join(f'{r:.0f}' for r in rss_end)} MiB; max {rss:.0f} MiB = "
        f"{rss * 1.048576:.0f} MB (target < {RSS_TARGET_MB} MB: "
        f"{'MET' if rss * 1.048576 < RSS_TARGET_MB else 'MISSED'}); hello worker "
        f"{max(hello_rss):.0f} MiB",
        f"errors: non-2xx {sum(p['non2xx'] for p, _ in rows)} (petition), "
        f"{sum(h['non2xx'] for _, h in rows)} (hello)",
    ]
    if "Traceback" in errors:
        lines.append("the server logged a traceback: " + errors[-1500:])
    print("\n".join(lines))
    if not args.no_record:
        record(f"page_rps.py ({args.limiter} limiter)", lines)
    return 0


@contextmanager
def _limiter(kind: str) -> Iterator[str]:
    """The limiter storage URI: memory, or a private redis-server for the run."""
    if kind == "memory":
        yield "memory://"
    else:
        with redis_server() as url:
            yield url


if __name__ == "__main__":
    raise SystemExit(main())
