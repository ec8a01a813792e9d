"""What the gunicorn benchmarks share: the machine, a private database, gunicorn, /proc, README.

Imported by the scripts in bench/ (run as ``.venv/bin/python bench/<name>.py``, which puts
this folder on ``sys.path``). Loopback only; every server started here is stopped again.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
README = BENCH / "README.md"
VENV_BIN = Path(sys.executable).parent
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
CLK_TCK = os.sysconf("SC_CLK_TCK")
if str(ROOT) not in sys.path:  # the service package, when run from anywhere
    sys.path.insert(0, str(ROOT))

# The benches take their ports where the tests do (never the same port twice in a run).
from tests.components import free_port as free_port  # noqa: E402


def note(message: str) -> None:
    """Progress line on stderr, with the time of day."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cores() -> int:
    """CPUs this process may run on (what gunicorn.conf.py sizes its workers by)."""
    return len(os.sched_getaffinity(0))


def machine() -> str:
    """One line naming the machine, its load and the software versions."""
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_gib = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return (
        f"{cpu}, {cores()} cores, {mem_gib:.1f} GiB; Linux {platform.release()}; "
        f"Python {platform.python_version()}; load average {load} at start"
    )


def load_average() -> str:
    """The 1-minute load average now."""
    return Path("/proc/loadavg").read_text().split()[0]


def median(values: list[float]) -> float:
    """The median (statistics.median, named here for the figures' sake)."""
    return statistics.median(values)


@contextmanager
def database(url: str) -> Iterator[str | None]:
    """``url``'s private schema (see below), or None for "sqlite": the instance's own file."""
    if url == "sqlite":
        yield None
    else:
        with private_schema(url) as schema_url:
            yield schema_url


@contextmanager
def private_schema(url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema in the database at ``url``, dropped afterwards.

    Yields ``url`` with ``search_path`` set to the new schema, so the app, its migrations and
    the bench see only their own tables: nothing else in the database is read or changed.
    """
    import psycopg

    schema = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


# Settings that take the limits out of a bench's way: all its clients come from one address,
# and its form tokens are made and spent at once.
UNLIMITED = {
    "RATELIMIT_SIGN": "100000000 per minute",
    "RATELIMIT_PAGES": "100000000 per minute",
    "RATELIMIT_PETITION": "100000000 per minute",
    "FORM_MIN_SECONDS": "0",
}


def bench_env(instance: Path, **settings: str) -> dict[str, str]:
    """The environment for a Samleng server: no inherited SAMLENG_*, demo mode, ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMLENG_")}
    env.update(SAMLENG_INSTANCE=str(instance), SAMLENG_DEMO="true")
    env.setdefault("MALLOC_ARENA_MAX", "2")  # as deploy/systemd/samleng-web.service runs gunicorn
    env.update({f"SAMLENG_{k}": v for k, v in settings.items()})
    return env


def form_tokens(instance: Path, slug: str = "demo") -> Callable[[], str]:
    """Fresh sign-form tokens for ``slug``, as its page would carry them: each works once,
    so a client sends a new one with every signature (made here from the instance's master
    key rather than fetched, so that the bench measures signing, not page views)."""
    from samleng.service.platform.config import read_master_key
    from samleng.service.platform.keys import derive_key
    from samleng.service.signing.formtoken import issue_form_token

    key = derive_key(read_master_key(instance), "form-token")
    return lambda: issue_form_token(key, slug)


def prepare_demo(env: Mapping[str, str]) -> None:
    """``samleng demo --no-serve``: keys, schema and the open petition ``demo`` (phone)."""
    subprocess.run(
        [str(VENV_BIN / "samleng"), "demo", "--no-serve"],
        env=dict(env),
        check=True,
        stdout=subprocess.DEVNULL,
    )


@dataclass
class Server:
    """A running gunicorn: its base URL, master process and stderr file."""

    base: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def errors(self) -> str:
        """What the server wrote to stderr so far (gunicorn warnings and any traceback)."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def workers(self) -> list[int]:
        """The worker processes' ids."""
        return worker_pids(self.process.pid)


@contextmanager
def gunicorn(
    app: str,
    env: Mapping[str, str],
    *,
    workers: int | None = None,
    threads: int | None = None,
    extra: list[str] | None = None,
) -> Iterator[Server]:
    """Serve ``app`` with deploy/gunicorn.conf.py on a free loopback port until the block ends.

    ``workers``/``threads`` override the configuration file (which uses one worker per core
    and 16 threads). Stops the server (SIGTERM, then SIGKILL) afterwards.
    """
    port = free_port()
    command = [str(VENV_BIN / "gunicorn"), "-c", str(GUNICORN_CONF), "--bind", f"127.0.0.1:{port}"]
    if workers is not None:
        command += ["--workers", str(workers)]
    if threads is not None:
        command += ["--threads", str(threads)]
    command += [*(extra or []), app]
    # stderr to a file, not a pipe: a server with much to say must never block on it.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, env=dict(env), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log
        )
        server = Server(base=f"http://127.0.0.1:{port}", process=process, log=log)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(server.base + "/healthz", timeout=2) as answer:
                        answer.read()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("gunicorn did not start: " + server.errors()) from None
                    time.sleep(0.2)
            deadline = time.monotonic() + 30
            while len(server.workers()) < (workers or cores()) and time.monotonic() < deadline:
                time.sleep(0.2)
            yield server
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def worker_pids(master: int) -> list[int]:
    """The gunicorn workers: the master's child processes."""
    try:
        text = Path(f"/proc/{master}/task/{master}/children").read_text()
    except OSError:
        return []
    return [int(pid) for pid in text.split()]


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU time of a process so far (all its threads); with ``children``, plus
    that of its children that have ended (and were waited for)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def server_cpu(server: Server) -> float:
    """CPU seconds of a gunicorn so far: master, live workers and workers that ended (gunicorn
    replaces a worker after max_requests, and the figures must not lose its time)."""
    total = cpu_seconds(server.process.pid, children=True)
    for pid in server.workers():
        try:
            total += cpu_seconds(pid)
        except OSError:
            pass  # ended meanwhile: counted with the master's children from now on
    return total


