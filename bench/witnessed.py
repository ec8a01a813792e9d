"""Signing with two real witnesses on loopback, and how soon a signature is witnessed (issue 17).

One gunicorn (deploy/gunicorn.conf.py) serves two petitions on a private PostgreSQL: ``wit``,
whose policy names litewitness and omniwitness (built from the Go module proxy as the test
suite builds them, tests/interop/reference.py) with a quorum of 2, and ``plain``, with no
witness. The in-process sealer seals every ``--seal-interval`` seconds and its witnessing
thread asks both witnesses to cosign each new checkpoint, as samleng-web does when it seals.

1. Throughput: rounds alternate between signing ``wit`` and ``plain`` (ABBA: wit, plain,
   plain, wit), each against the Argon2 ceiling measured right before and after it, as
   bench/sign_throughput.py does; the two ratios, measured in one run, compare.
2. Time to a witnessed checkpoint: while ``wit`` is signed, a poller reads
   ``/p/wit/checkpoint`` every 50 ms and notes when each size first appears carrying both
   cosignatures; a signature's time is from its acknowledgement (the 200 with the receipt) to
   the first such checkpoint whose size covers its leaf. At the short interval and at the
   deploy's 30 s, so that it shows what dominates: the seal interval.

    .venv/bin/python bench/witnessed.py [--db postgresql://…] [--seconds 15] [--no-record]

Without ``--db`` it starts a private PostgreSQL cluster of its own (as the test suite does).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    ROOT,
    UNLIMITED,
    VENV_BIN,
    bench_env,
    cores,
    form_tokens,
    gunicorn,
    machine,
    median,
    note,
    postgres_cpu,
    private_schema,
    record,
    server_cpu,
)
from sign_throughput import RECEIPT, Tally, argon2_ceiling

sys.path.insert(0, str(ROOT))

from samleng.crypto.cosignature import CosignatureSigner  # noqa: E402
from samleng.crypto.details import generate_details_keypair  # noqa: E402
from samleng.crypto.receipts import parse_receipt, receipt_commitment  # noqa: E402
from tests.components import PrivatePostgres, free_port  # noqa: E402
from tests.interop.reference import (  # noqa: E402
    MIN_GO,
    SSHAgent,
    build_tools,
    modern_go,
    start_litewitness,
    start_omniwitness,
)

LITE = ("witness.example/lite", bytes(range(32)))
OMNI = ("witness.example/omni", bytes(range(100, 132)))
RECEIPT_CODE = __import__("re").compile(rb'<p class="receipt">([A-Z2-7-]+)</p>')
DASH = "\N{EM DASH} ".encode()
TEXTS = {
    "km": {"title": "សាកល្បង", "body": "ញត្តិសាកល្បង។"},
    "en": {"title": "Bench", "body": "A bench petition."},
}


def samleng(env: dict[str, str], *args: str) -> str:
    """Run a ``samleng`` command; its output."""
    done = subprocess.run(
        [str(VENV_BIN / "samleng"), *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"samleng {' '.join(args)}: {done.stdout}{done.stderr}")
    return done.stdout


def set_up(env: dict[str, str], work: Path, lite_port: int, omni_port: int) -> tuple[str, str]:
    """Keys, schema, the petitions ``wit`` (two witnesses, quorum 2) and ``plain``; the
    origin and log key of ``wit``."""
    samleng(env, "keys", "generate")
    samleng(env, "init")
    (work / "texts.json").write_text(json.dumps(TEXTS), encoding="utf-8")
    _private, public = generate_details_keypair()
    (work / "details.pub").write_text(base64.b64encode(public).decode() + "\n")
    for slug in ("wit", "plain"):
        samleng(
            env, "petition", "create", slug, "--texts", str(work / "texts.json"),
            "--goal", "1000000", "--identifier", "phone",
            "--details-key", str(work / "details.pub"),
        )  # fmt: skip
    for (name, seed), port, short in ((LITE, lite_port, "lite"), (OMNI, omni_port, "omni")):
        vkey = CosignatureSigner(name=name, seed=seed).verifier.vkey
        samleng(
            env, "witness", "add", "wit", "--name", short, "--url", f"http://127.0.0.1:{port}",
            "--vkey", vkey,
        )  # fmt: skip
    samleng(env, "witness", "quorum", "wit", "2")
    for slug in ("wit", "plain"):
        samleng(env, "petition", "open", slug)
    listed = samleng(env, "witness", "list", "wit")
    assert "quorum: 2" in listed, listed
    import psycopg

    with psycopg.connect(env["SAMLENG_DATABASE_URL"]) as conn:
        row = conn.execute("SELECT origin, log_vkey FROM petition WHERE slug = 'wit'").fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


@dataclass
class Acks:
    """Receipts acknowledged while signing ``wit``: (acknowledged at, receipt code)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    items: list[tuple[float, str]] = field(default_factory=list)


