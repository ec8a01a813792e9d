"""The real components the suite talks to, and the servers it starts for itself.

A test that needs a component fails when it is missing, with the command that installs it:
``make test`` installs every one (deploy/bootstrap), so a missing component is a broken
machine, never a reason to skip. PostgreSQL and Redis are the suite's own: a cluster in a
temporary folder and redis-servers on free loopback ports, torn down at the end; nothing
touches a server the machine may already run. ``SAMLENG_TEST_DATABASE_URL`` points the suite
at an existing PostgreSQL server instead.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
INSTALL_HINT = "make test installs it (deploy/bootstrap test)"

# The components a run used, name -> version, for the summary at the end of the run.
USED: dict[str, str] = {}


def require(component: str, available: bool, hint: str = "") -> None:
    """Fail the calling test when ``component`` is not available, saying how to get it."""
    if not available:
        pytest.fail(f"{component} is not available: {hint or INSTALL_HINT}", pytrace=False)


# How a program says its version, where ``--version`` is not the way.
_VERSION_FLAGS = {
    "nginx": ["-v"],
    "ip": ["-V"],
    "go": ["version"],
    "ssss-split": ["-v"],
    "ssss-combine": ["-v"],
    "pdftotext": ["-v"],
    "pdffonts": ["-v"],
    "pdftoppm": ["-v"],
    "exiftool": ["-ver"],
}


def require_program(name: str, hint: str = "") -> str:
    """Return the path of program ``name`` on PATH, or fail as :func:`require` does."""
    path = shutil.which(name)
    require(name, path is not None, hint)
    assert path is not None
    if name not in USED:
        USED[name] = program_version([path, *_VERSION_FLAGS.get(name, ["--version"])])
    return path


# Ports free_port has handed out in this run. The kernel may offer a port again as soon as
# the probing socket is closed, so two calls in a row could name the same port (one nginx
# configuration once listened twice on one port, and nginx refused it).
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now, and that no earlier call
    in this run has returned."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes] | None, what: str, seconds: float = 30
) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None:
            assert proc.poll() is None, f"{what} exited with status {proc.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{what} did not listen on {port} within {seconds} s")


def stop_process(proc: subprocess.Popen[bytes], sig: int = 15) -> None:
    """Send ``sig`` (SIGTERM) and wait; a process that does not exit within 20 s is killed."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def program_version(command: list[str]) -> str:
    """The first line a program prints about its version, or 'not found'."""
    if shutil.which(command[0]) is None:
        return "not found"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run ({type(exc).__name__})"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0].strip() if lines else "(no version)"


# The PostgreSQL server programs are not on PATH on Debian (only the client wrappers are).
_PG_BIN_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin")


def pg_program(name: str) -> str:
    """The path of PostgreSQL server program ``name`` (initdb, pg_ctl, pg_waldump), or fail."""
    for pattern in _PG_BIN_GLOBS:
        candidates = sorted(
            glob.glob(os.path.join(pattern, name)),
            key=lambda path: [int(n) for n in re.findall(r"\d+", path)],
            reverse=True,
        )
        if candidates:
            return candidates[0]
    found = shutil.which(name)
    require(name, found is not None, "apt-get install postgresql (" + INSTALL_HINT + ")")
    assert found is not None
    return found


