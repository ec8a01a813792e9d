"""Overload drill: more concurrent signers than the Argon2 bound, through gunicorn.

Starts the demo instance under gunicorn (deploy/gunicorn.conf.py: one worker per core) on
loopback with the default Argon2 parameters and a small per-process Argon2 bound, fires a
bounded number of concurrent sign requests (a new connection each, like separate clients),
and prints how the answers split (200 / 503 / other) and how fast the 503s arrive compared
with the accepted signatures. Loopback only; bounded in requests and time; stops by itself.

    .venv/bin/python bench/load_sign.py [--signers 48] [--requests 400] [--bound 1]
        [--wait 0.5] [--threads 16] [--db sqlite|URL] [--no-record]
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from common import (
    bench_env,
    cores,
    database,
    form_tokens,
    gunicorn,
    machine,
    prepare_demo,
    record,
)

TOKEN = re.compile(rb'name="form_token" value="([^"]+)"')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signers", type=int, default=48, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=400, help="sign requests in all")
    parser.add_argument("--bound", type=int, default=1, help="Argon2 slots per worker")
    parser.add_argument("--wait", type=float, default=0.5, help="seconds to wait for a slot")
    parser.add_argument("--workers", type=int, default=cores(), help="default: one per core")
    parser.add_argument("--threads", type=int, default=16, help="per worker (the conf's 16)")
    parser.add_argument("--db", default="sqlite", help="'sqlite' or a PostgreSQL URL")
    parser.add_argument("--seconds", type=float, default=120, help="hard stop")
    parser.add_argument("--no-record", action="store_true", help="do not write to README")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="samleng-load-"))
    threads_per_worker = args.threads
    header = machine()
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(database(args.db))
        env = bench_env(
            work / "instance",
            ARGON2_CONCURRENCY=str(args.bound),
            ARGON2_WAIT=str(args.wait),
            RATELIMIT_SIGN="1000000 per minute",
            RATELIMIT_PAGES="1000000 per minute",
            RATELIMIT_PETITION="1000000 per minute",
            FORM_MIN_SECONDS="0",
            SEAL_INTERVAL="0",
            **({"DATABASE_URL": url} if url else {}),
        )
        prepare_demo(env)
        server = stack.enter_context(
            gunicorn(
                "samleng.service.wsgi:app", env, workers=args.workers, threads=threads_per_worker
            )
        )
        base = server.base
        with urllib.request.urlopen(base + "/en/p/demo") as answer:
            page = answer.read()
        match = TOKEN.search(page)
        assert match, "no form token"
        tokens = form_tokens(work / "instance")

        lock = threading.Lock()
        results: list[tuple[int, float]] = []
        counter = iter(range(args.requests))
        stop_at = time.monotonic() + args.seconds

        def signer() -> None:
            while time.monotonic() < stop_at:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                body = urllib.parse.urlencode(
                    {"form_token": tokens(), "identifier": f"012 {n // 1000:03d} {n % 1000:03d}",
                     "consent": "yes"}
                ).encode()  # fmt: skip
                started = time.monotonic()
                try:
                    with urllib.request.urlopen(base + "/en/p/demo/sign", data=body, timeout=60):
                        status = 200
                except urllib.error.HTTPError as exc:
                    status = exc.code
                except OSError:
                    status = -1
                with lock:
                    results.append((status, time.monotonic() - started))

        began = time.monotonic()
        pool = [threading.Thread(target=signer) for _ in range(args.signers)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        wall = time.monotonic() - began
        errors = server.errors()
    shutil.rmtree(work, ignore_errors=True)

    def summary(status: int) -> str:
        times = sorted(t for s, t in results if s == status)
        if not times:
            return f"{status}: 0"
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        return (
            f"{status}: {len(times):5d}  median {statistics.median(times) * 1000:7.1f} ms"
            f"  p95 {p95 * 1000:7.1f} ms"
        )

    accepted = sum(1 for s, _ in results if s == 200)
    server_errors = sum(1 for s, _ in results if s >= 500 and s != 503)
    lines = [
        f"machine: {header}",
        f"gunicorn: deploy/gunicorn.conf.py, {args.workers} workers x {threads_per_worker} "
        f"threads; {'SQLite' if args.db == 'sqlite' else 'PostgreSQL'}; Argon2 default "
        f"(t=2 m=19456 p=1), bound {args.bound} per worker, wait {args.wait:g} s; "
        f"{args.signers} concurrent signers "
        f"(a connection each); {len(results)} requests in {wall:.1f} s",
        *(summary(status) for status in sorted({s for s, _ in results})),
        f"accepted signatures per second: {accepted / wall:.1f}",
        f"server errors (5xx other than 503): {server_errors}",
    ]
    if "Traceback" in errors:
        lines.append("the server logged a traceback:\n" + errors[-2000:])
    print("\n".join(lines))
    if not args.no_record:
        record(f"load_sign.py (threads {threads_per_worker}, bound {args.bound})", lines)
    return 1 if "Traceback" in errors or server_errors else 0


if __name__ == "__main__":
    sys.exit(main())