def signer(
    port: int, slug: str, tokens: object, tally: Tally, acks: Acks | None, stop: threading.Event
) -> None:
    """Sign ``slug`` over one keep-alive connection until ``stop``; note receipts in ``acks``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    while not stop.is_set():
        body = urllib.parse.urlencode(
            {"form_token": tokens(), "identifier": tally.next_number(), "consent": "yes"}  # type: ignore[operator]
        )
        started = time.perf_counter()
        try:
            conn.request("POST", f"/en/p/{slug}/sign", body=body, headers=headers)
            response = conn.getresponse()
            page = response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status, page = -1, b""
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        finished = time.perf_counter()
        found = RECEIPT_CODE.search(page) if status == 200 else None
        if status == 200 and not RECEIPT.search(page):
            status = -200
        with tally.lock:
            tally.results.append((finished, status, finished - started))
        if acks is not None and found is not None:
            with acks.lock:
                acks.items.append((finished, found.group(1).decode()))
    conn.close()


def poll_witnessed(port: int, stop: threading.Event, seen: dict[int, float]) -> None:
    """Note when each size of ``wit``'s checkpoint is first served with both cosignatures."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while not stop.is_set():
        try:
            conn.request("GET", "/p/wit/checkpoint")
            note_bytes = conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        now = time.perf_counter()
        size = int(note_bytes.split(b"\n")[1])
        if note_bytes.count(DASH) >= 3 and size not in seen:  # the log's line and two witnesses'
            seen[size] = now
        stop.wait(0.05)
    conn.close()