class PrivatePostgres:
    """A PostgreSQL cluster of the suite's own, with deploy/postgresql/samleng.conf, on a free
    loopback port, in a temporary folder.

    initdb refuses to run as root, so as root every server program runs as the ``postgres``
    user (which Debian's postgresql package creates), in a folder that user owns.
    """

    def __init__(self) -> None:
        self.initdb = pg_program("initdb")
        self.pg_ctl = pg_program("pg_ctl")
        self.as_owner: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            runuser = require_program("runuser", "apt-get install util-linux")
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                owner = None
            require("the postgres user", owner is not None, "apt-get install postgresql")
            self.as_owner = [runuser, "-u", "postgres", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="samleng-test-pg-"))
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()

    def url(self, database: str = "postgres", **params: str) -> str:
        """A libpq URL for ``database`` on this cluster (trust authentication, loopback)."""
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}" + (
            f"?{query}" if query else ""
        )

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            [*self.as_owner, *command], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{command[0]} failed:\n{done.stdout}\n{done.stderr}\n" + (
            self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        )

    def init(self, extra_settings: str = "") -> None:
        """Create the cluster: the deployment's settings, then this cluster's port and socket."""
        self._run(
            self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--no-instructions",
        )  # fmt: skip
        settings = (DEPLOY / "postgresql" / "samleng.conf").read_text()
        settings += (
            f"\n# The test suite's own cluster\nlisten_addresses = '127.0.0.1'\n"
            f"port = {self.port}\nunix_socket_directories = '{self.root}'\n{extra_settings}"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(settings)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (disconnects clients, clean) or ``immediate`` (a crash)."""
        self._run(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        """Whether the server's postmaster is up."""
        done = subprocess.run(
            [*self.as_owner, self.pg_ctl, "-D", str(self.data), "status"],
            capture_output=True,
            timeout=30,
        )
        return done.returncode == 0

    def destroy(self) -> None:
        """Stop the server if it runs and delete the cluster."""
        if (self.data / "postmaster.pid").exists() and self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def version(self) -> str:
        """What ``postgres --version`` says."""
        return program_version([str(Path(self.pg_ctl).with_name("postgres")), "--version"])


class PrivateReplica(PrivatePostgres):
    """A hot standby of ``primary`` (a running PrivatePostgres): ``pg_basebackup -R`` over
    loopback with a replication slot of its own, then the same settings on a port of its own.

    The primary needs nothing added: ``wal_level = replica`` and ``max_wal_senders`` are
    PostgreSQL's defaults, and initdb's trust pg_hba.conf lets loopback replicate.
    """

    SLOT = "samleng_test_replica"

    def __init__(self, primary: PrivatePostgres) -> None:
        super().__init__()
        self.primary = primary
        self.pg_basebackup = pg_program("pg_basebackup")

    def init(self, extra_settings: str = "") -> None:
        """Copy the primary (its postgresql.conf too) and give the copy its own port."""
        self._run(
            self.pg_basebackup, "-D", str(self.data), "-R", "-X", "stream", "-c", "fast",
            "-C", "-S", self.SLOT, "-h", "127.0.0.1", "-p", str(self.primary.port),
            "-U", "postgres",
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\n# The test suite's replica\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n{extra_settings}"
            )

    def destroy(self) -> None:
        """Stop and delete the replica, and drop its slot, which keeps the primary's WAL."""
        super().destroy()
        if self.primary.running():
            import psycopg

            with psycopg.connect(self.primary.url(), autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s",
                    (self.SLOT,),
                )

    def _query(self, sql: str) -> object:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            row = conn.execute(sql).fetchone()
        return None if row is None else row[0]

    def caught_up(self, seconds: float = 30) -> None:
        """Wait until the replica has replayed everything the primary has written so far."""
        import psycopg

        with psycopg.connect(self.primary.url(), autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._query(f"SELECT pg_last_wal_replay_lsn() >= '{row[0]}'::pg_lsn"):
                return
            time.sleep(0.02)
        raise AssertionError(f"the replica did not replay up to {row[0]} within {seconds} s")

    def pause_replay(self) -> None:
        """Stop applying the WAL it receives (it keeps receiving it)."""
        self._query("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        """Apply the WAL again, and wait until it has caught up."""
        self._query("SELECT pg_wal_replay_resume()")
        self.caught_up()


class PostgresServer:
    """The PostgreSQL server the suite's database tests use: databases by name on it."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def url(self, database: str) -> str:
        """The URL of ``database`` on this server."""
        import urllib.parse

        return urllib.parse.urlsplit(self.base_url)._replace(path="/" + database).geturl()

    def create_database(self, name: str) -> str:
        """Create database ``name`` (dropping an old one of that name) and return its URL."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PrivateRedis:
    """redis-server on a free loopback port: with deploy/redis/samleng.conf when ``deploy`` is
    set (as production runs it), else bare and in memory. Can stop and start again."""

    def __init__(self, root: Path, deploy: bool = False) -> None:
        self.binary = require_program("redis-server", "apt-get install redis-server")
        self.port = free_port()
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        if deploy:
            from tests.deploy.render import render_redis

            self.command = [self.binary, str(render_redis(root, self.port))]
        else:
            self.command = [
                self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(root),
            ]  # fmt: skip
        self.log = root / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None
        USED.setdefault("Redis", program_version([self.binary, "--version"]))

    @property
    def url(self) -> str:
        """The limiter's storage URI."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it listens."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.proc, "redis-server")

    def stop(self) -> None:
        """Stop the server as ``systemctl stop`` would (SIGTERM)."""
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def dump_everything(self) -> bytes:
        """Every key and its serialised value, for privacy checks."""
        import redis

        conn = redis.Redis.from_url(self.url)
        blob = b""
        for key in conn.scan_iter("*"):
            blob += key + b"\n" + (conn.dump(key) or b"") + b"\n"
        conn.close()
        return blob
