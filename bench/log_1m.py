"""Benchmark of a petition's signature log at 1,000,000 leaves (issue 3).

Builds a log of N signatures in the service's database, exports its bundle, verifies it, and
measures inclusion-proof latency. Prints figures; it is not a pass/fail test. The machine may be
shared and noisy, so the figures that matter are ratios measured within one run (verify time
against bare hashlib SHA-256 over the same inputs, measured right next to it).

What is measured is the log, not signing: pending signatures are bulk-inserted with random
32-byte commitments and random 1072-byte "ciphertexts" (the size of a sealed details record),
skipping Argon2 and forms. Each is sealed to the current sealing epoch's key as signing does
(HPKE, crypto/pending.py), since the sealer must open it; that sealing is done before the
insert is timed, by a pool of processes (it is the signers' work, not the log's), and its time
goes to stderr. A few hundred of them carry real receipt commitments so the signer's whole
receipt path (find_receipt, then verify_receipt) can be timed too.

Usage::

    .venv/bin/python bench/log_1m.py [--leaves N] [--batch B] [--db sqlite|URL] [--workdir DIR]

Progress goes to stderr, figures to stdout. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import platform
import random
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, func, insert, select
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from samleng.crypto.bundle import (  # noqa: E402
    LEAVES_FILE,
    lay_out_bundle,
    verify_bundle,
)
from samleng.crypto.canonical import canonical_json  # noqa: E402
from samleng.crypto.checkpoint import Checkpoint, generate_log_signer, sign_checkpoint  # noqa: E402
from samleng.crypto.details import DETAILS_CIPHERTEXT_BYTES, generate_details_keypair  # noqa: E402
from samleng.crypto.leaf import LEAF_PREFIX, LeafKind, header_leaf  # noqa: E402
from samleng.crypto.merkle import CompactTree, inclusion_proof, leaf_hash, verify_inclusion  # noqa: E402
from samleng.crypto.pending import PendingRecord, seal_pending_record  # noqa: E402
from samleng.crypto.receipts import new_receipt_secret, receipt_commitment  # noqa: E402
from samleng.crypto.tlogproof import verify_receipt  # noqa: E402
from samleng.crypto.tokens import Argon2Params  # noqa: E402
from samleng.service.app import create_app  # noqa: E402
from samleng.service.petitions.lifecycle import create_petition, open_petition  # noqa: E402
from samleng.service.platform.config import Config  # noqa: E402
from samleng.service.platform.context import services  # noqa: E402
from samleng.service.platform.db import upgrade  # noqa: E402
from samleng.service.platform.models import Leaf, PendingSignature, Petition  # noqa: E402
from samleng.service.platform.vault import Vault  # noqa: E402
from samleng.service.tlog.epochs import current_epoch  # noqa: E402
from samleng.service.tlog.export import write_bundle  # noqa: E402
from samleng.service.tlog.store import _StoredSubtrees, find_receipt, latest_checkpoint, seal_all  # noqa: E402

DETAILS_BYTES = DETAILS_CIPHERTEXT_BYTES  # a sealed details record (1072 bytes of HPKE)
SEAL_CHUNK = 500  # pending signatures sealed per task of the pool
ORIGIN = "bench.samleng.invalid"
TEXTS = {"en": {"title": "Benchmark petition", "body": "A log of synthetic signatures."}}
CHEAP_ARGON2 = Argon2Params(time_cost=1, memory_kib=8, parallelism=1)
VERIFY_TARGET = 1.5  # verify within 1.5x of bare hashing
PROOF_TARGET_MS = 50.0  # an inclusion proof well under 50 ms


def note(message: str) -> None:
    """Progress line on stderr, with the time of day."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def spread(values: list[float]) -> str:
    """median / p95 / max of a list of durations in seconds, as milliseconds."""
    return (
        f"median {ms(statistics.median(values))} ms, p95 {ms(percentile(values, 95))} ms, "
        f"max {ms(max(values))} ms"
    )


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{mem_kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        mem = "unknown"
    import sqlite3

    import sqlalchemy

    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "platform": platform.platform(),
    }