def witnessed_times(
    url: str, origin: str, acks: list[tuple[float, str]], seen: dict[int, float]
) -> list[float]:
    """Seconds from each acknowledgement to the first witnessed checkpoint covering its leaf."""
    import psycopg

    with psycopg.connect(url) as conn:
        index = {
            bytes(c): int(i)
            for c, i in conn.execute(
                "SELECT l.commitment, l.index FROM leaf l JOIN petition p ON p.id = l.petition_id"
                " WHERE p.slug = 'wit'"
            )
        }
    sizes = sorted(seen)
    times = []
    for acked, code in acks:
        leaf = index.get(receipt_commitment(origin, parse_receipt(code)))
        if leaf is None:
            continue  # sealed after the run ended
        covering = [seen[s] for s in sizes if s > leaf and seen[s] >= acked]
        if covering:
            times.append(min(covering) - acked)
    return times


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def run_server(
    args: argparse.Namespace,
    url: str,
    seal_interval: int,
    plan: list[str],
    pool: ProcessPoolExecutor,
    tools: object,
    agent: SSHAgent,
) -> tuple[list[dict[str, float]], list[float]]:
    """One instance and server at ``seal_interval``; rounds per ``plan`` ("wit"/"plain")."""
    work = Path(tempfile.mkdtemp(prefix="samleng-witnessed-"))
    lite_port, omni_port = free_port(), free_port()
    env = bench_env(
        work / "instance",
        DATABASE_URL=url,
        **UNLIMITED,
        SEAL_INTERVAL=str(seal_interval),
        ARGON2_CONCURRENCY="1",
        ARGON2_WAIT="0.5",
    )
    env.pop("SAMLENG_DEMO")
    env["SAMLENG_ORIGIN"] = "petitions.example.org"
    origin, vkey = set_up(env, work, lite_port, omni_port)
    logs = [(origin, vkey)]
    rows: list[dict[str, float]] = []
    times: list[float] = []
    with ExitStack() as stack:
        lite = start_litewitness(
            tools,
            agent,
            work / "lite",
            name=LITE[0],
            seed=LITE[1],
            logs=logs,
            port=lite_port,  # type: ignore[arg-type]
        )
        stack.callback(lite.stop)
        omni = start_omniwitness(
            tools,
            work / "omni",
            name=OMNI[0],
            seed=OMNI[1],
            logs=logs,
            port=omni_port,  # type: ignore[arg-type]
        )
        stack.callback(omni.stop)
        server = stack.enter_context(gunicorn("samleng.service.wsgi:app", env))
        port = int(server.base.rsplit(":", 1)[1])
        tally = Tally()
        before = argon2_ceiling(pool, cores(), args.ceiling_seconds)
        for slug in plan:
            stop = threading.Event()
            acks = Acks() if slug == "wit" else None
            tokens = form_tokens(work / "instance", slug)
            seen: dict[int, float] = {}
            threads = [
                threading.Thread(target=signer, args=(port, slug, tokens, tally, acks, stop))
                for _ in range(args.clients)
            ]
            polling = threading.Event()
            poller = threading.Thread(target=poll_witnessed, args=(port, polling, seen))
            for t in [*threads, poller]:
                t.start()
            time.sleep(args.warmup)
            t0, s0, d0 = time.perf_counter(), server_cpu(server), postgres_cpu(url)
            time.sleep(args.seconds if seal_interval < 10 else max(args.seconds, 4 * seal_interval))
            t1, s1, d1 = time.perf_counter(), server_cpu(server), postgres_cpu(url)
            stop.set()
            for t in threads:
                t.join()
            # The last batch is sealed and witnessed before the poller stops.
            time.sleep(seal_interval + 3)
            polling.set()
            poller.join()
            after = argon2_ceiling(pool, cores(), args.ceiling_seconds)
            ceiling = (before[0] + after[0]) / 2
            hash_cpu = (before[1] + after[1]) / 2
            before = after
            ok = [r for r in tally.results if t0 <= r[0] < t1 and r[1] == 200]
            rate = len(ok) / (t1 - t0)
            row = {
                "witnessed": float(slug == "wit"),
                "ceiling": ceiling,
                "rate": rate,
                "ratio": rate / ceiling,
                "server_cores": (s1 - s0) / (t1 - t0),
                # CPU of a bare hash / CPU (gunicorn + PostgreSQL) of a signature: the figure
                # the other tenants of the machine do not move.
                "cpu_ratio": hash_cpu / ((s1 - s0 + (d1 - d0)) / max(1, len(ok))),
            }
            rows.append(row)
            if acks is not None:
                measured = [a for a in acks.items if t0 <= a[0] < t1]
                times += witnessed_times(url, origin, measured, seen)
            note(
                f"seal {seal_interval} s, {slug}: {rate:.1f}/s = {row['ratio']:.3f} of "
                f"{ceiling:.1f}/s, CPU ratio {row['cpu_ratio']:.3f}; witnessed checkpoints "
                f"seen: {len(seen)}"
            )
        if "Traceback" in server.errors():
            raise RuntimeError("the server logged a traceback: " + server.errors()[-2000:])
    return rows, times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="PostgreSQL URL (a private schema is used)")
    parser.add_argument("--seconds", type=float, default=15, help="measured time per round")
    parser.add_argument("--warmup", type=float, default=4)
    parser.add_argument("--ceiling-seconds", type=float, default=5)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--short-interval", type=int, default=2)
    parser.add_argument("--deploy-interval", type=int, default=30)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    header = machine()
    note(header)
    go = modern_go(MIN_GO)
    if go is None:
        raise SystemExit("needs Go 1.25 or later for the witnesses (/usr/local/go/bin/go)")
    tools = build_tools(go)
    with ExitStack() as stack:
        db = args.db
        if db is None:
            cluster = PrivatePostgres()
            stack.callback(cluster.destroy)
            cluster.init()
            cluster.start()
            db = cluster.url()
        agent_dir = Path(tempfile.mkdtemp(prefix="samleng-agent-"))
        agent = SSHAgent(
            shutil.which("ssh-agent") or "ssh-agent",
            shutil.which("ssh-add") or "ssh-add",
            agent_dir,
        )
        stack.callback(agent.stop)
        pool = stack.enter_context(ProcessPoolExecutor(max_workers=cores()))
        url = stack.enter_context(private_schema(db))
        short_rows, short_times = run_server(
            args, url, args.short_interval, ["wit", "plain", "plain", "wit"], pool, tools, agent
        )
        url2 = stack.enter_context(private_schema(db))
        _rows, deploy_times = run_server(
            args, url2, args.deploy_interval, ["wit"], pool, tools, agent
        )

    def ratio(witnessed: bool, key: str = "ratio") -> float:
        return median([r[key] for r in short_rows if bool(r["witnessed"]) == witnessed])

    lines = [
        f"machine: {header}",
        f"gunicorn: deploy/gunicorn.conf.py, {cores()} workers; PostgreSQL (private); Argon2 "
        f"t=2 m=19456 KiB p=1; {args.clients} keep-alive clients; witnesses litewitness and "
        "omniwitness on loopback, quorum 2, asked by the in-process witnessing thread",
        "round  petition  signed/s  ceiling/s  ratio  cpu-ratio  server-cores",
        *(
            f"{i:5d}  {'wit' if r['witnessed'] else 'plain':8s}  {r['rate']:8.1f}  "
            f"{r['ceiling']:9.1f}  {r['ratio']:5.3f}  {r['cpu_ratio']:9.3f}  "
            f"{r['server_cores']:12.2f}"
            for i, r in enumerate(short_rows, 1)
        ),
        f"signing ratio (median of the rounds, sealing every {args.short_interval} s): "
        f"with witnesses {ratio(True):.3f}, without {ratio(False):.3f} "
        f"(with / without: {ratio(True) / ratio(False):.3f}); CPU ratio with "
        f"{ratio(True, 'cpu_ratio'):.3f}, without {ratio(False, 'cpu_ratio'):.3f} (with / "
        f"without: {ratio(True, 'cpu_ratio') / ratio(False, 'cpu_ratio'):.3f})",
        f"acknowledgement to a checkpoint with both cosignatures, sealing every "
        f"{args.short_interval} s: median {median(short_times):.2f} s, p95 "
        f"{percentile(short_times, 0.95):.2f} s ({len(short_times)} signatures)",
        f"the same, sealing every {args.deploy_interval} s (the deploy's): median "
        f"{median(deploy_times):.2f} s, p95 {percentile(deploy_times, 0.95):.2f} s "
        f"({len(deploy_times)} signatures)",
    ]
    print("\n".join(lines))
    if not args.no_record:
        record("witnessed.py", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