@dataclass(frozen=True)
class PostgresCpu:
    """A reading of postgres_cpu: the CPU seconds so far of each backend. ``later - earlier``
    is the CPU the backends spent in between: that of the backends alive at both readings,
    and all of the ones that started meanwhile. A backend that ended meanwhile (a recycled
    connection, an autovacuum worker) is left out rather than taken away from the total."""

    seconds: Mapping[int, float]

    def __sub__(self, earlier: PostgresCpu) -> float:
        return sum(
            cpu - earlier.seconds.get(pid, 0.0)
            for pid, cpu in self.seconds.items()
            if cpu >= earlier.seconds.get(pid, 0.0)  # else the pid was reused meanwhile
        )


def postgres_cpu(url: str | None) -> PostgresCpu:
    """The CPU so far of the PostgreSQL backends serving the database of ``url`` (their
    process titles name it; none for SQLite). Background processes shared with other
    databases are left out."""
    seconds: dict[int, float] = {}
    if not url:
        return PostgresCpu(seconds)
    from sqlalchemy.engine import make_url

    name = f" {make_url(url).database} "
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if title.startswith("postgres: ") and name in title:
                    seconds[int(proc.name)] = cpu_seconds(int(proc.name))
            except (OSError, IndexError, UnicodeDecodeError):
                pass  # the process ended meanwhile
    return PostgresCpu(seconds)


def rss_mib(pid: int) -> float:
    """VmRSS of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no VmRSS for {pid}")


def workers_rss(server: Server) -> list[float]:
    """VmRSS of each live worker, in MiB."""
    sizes = []
    for pid in server.workers():
        try:
            sizes.append(rss_mib(pid))
        except (OSError, LookupError):
            pass  # replaced meanwhile
    return sizes


LATEST_RUNS = "## Latest runs"


def commit() -> str:
    """The checkout's commit (short hash), and whether files other than this README differ."""
    git = [shutil.which("git") or "/usr/bin/git", "-C", str(ROOT)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            [*git, "diff", "--quiet", "HEAD", "--", ".", ":(exclude)bench/README.md"],
            capture_output=True,
        ).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes" if changed else "")


def record(title: str, lines: list[str]) -> None:
    """Put this run's output in bench/README.md under "Latest runs", replacing the previous
    block of the same ``title``: the file keeps the latest run of each bench, git the rest."""
    stamp = dt.datetime.now().astimezone().isoformat(timespec="minutes")
    block = f"### {title}, {stamp}, commit {commit()}\n\n```\n" + "\n".join(lines) + "\n```\n"
    text = README.read_text()
    head, marker, runs = text.partition(f"\n{LATEST_RUNS}\n")
    if not marker:  # the section is the file's last; start it
        head, runs = text.rstrip("\n") + "\n", "\nWritten by the scripts.\n\n"
    intro, *blocks = (part.rstrip("\n") + "\n\n" for part in re.split(r"(?m)^(?=### )", runs))
    same = [i for i, b in enumerate(blocks) if b.startswith(f"### {title}, ")]
    kept = [b for i, b in enumerate(blocks) if i not in same]
    kept.insert(same[0] if same else len(kept), block + "\n")
    body = "".join([intro, *kept]).rstrip("\n") + "\n"
    README.write_text(f"{head}\n{LATEST_RUNS}\n{body}")
    note(f"figures written to {README.relative_to(ROOT)} ({LATEST_RUNS[3:]}: {title})")
