"""Overload drill: more concurrent signers than the Argon2 bound, through gunicorn.

Starts the demo instance under gunicorn on loopback with the default Argon2 parameters and a
small per-process Argon2 bound, fires a bounded number of concurrent sign requests, and prints
how the answers split (200 / 503 / other) and how fast the 503s arrive compared with the
accepted signatures. Loopback only; bounded in requests and time; stops by itself.

    .venv/bin/python bench/load_sign.py [--signers 48] [--requests 400] [--bound 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
TOKEN = re.compile(rb'name="form_token" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signers", type=int, default=48, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=400, help="sign requests in all")
    parser.add_argument("--bound", type=int, default=2, help="Argon2 slots per worker")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--seconds", type=float, default=120, help="hard stop")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="samleng-load-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMLENG_")}
    env.update(
        SAMLENG_INSTANCE=str(work / "instance"),
        SAMLENG_ARGON2_CONCURRENCY=str(args.bound),
        SAMLENG_RATELIMIT_SIGN="1000000 per minute",
        SAMLENG_RATELIMIT_PAGES="1000000 per minute",
        SAMLENG_RATELIMIT_PETITION="1000000 per minute",
        SAMLENG_FORM_MIN_SECONDS="0",
        SAMLENG_SEAL_INTERVAL="0",
        SAMLENG_DEMO="true",
    )
    subprocess.run(
        [str(VENV_BIN / "samleng"), "demo", "--no-serve"], env=env, check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    threads_per_worker = 4
    server = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers",
         str(args.workers), "--worker-class", "gthread", "--threads", str(threads_per_worker),
         "--log-level", "warning", "service.wsgi:app"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        page = urllib.request.urlopen(base + "/en/p/demo").read()
        match = TOKEN.search(page)
        assert match, "no form token"
        token = match.group(1).decode()

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
                    {"form_token": token, "identifier": f"012 {n // 1000:03d} {n % 1000:03d}",
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
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=30)
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

    print(f"machine: {os.cpu_count()} cores; gunicorn {args.workers} workers x "
          f"{threads_per_worker} threads; Argon2 bound {args.bound} per worker; "
          f"{args.signers} concurrent signers; {len(results)} requests in {wall:.1f} s")  # fmt: skip  # noqa: E501
    for status in sorted({s for s, _ in results}):
        print(summary(status))
    accepted = sum(1 for s, _ in results if s == 200)
    print(f"accepted signatures per second: {accepted / wall:.1f}")
    print(
        f"server errors (5xx other than 503): {sum(1 for s, _ in results if s >= 500 and s != 503)}"
    )
    if b"Traceback" in errors:
        print("the server logged a traceback:\n" + errors.decode(errors="replace")[-2000:])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