class QueryCounter:
    """Counts SQL statements executed on an engine while enabled."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        self.enabled = False
        event.listen(engine, "before_cursor_execute", self._on_execute)

    def _on_execute(self, *_args: Any) -> None:
        if self.enabled:
            self.count += 1

    @contextmanager
    def counting(self) -> Iterator[None]:
        self.count = 0
        self.enabled = True
        try:
            yield
        finally:
            self.enabled = False


class CountingSubtrees:
    """Wraps service.tlog.store._StoredSubtrees and counts the tree_node rows it reads."""

    def __init__(self, inner: _StoredSubtrees) -> None:
        self.inner = inner
        self.reads = 0

    def __call__(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self.inner(level, index)


# --------------------------------------------------------------------------------------------
# 1. App, database, petition


def make_app(db: str, workdir: Path, master_key: bytes) -> Any:
    url = f"sqlite:///{workdir / 'samleng.sqlite3'}" if db == "sqlite" else db
    config = Config(
        instance_path=workdir / "instance",
        database_url=url,
        origin=ORIGIN,
        master_key=master_key,
        argon2=CHEAP_ARGON2,
        form_min_seconds=0,
        testing=True,  # no background sealer: the bench seals explicitly
    )
    app = create_app(config)
    upgrade(services(app).engine)
    return app


def make_petition(engine: Engine, vault: Vault) -> tuple[int, str]:
    _private, public = generate_details_keypair()
    slug = f"bench-{secrets.token_hex(4)}"  # unique, so a reused PostgreSQL database works
    with Session(engine, expire_on_commit=False) as session:
        petition = create_petition(
            session,
            vault=vault,
            origin=ORIGIN,
            slug=slug,
            texts=TEXTS,
            goal=1_000_000,
            identifier_mode="none",
            details_public_key=public,
            argon2=CHEAP_ARGON2,
        )
        open_petition(session, petition, vault, can_mail=False)  # also the first epoch
        session.commit()
        return petition.id, petition.origin


# --------------------------------------------------------------------------------------------
# 2. Fill the log


def sealing_pool() -> Executor | None:
    """Processes that seal pending signatures (HPKE, ~90 us each): one per CPU, or None.

    Forked now, before the app and its database connections exist, so that the workers
    inherit neither. Sealing is the signers' work: it runs before the insert is timed, and
    never while anything measured runs.
    """
    workers = len(os.sched_getaffinity(0))
    if workers < 2:
        return None
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    list(pool.map(abs, range(workers)))  # start them all now
    return pool


def sealed_pending(public_key: bytes, origin: str, commitments: list[bytes], n: int) -> list[bytes]:
    """``n`` pending signatures sealed to an epoch's ``public_key``, as signing seals them:
    ``commitments`` first, then random ones; random details "ciphertexts"; no token."""
    # One urandom call per chunk, sliced: generating the data should not dominate.
    blob = os.urandom(n * (32 + DETAILS_BYTES))
    sealed = []
    for i in range(n):
        o = i * (32 + DETAILS_BYTES)
        record = PendingRecord(
            kind=LeafKind.SIGNATURE,
            token=None,  # identifier mode "none"
            commitment=commitments[i] if i < len(commitments) else blob[o : o + 32],
            details_ciphertext=blob[o + 32 : o + 32 + DETAILS_BYTES],
        )
        sealed.append(seal_pending_record(public_key, origin, record))
    return sealed


def seal_batch(
    pool: Executor | None, public_key: bytes, origin: str, commitments: list[bytes], n: int
) -> list[bytes]:
    """``n`` sealed pending signatures (see sealed_pending), in chunks over the pool."""
    if pool is None:
        return sealed_pending(public_key, origin, commitments, n)
    starts = range(0, n, SEAL_CHUNK)
    chunks = pool.map(
        sealed_pending,
        [public_key] * len(starts),
        [origin] * len(starts),
        [commitments[s : s + SEAL_CHUNK] for s in starts],
        [min(SEAL_CHUNK, n - s) for s in starts],
    )
    return [row for chunk in chunks for row in chunk]


def fill_log(
    engine: Engine,
    vault: Vault,
    pool: Executor | None,
    petition_id: int,
    origin: str,
    leaves: int,
    batch: int,
    receipts_wanted: int,
    budget: float | None = None,
) -> tuple[dict[str, Any], list[tuple[bytes, bytes]]]:
    """Insert and seal ``leaves`` signatures in batches; returns figures and real receipts.

    Each batch is sealed to the current epoch; the seal_all after it moves signing to a new
    epoch and seals the batch (it seals only epochs older than the current one).
    """
    batches = []
    receipts: list[tuple[bytes, bytes]] = []  # (commitment, secret)
    done = 0
    per_batch_receipts = max(1, -(-receipts_wanted // max(1, -(-leaves // batch))))
    total_insert = total_seal = total_seal_cpu = total_pending = 0.0
    started = time.perf_counter()
    while done < leaves:
        n = min(batch, leaves - done)
        with Session(engine) as session:
            epoch = current_epoch(session)
        assert epoch is not None  # open_petition made the first, each seal_all the next
        fresh = [new_receipt_secret() for _ in range(min(per_batch_receipts, n))]
        commitments = [receipt_commitment(origin, r) for r in fresh]
        receipts += zip(commitments, fresh, strict=True)
        t0 = time.perf_counter()
        sealed_rows = seal_batch(pool, epoch.public_key, origin, commitments, n)
        t_pending = time.perf_counter() - t0
        ids = os.urandom(16 * n)
        rows: list[dict[str, Any]] = [
            {
                "id": ids[16 * i : 16 * i + 16],
                "petition_id": petition_id,
                "epoch_id": epoch.id,
                "sealed": row,
            }
            for i, row in enumerate(sealed_rows)
        ]
        del sealed_rows, ids
        t0 = time.perf_counter()
        with Session(engine) as session:
            session.execute(insert(PendingSignature), rows)
            session.commit()
        t_insert = time.perf_counter() - t0
        del rows
        t0, c0 = time.perf_counter(), time.process_time()
        sealed = seal_all(engine, vault)
        t_seal, c_seal = time.perf_counter() - t0, time.process_time() - c0
        size = next(iter(sealed.values()))
        done += n
        total_insert += t_insert
        total_seal += t_seal
        total_seal_cpu += c_seal
        total_pending += t_pending
        rss = peak_rss_mib()
        batches.append(
            {"n": n, "insert": t_insert, "seal": t_seal, "cpu": c_seal, "size": size, "rss": rss}
        )
        note(
            f"batch {len(batches)}: {n} pending sealed to epoch {epoch.id} in {t_pending:.2f} s, "
            f"inserted in {t_insert:.2f} s, sealed in "
            f"{t_seal:.2f} s ({n / t_seal:,.0f} leaves/s; CPU {c_seal:.2f} s), log size {size}, "
            f"peak RSS {rss:.0f} MiB"
        )
        if budget is not None and time.perf_counter() - started > budget and done < leaves:
            note(f"fill budget of {budget:.0f} s spent: stopping at {done} signatures")
            break
    workers = "1 process" if pool is None else f"{len(os.sched_getaffinity(0))} processes"
    whole = time.perf_counter() - started
    note(
        f"fill: {done} pending signatures sealed to their epochs in {total_pending:.1f} s wall "
        f"({done / total_pending:,.0f}/s, {workers}; not in the figures); whole fill "
        f"{whole:.1f} s ({done / whole:,.0f} leaves/s)"
    )
    figures = {
        "batches": batches,
        "insert_s": total_insert,
        "seal_s": total_seal,
        "leaves": done,
        "requested": leaves,
        "batch": batch,
        "seal_cpu_s": total_seal_cpu,
        "seal_rate": done / total_seal,
        "seal_batch_min_rate": min(b["n"] / b["seal"] for b in batches),
        "seal_batch_max_rate": max(b["n"] / b["seal"] for b in batches),
        "rss_after_fill": peak_rss_mib(),
    }
    return figures, receipts[:receipts_wanted]


# --------------------------------------------------------------------------------------------
# 3. Export


EXPORT_KEY_ENV = "SAMLENG_BENCH_MASTER_KEY"  # the run's random master key, for the child


def export_in_child(db: str, workdir: Path, master_key: bytes, petition_id: int) -> dict[str, Any]:
    """Export in a fresh process of this script (``--export-only``), so that its peak RSS is
    the export's own, not the fill's."""
    env = dict(os.environ, **{EXPORT_KEY_ENV: master_key.hex()})
    run = [sys.executable, __file__, "--export-only", str(petition_id), "--db", db]
    done = subprocess.run(
        [*run, "--workdir", str(workdir)], env=env, stdout=subprocess.PIPE, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def export(app: Any, engine: Engine, petition_id: int, target: Path) -> dict[str, Any]:
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 5:
            last[0] = time.perf_counter()
            note(f"export: {done}/{total} leaves written")

    with app.app_context(), Session(engine, expire_on_commit=False) as session:
        petition = session.get(Petition, petition_id)
        assert petition is not None
        rss0 = peak_rss_mib()
        t0 = time.perf_counter()
        size = write_bundle(session, petition, target, progress).size
        t = time.perf_counter() - t0
    bundle_bytes = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    return {
        "export_s": t,
        "size": size,
        "bundle_bytes": bundle_bytes,
        "leaves_bytes": (target / LEAVES_FILE).stat().st_size,
        "files": sum(1 for p in target.rglob("*") if p.is_file()),
        "rss_before": rss0,
        "rss_after": peak_rss_mib(),
    }


# --------------------------------------------------------------------------------------------
# 4. Verify, against bare hashlib


def bare_hashing(data: bytes) -> bytes:
    """The SHA-256 work no verifier can avoid: every leaf hash and the n-1 interior hashes.

    The tightest plain-Python form found (see README): a list comprehension slicing the
    buffer, then level-by-level pairing (a lone last node is lifted unhashed, RFC 6962).
    """
    sha256 = hashlib.sha256
    level = [sha256(b"\x00" + data[o : o + 81]).digest() for o in range(0, len(data), 81)]
    while len(level) > 1:
        it = iter(level)
        upper = [sha256(b"\x01" + a + b).digest() for a, b in zip(it, it, strict=False)]
        if len(level) & 1:
            upper.append(level[-1])
        level = upper
    return level[0]


def verify(target: Path, repeat: int, expected_root: bytes, expected_size: int) -> dict[str, Any]:
    leaves_path = target / LEAVES_FILE
    verify_times: list[float] = []
    bare_times: list[float] = []
    read_times: list[float] = []
    verify_cpu: list[float] = []
    bare_cpu: list[float] = []
    report = None
    bare_root = b""
    rss0 = peak_rss_mib()
    # Interleaved, so that both sides see the same background load.
    for round_ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        report = verify_bundle(target)
        verify_times.append(time.perf_counter() - t0)
        verify_cpu.append(time.process_time() - c0)
        t0 = time.perf_counter()
        data = leaves_path.read_bytes()
        read_times.append(time.perf_counter() - t0)
        t0, c0 = time.perf_counter(), time.process_time()
        bare_root = bare_hashing(data)
        bare_times.append(time.perf_counter() - t0)
        bare_cpu.append(time.process_time() - c0)
        del data
        note(
            f"verify round {round_ + 1}/{repeat}: verify_bundle {verify_times[-1]:.2f} s, "
            f"bare hashing {bare_times[-1]:.2f} s (+ read {read_times[-1]:.2f} s)"
        )
    assert report is not None
    assert report.root == expected_root == bare_root, "roots differ"
    assert report.size == expected_size and report.count == expected_size - 1
    ratios = [v / b for v, b in zip(verify_times, bare_times, strict=True)]
    t0 = time.perf_counter()
    full_sha = hashlib.sha256(leaves_path.read_bytes()).digest()
    file_sha_s = time.perf_counter() - t0
    del full_sha

    # The console script, as an auditor runs it (interpreter start included).
    exe = Path(sys.executable).with_name("samleng-audit")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "samleng.crypto.audit"]
    cli_times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run(
            [*cmd, "verify", str(target)], capture_output=True, text=True, check=False
        )
        cli_times.append(time.perf_counter() - t0)
        if done.returncode != 0 or not done.stdout.endswith(f"count {expected_size - 1}\n"):
            raise RuntimeError(f"samleng-audit verify failed: {done.stdout[-500:]}{done.stderr}")
    t0 = time.perf_counter()
    subprocess.run([*cmd, "--help"], capture_output=True, check=True)
    cli_start = time.perf_counter() - t0
    # Peak RSS of the console script, through a small launcher: a child forked from this big
    # process would report this process's pages as its own high-water mark.
    launcher = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], capture_output=True, check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    measured = subprocess.run(
        [sys.executable, "-c", launcher, *cmd, "verify", str(target)],
        capture_output=True,
        text=True,
        check=True,
    )
    cli_rss = int(measured.stdout.split()[-1]) / 1024
    note(f"samleng-audit verify: {', '.join(f'{t:.2f}' for t in cli_times)} s")
    return {
        "verify_s": verify_times,
        "bare_s": bare_times,
        "read_s": read_times,
        "ratios": ratios,
        "verify_cpu": verify_cpu,
        "bare_cpu": bare_cpu,
        "file_sha_s": file_sha_s,
        "cli_s": cli_times,
        "cli_start_s": cli_start,
        "cli_rss": cli_rss,
        "rss_before": rss0,
        "rss_after": peak_rss_mib(),
    }


def synthetic_bundle(target: Path, size: int, batch: int) -> tuple[bytes, int]:
    """Write a valid bundle of ``size`` leaves straight from crypto/, without the database.

    Used when the database fill could not reach the requested size in time: the verifier's
    cost depends only on the bundle, so its ratio to bare hashing can still be measured at
    full size. Checkpoints are published at 1, 1 + batch, 1 + 2 * batch, ... like a sealer.
    """
    origin = f"{ORIGIN}/p/synthetic"
    _seed, signer = generate_log_signer(origin)
    document = canonical_json(
        {
            "origin": origin,
            "log": {"vkey": signer.vkey},
            "verification_mode": "none",  # the verifier reads it: no confirmation leaves
            "synthetic": True,
        }
    )
    tree = CompactTree()
    sha256 = hashlib.sha256
    kind = LEAF_PREFIX + bytes([LeafKind.SIGNATURE])
    published: list[tuple[int, bytes]] = []

    def publish() -> None:
        body = Checkpoint(origin=origin, size=tree.size, root=tree.root())
        published.append((tree.size, sign_checkpoint(body, signer)))

    def leaves() -> Iterator[bytes]:
        header = header_leaf(document)
        yield header
        tree.extend([leaf_hash(header)])
        publish()
        while tree.size < size:
            n = min(batch, size - tree.size)
            blob = os.urandom(64 * n)
            chunk = b"".join(kind + blob[o : o + 64] for o in range(0, len(blob), 64))
            yield chunk
            tree.extend(
                [sha256(b"\x00" + chunk[o : o + 81]).digest() for o in range(0, len(chunk), 81)]
            )
            publish()

    lay_out_bundle(
        target,
        petition_json=document,
        vkey=signer.vkey,
        leaves=leaves(),
        checkpoints=published,
        verify_text=b"Synthetic benchmark bundle: samleng-audit verify .\n",
    )
    return tree.root(), tree.size


# --------------------------------------------------------------------------------------------
# 5. Inclusion proofs


def proofs(
    engine: Engine,
    counter: QueryCounter,
    petition_id: int,
    receipts: list[tuple[bytes, bytes]],
    samples: int,
) -> dict[str, Any]:
    rng = random.Random()
    gen_times: list[float] = []
    gen_cpu: list[float] = []
    ver_times: list[float] = []
    reads: list[int] = []
    queries: list[int] = []
    lengths: list[int] = []
    with Session(engine) as session:
        petition = session.get(Petition, petition_id)
        assert petition is not None
        state = latest_checkpoint(session, petition)
        assert state is not None
        size, root = state.size, state.root
        indices = [rng.randrange(size) for _ in range(samples)]
        for index in indices:
            leaf = session.scalar(
                select(Leaf.leaf).where(Leaf.petition_id == petition_id, Leaf.index == index)
            )
            assert leaf is not None
            subtrees = CountingSubtrees(_StoredSubtrees(session, petition_id))
            with counter.counting():
                t0, c0 = time.perf_counter(), time.process_time()
                path = inclusion_proof(index, size, subtrees)
                gen_times.append(time.perf_counter() - t0)
                gen_cpu.append(time.process_time() - c0)
            queries.append(counter.count)
            reads.append(subtrees.reads)
            lengths.append(len(path))
            t0 = time.perf_counter()
            verify_inclusion(leaf_hash(leaf), index, size, path, root)
            ver_times.append(time.perf_counter() - t0)

        # The signer's whole path: look the receipt up, build the tlog-proof, verify it.
        receipt_times: list[float] = []
        receipt_queries: list[int] = []
        check_times: list[float] = []
        vkey = petition.log_vkey
        assert vkey is not None
        for commitment, secret in receipts:
            with counter.counting():
                t0 = time.perf_counter()
                status = find_receipt(session, petition, commitment, secret)
                receipt_times.append(time.perf_counter() - t0)
            receipt_queries.append(counter.count)
            assert status.state == "counted" and status.proof is not None
            t0 = time.perf_counter()
            check = verify_receipt(status.proof, vkey)
            check_times.append(time.perf_counter() - t0)
            assert check.index == status.index
    return {
        "samples": samples,
        "gen": gen_times,
        "gen_cpu": gen_cpu,
        "ver": ver_times,
        "reads": reads,
        "queries": queries,
        "lengths": lengths,
        "receipts": len(receipts),
        "find_receipt": receipt_times,
        "find_receipt_queries": receipt_queries,
        "verify_receipt": check_times,
    }


# --------------------------------------------------------------------------------------------


def database_figures(engine: Engine, petition_id: int, db_path: Path | None) -> dict[str, Any]:
    from samleng.service.platform.models import TreeNode

    with Session(engine) as session:
        nodes = session.scalar(
            select(func.count()).select_from(TreeNode).where(TreeNode.petition_id == petition_id)
        )
    figures: dict[str, Any] = {"tree_nodes": nodes}
    if db_path is not None:
        figures["db_bytes"] = sum(
            p.stat().st_size for p in db_path.parent.glob(db_path.name + "*") if p.is_file()
        )
    return figures


def verify_block(
    say: Callable[[str], None], title: str, ver: dict[str, Any], size: int, repeat: int
) -> None:
    """The verify figures of one bundle."""
    v_med, b_med = statistics.median(ver["verify_s"]), statistics.median(ver["bare_s"])
    ratio = statistics.median(ver["ratios"])
    best = min(ver["verify_s"]) / min(ver["bare_s"])
    say(f"{title}: {size:,} leaves ({repeat} interleaved rounds; median, min)")
    say(f"  verify_bundle         {v_med:.2f} s, {min(ver['verify_s']):.2f} s")
    say(
        f"  bare hashlib          {b_med:.2f} s, {min(ver['bare_s']):.2f} s  "
        f"({size:,} leaf + {size - 1:,} node hashes; reading leaves.bin "
        f"{statistics.median(ver['read_s']):.2f} s more)"
    )
    say(
        f"  SHA-256 of leaves.bin {ver['file_sha_s']:.2f} s (the one extra pass the SHA256SUMS "
        "check makes; not in bare)"
    )
    say(
        f"  ratio verify/bare     {ratio:.2f}x median per round, {best:.2f}x best/best "
        f"-> target {VERIFY_TARGET}x {'MET' if ratio <= VERIFY_TARGET else 'MISSED'}"
    )
    cpu_ratio = statistics.median(
        v / b for v, b in zip(ver["verify_cpu"], ver["bare_cpu"], strict=True)
    )
    say(
        f"  CPU-time ratio        {cpu_ratio:.2f}x median per round (process CPU s: verify "
        f"{statistics.median(ver['verify_cpu']):.2f}, bare {statistics.median(ver['bare_cpu']):.2f}"
        "; less sensitive to other load)"
    )
    say(
        f"  samleng-audit verify  {statistics.median(ver['cli_s']):.2f} s median wall "
        f"(subprocess; interpreter start + --help alone {ver['cli_start_s']:.2f} s; "
        f"peak RSS {ver['cli_rss']:.0f} MiB)"
    )
    say(f"  peak RSS in-process   {ver['rss_before']:.0f} -> {ver['rss_after']:.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leaves", type=int, default=1_000_000, help="signatures to log")
    parser.add_argument("--batch", type=int, default=10_000, help="signatures per sealed batch")
    parser.add_argument("--db", default="sqlite", help="'sqlite' (temp file) or a database URL")
    parser.add_argument("--workdir", type=Path, help="where to put the database and bundle")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--samples", type=int, default=200, help="inclusion proofs to time")
    parser.add_argument("--repeat", type=int, default=3, help="verify rounds (interleaved)")
    parser.add_argument("--no-record", action="store_true", help="do not write to README")
    parser.add_argument(
        "--synthetic-leaves",
        type=int,
        metavar="N",
        help="also verify a synthetic N-leaf bundle written without the database (default: "
        "the requested size, when the fill budget stopped the fill short; 0: never)",
    )
    parser.add_argument(
        "--fill-budget",
        type=float,
        metavar="SECONDS",
        help="stop filling after this long and measure the log built so far",
    )
    parser.add_argument("--export-only", type=int, metavar="PETITION", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.export_only is not None:  # the child of export_in_child
        child = make_app(args.db, args.workdir, bytes.fromhex(os.environ[EXPORT_KEY_ENV]))
        figures = export(child, services(child).engine, args.export_only, args.workdir / "bundle")
        print(json.dumps(figures), flush=True)
        return 0

    info = machine()
    made_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="samleng-bench-")) if made_workdir else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    note(f"work directory {workdir}; {args.leaves} signatures in batches of {args.batch}")
    master_key = secrets.token_bytes(32)
    t_all = time.perf_counter()
    syn: dict[str, Any] | None = None
    pool = sealing_pool()  # before the app: the workers fork without its connections
    try:
        app = make_app(args.db, workdir, master_key)
        engine: Engine = services(app).engine
        vault: Vault = services(app).vault
        counter = QueryCounter(engine)
        petition_id, origin = make_petition(engine, vault)

        fill, receipts = fill_log(
            engine,
            vault,
            pool,
            petition_id,
            origin,
            args.leaves,
            args.batch,
            args.samples,
            args.fill_budget,
        )
        if pool is not None:
            pool.shutdown()
        db = database_figures(
            engine, petition_id, workdir / "samleng.sqlite3" if args.db == "sqlite" else None
        )
        with Session(engine) as session:
            petition = session.get(Petition, petition_id)
            assert petition is not None
            state = latest_checkpoint(session, petition)
            assert state is not None
        note("exporting (in a fresh process)")
        exp = export_in_child(args.db, workdir, master_key, petition_id)
        note(f"exported in {exp['export_s']:.2f} s; verifying")
        ver = verify(workdir / "bundle", args.repeat, state.root, state.size)
        note("timing inclusion proofs")
        prf = proofs(engine, counter, petition_id, receipts, args.samples)
        engine.dispose()
        syn_size = args.synthetic_leaves
        if syn_size is None and fill["leaves"] < fill["requested"]:
            syn_size = fill["requested"] + 1
        if syn_size:
            shutil.rmtree(workdir / "bundle")  # the disk space, and the page cache
            note(f"writing a synthetic {syn_size}-leaf bundle (crypto/ only, no database)")
            t0 = time.perf_counter()
            syn_root, syn_size = synthetic_bundle(workdir / "synthetic", syn_size, args.batch)
            syn_build = time.perf_counter() - t0
            syn = verify(workdir / "synthetic", args.repeat, syn_root, syn_size)
            syn["size"], syn["build_s"] = syn_size, syn_build
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if made_workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    total = time.perf_counter() - t_all

    size = state.size
    out: list[str] = []
    say: Callable[[str], None] = out.append
    say("")
    say("=" * 78)
    say(f"Samleng log benchmark: {size - 1:,} signatures (log size {size:,} with the header)")
    if fill["leaves"] < fill["requested"]:
        say(f"NOTE: {fill['requested']:,} were asked for; the fill budget stopped the fill early.")
    say("Synthetic signatures: random commitments and 1072-byte ciphertexts, sealed to the epoch")
    say("key and inserted into pending_signature; this measures the log, not signing (no Argon2).")
    say("=" * 78)
    say(f"machine   {info['cpu']}, nproc {info['nproc']}, {info['memory']} RAM")
    say(
        f"          Python {info['python']}, SQLite {info['sqlite']}, "
        f"SQLAlchemy {info['sqlalchemy']}, {info['platform']}"
    )
    say(f"date      {info['date']}   database {args.db}   total run {total:.0f} s")
    say("")
    say(
        f"fill      {fill['leaves']:,} leaves in {len(fill['batches'])} batches of "
        f"{fill['batch']:,}"
    )
    say(
        f"  bulk insert pending   {fill['insert_s']:.1f} s "
        f"({fill['leaves'] / fill['insert_s']:,.0f} rows/s)"
    )
    say(
        f"  seal_all total        {fill['seal_s']:.1f} s wall = {fill['seal_rate']:,.0f} leaves/s "
        f"(per batch {fill['seal_batch_min_rate']:,.0f}..{fill['seal_batch_max_rate']:,.0f}); "
        f"CPU {fill['seal_cpu_s']:.1f} s = {fill['leaves'] / fill['seal_cpu_s']:,.0f} leaves/CPU-s"
    )
    walls = [b["seal"] for b in fill["batches"]]
    cpus = [b["cpu"] for b in fill["batches"]]
    tenth = max(1, len(walls) // 10)
    say(
        f"  seal per batch (s)    wall first/last {tenth}: {statistics.median(walls[:tenth]):.1f}/"
        f"{statistics.median(walls[-tenth:]):.1f} median; CPU first/last {tenth}: "
        f"{statistics.median(cpus[:tenth]):.1f}/{statistics.median(cpus[-tenth:]):.1f} median"
    )
    say(f"  peak RSS after fill   {fill['rss_after_fill']:.0f} MiB")
    say(f"  tree_node rows        {db['tree_nodes']:,}")
    if "db_bytes" in db:
        say(f"  SQLite file (+wal)    {db['db_bytes'] / 2**20:,.0f} MiB")
    say("")
    say(f"export    write_bundle  {exp['export_s']:.2f} s ({size / exp['export_s']:,.0f} leaves/s)")
    say(
        f"  bundle                {exp['bundle_bytes'] / 2**20:.1f} MiB in {exp['files']} files "
        f"(leaves.bin {exp['leaves_bytes']:,} bytes)"
    )
    say(
        f"  peak RSS (a fresh process) {exp['rss_before']:.0f} MiB with the app loaded -> "
        f"{exp['rss_after']:.0f} MiB after the export"
    )
    say("")
    verify_block(say, "verify", ver, size, args.repeat)
    if syn is not None:
        say("")
        verify_block(say, "verify (synthetic bundle, no database)", syn, syn["size"], args.repeat)
        say(
            f"  (bundle written from crypto/ in {syn['build_s']:.1f} s; random signature leaves, "
            f"checkpoints every {args.batch:,} like the sealer)"
        )
    say("")
    say(f"proofs    {prf['samples']} random leaf indices, inclusion_proof over _StoredSubtrees")
    say(f"  generate              {spread(prf['gen'])}")
    say(f"  generate, CPU time    {spread(prf['gen_cpu'])}")
    say(f"  verify_inclusion      {spread(prf['ver'])}")
    say(
        f"  tree_node reads/proof {min(prf['reads'])}..{max(prf['reads'])} "
        f"(median {statistics.median(prf['reads']):.0f}); SQL statements/proof "
        f"{min(prf['queries'])}..{max(prf['queries'])}; path length "
        f"{min(prf['lengths'])}..{max(prf['lengths'])}"
    )
    p95 = percentile(prf["gen"], 95) * 1000
    say(
        f"  target: well under {PROOF_TARGET_MS:.0f} ms -> p95 {p95:.2f} ms "
        f"({p95 / PROOF_TARGET_MS:.1%} of it) {'MET' if p95 < PROOF_TARGET_MS / 5 else 'CHECK'}"
    )
    if prf["receipts"]:
        say(
            f"  find_receipt          {spread(prf['find_receipt'])} "
            f"({prf['receipts']} real receipts; SQL statements "
            f"{min(prf['find_receipt_queries'])}..{max(prf['find_receipt_queries'])})"
        )
        say(f"  verify_receipt        {spread(prf['verify_receipt'])} (incl. Ed25519 check)")
    say("=" * 78)
    print("\n".join(out), flush=True)
    if not args.no_record:
        from common import record  # bench/common.py, beside this script

        title = "log_1m.py" if args.leaves == 1_000_000 else f"log_1m.py --leaves {args.leaves:,}"
        record(title, [line for line in out[1:] if not line.startswith("=")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
