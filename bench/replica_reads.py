"""Public reads with a PostgreSQL streaming replica against the primary alone, and the replica's
lag while signatures come in (issue 21).

Two private clusters on loopback: a primary and a hot standby made with ``pg_basebackup -R``
(tests/components.py, as the tests make them). Two gunicorns on the same instance and primary,
one with ``SAMLENG_DATABASE_REPLICA_URL`` and one without; the worker's page cache is off
(``SAMLENG_PAGE_CACHE_SECONDS=0``) so that every request reads the database. ``wrk`` loads
the petition page and count.json on each server in turn, interleaved round by round; the
figure is the rate with the replica over the rate without. Then signers post signatures for
``--sign-seconds`` through the replica server (sealing every second) while the primary's
``pg_stat_replication`` is sampled: replay lag and the bytes of WAL not yet replayed.

On one machine the replica shares the primary's cores, so it cannot add capacity here: the
ratio shows what routing reads to it costs, not what a second machine would gain.

    .venv/bin/python bench/replica_reads.py [--rounds 3] [--seconds 5] [--sign-seconds 15]
        [--no-record]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import psycopg
from common import (
    UNLIMITED,
    bench_env,
    form_tokens,
    gunicorn,
    load_average,
    machine,
    median,
    note,
    prepare_demo,
    record,
)

from tests.components import PostgresServer, PrivatePostgres, PrivateReplica

WRK = shutil.which("wrk") or "/usr/bin/wrk"
PATHS = {"petition page": "/en/p/demo", "count.json": "/p/demo/count.json"}


def wrk(base: str, path: str, seconds: float, connections: int = 16) -> float:
    """wrk's rate; fails on any non-2xx answer."""
    done = subprocess.run(
        [WRK, "-t", "2", "-c", str(connections), "-d", f"{seconds:.0f}s", base + path],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    bad = re.search(r"Non-2xx or 3xx responses:\s+([0-9]+)", done.stdout)
    if bad:
        raise RuntimeError(f"{path}: {bad.group(1)} non-2xx answers\n{done.stdout}")
    return float(re.search(r"Requests/sec:\s+([0-9.]+)", done.stdout).group(1))  # type: ignore[union-attr]


def signer(
    base: str,
    tokens: Callable[[], str],
    numbers: itertools.count[int],
    stop: threading.Event,
    answers: list[int],
) -> None:
    """Sign the demo petition over one keep-alive connection until ``stop``; each answer's
    status goes into ``answers``."""
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    while not stop.is_set():
        body = urllib.parse.urlencode(
            {"form_token": tokens(), "identifier": f"012 {next(numbers)}", "consent": "yes"}
        )
        conn.request("POST", "/en/p/demo/sign", body=body, headers=headers)
        answer = conn.getresponse()
        answer.read()
        answers.append(answer.status)
    conn.close()


def _spread(lags: list[float]) -> str:
    """Median, p95 and max of sorted lags in seconds, in milliseconds."""
    if not lags:
        return "none measured"
    p95, top = lags[int(0.95 * (len(lags) - 1))], lags[-1]
    return f"median {1000 * median(lags):.1f} ms, p95 {1000 * p95:.1f} ms, max {1000 * top:.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--sign-seconds", type=float, default=15)
    parser.add_argument("--signers", type=int, default=8)
    parser.add_argument("--no-record", action="store_true", help="do not write to README")
    args = parser.parse_args(argv)
    header = machine()
    note(header)
    work = Path(tempfile.mkdtemp(prefix="samleng-replica-"))
    primary = PrivatePostgres()
    standby: PrivateReplica | None = None
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in PATHS}
    # replay_lag is NULL while the standby has nothing left to replay (after a short while);
    # such samples are counted apart, not as a lag of 0.
    lags: list[float] = []
    idle = 0
    behind: list[int] = []
    answers: list[int] = []
    try:
        primary.init()
        primary.start()
        url = PostgresServer(primary.url()).create_database("samleng")
        standby = PrivateReplica(primary)
        standby.init()
        standby.start()
        settings = dict(
            DATABASE_URL=url,
            **UNLIMITED,
            PAGE_CACHE_SECONDS="0",
            SEAL_INTERVAL="1",
        )
        env = bench_env(work / "instance", **settings)
        prepare_demo(env)
        replica_url = standby.url("samleng")
        with_replica = bench_env(work / "instance", DATABASE_REPLICA_URL=replica_url, **settings)
        standby.caught_up()
        with (
            gunicorn("samleng.service.wsgi:app", with_replica) as fast,
            gunicorn("samleng.service.wsgi:app", env) as plain,
        ):
            note("warming up")
            for path in PATHS.values():
                wrk(fast.base, path, 2)
                wrk(plain.base, path, 2)
            for round_ in range(1, args.rounds + 1):
                for name, path in PATHS.items():
                    order = [fast, plain] if round_ % 2 else [plain, fast]
                    got = {id(server): wrk(server.base, path, args.seconds) for server in order}
                    rates[name].append((got[id(fast)], got[id(plain)]))
                    note(
                        f"round {round_}, {name}: replica {got[id(fast)]:.0f}/s, primary "
                        f"alone {got[id(plain)]:.0f}/s; load {load_average()}"
                    )
            note(f"signing for {args.sign_seconds:.0f} s through the replica server")
            stop, numbers = threading.Event(), itertools.count(100000)
            tokens = form_tokens(work / "instance")
            threads = [
                threading.Thread(target=signer, args=(fast.base, tokens, numbers, stop, answers))
                for _ in range(args.signers)
            ]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + args.sign_seconds
            with psycopg.connect(primary.url(), autocommit=True) as conn:
                while time.monotonic() < deadline:
                    row = conn.execute(
                        "SELECT EXTRACT(EPOCH FROM replay_lag)::float8,"
                        " pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint"
                        " FROM pg_stat_replication"
                    ).fetchone()
                    assert row is not None, "the standby is not streaming"
                    if row[0] is None:
                        idle += 1
                    else:
                        lags.append(float(row[0]))
                    behind.append(int(row[1]))
                    time.sleep(0.1)
            stop.set()
            for thread in threads:
                thread.join()
    finally:
        if standby is not None:
            standby.destroy()
        primary.destroy()
        shutil.rmtree(work, ignore_errors=True)
    lags.sort()
    behind.sort()
    signed = answers.count(200)
    refused = len(answers) - signed
    lines = [
        f"machine: {header}",
        "PostgreSQL 15 primary and a hot standby (pg_basebackup -R) on loopback, the same cores; "
        "two gunicorns (deploy/gunicorn.conf.py), one reading from the standby; page cache off",
        f"reads: wrk -t 2 -c 16, {args.rounds} interleaved rounds of {args.seconds:.0f} s",
        "page            with replica ÷ primary alone (median; rounds as replica/s vs primary/s)",
        *(
            f"{name:<15} {median([a / b for a, b in rates[name]]):.3f} ("
            + ", ".join(f"{a:.0f} vs {b:.0f}" for a, b in rates[name])
            + ")"
            for name in PATHS
        ),
        f"signing: {signed} signatures in {args.sign_seconds:.0f} s "
        f"({signed / args.sign_seconds:.0f}/s, {args.signers} signers, sealing every 1 s); "
        f"answers other than 200: {refused}",
        f"replay lag while signing ({len(behind)} samples every 0.1 s; {idle} with nothing "
        f"left to replay): {_spread(lags)}; WAL not yet replayed: median "
        f"{median(behind):.0f} bytes, max {behind[-1]} bytes",
    ]
    print("\n".join(lines))
    if not args.no_record:
        record("replica_reads.py", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
