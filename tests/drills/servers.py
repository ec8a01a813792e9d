"""The drills' own servers, which they may stop, crash and restart: a PostgreSQL cluster in a
temporary folder, a redis-server with deploy/redis/samleng.conf, and the sealer kept running
the way systemd keeps samleng-sealer.service running (Restart=always).

Nothing here touches the machine's shared PostgreSQL or Redis; everything listens on loopback
ports chosen at random.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

from tests.components import require, require_program
from tests.deploy.clients import wait_for_port
from tests.deploy.render import DEPLOY, free_port, render_redis

# The PostgreSQL server programs are not on PATH on Debian (only the client wrappers are).
_PG_BIN_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin")


def pg_program(name: str) -> str:
    """The path of PostgreSQL server program ``name`` (initdb, pg_ctl), or skip/fail."""
    found = shutil.which(name)
    if found is None:
        for pattern in _PG_BIN_GLOBS:
            candidates = sorted(glob.glob(os.path.join(pattern, name)), reverse=True)
            if candidates:
                found = candidates[0]
                break
    require(name, found is not None, "apt-get install postgresql")
    assert found is not None
    return found


def children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (from /proc; zombies are left out)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.add(int(entry.name))
    return found


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` and wait; a process that does not exit within 20 s is killed."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class PrivatePostgres:
    """A PostgreSQL cluster of the drill's own, with deploy/postgresql/samleng.conf.

    initdb refuses to run as root, so as root every server program runs as the ``postgres``
    user, in a folder that user owns (outside pytest's root-only temporary folders).
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
        self.root = Path(tempfile.mkdtemp(prefix="samleng-drill-pg-"))
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()

    def url(self, database: str, **params: str) -> str:
        """A libpq URL for ``database`` on this cluster (trust authentication, loopback)."""
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}" + (
            f"?{query}" if query else ""
        )

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            [*self.as_owner, *command], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{command[0]} failed:\n{done.stdout}\n{done.stderr}"

    def init(self) -> None:
        """Create the cluster: the deployment's settings, then this drill's port and socket."""
        self._run(
            self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--no-instructions",
        )  # fmt: skip
        settings = (DEPLOY / "postgresql" / "samleng.conf").read_text()
        settings += (
            f"\n# The drill's own cluster\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
            f"unix_socket_directories = '{self.root}'\n"
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


class PrivateRedis:
    """redis-server with deploy/redis/samleng.conf on a free port; can stop and start again."""

    def __init__(self, root: Path) -> None:
        self.binary = require_program("redis-server", "apt-get install redis-server")
        self.port = free_port()
        self.conf = render_redis(root, self.port)
        self.log = root / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The limiter's storage URI."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it listens."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [self.binary, str(self.conf)], stdout=out, stderr=subprocess.STDOUT
            )
        wait_for_port(self.port, self.proc, "redis-server")

    def stop(self) -> None:
        """Stop the server as ``systemctl stop`` would (SIGTERM)."""
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


class Sealer:
    """``samleng seal --watch``, restarted whenever it exits, as systemd's Restart=always
    does for samleng-sealer.service (there after RestartSec=5; here after RESTART_SECONDS).

    ``hold`` stops it and suspends the restarts, so that a drill can start one by hand
    (``spawn``) and kill it at the moment it chooses.
    """

    RESTART_SECONDS = 1.0

    def __init__(self, command: list[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        self._command = command
        self._env = env
        self._log = log
        self._cwd = cwd
        self._lock = threading.Lock()
        self._held = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="drill-sealer", daemon=True)
        self.proc: subprocess.Popen[bytes] | None = None
        # Exit status of every sealer process that ended on its own (not by the drill).
        self.exits: list[int] = []

    def start(self) -> None:
        """Start the sealer and its supervision."""
        with self._lock:
            self.proc = self._spawn()
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self._log.open("ab") as out:
            return subprocess.Popen(
                self._command, env=self._env, cwd=self._cwd, stdout=out, stderr=subprocess.STDOUT
            )

    def _supervise(self) -> None:
        while not self._stopping.wait(0.1):
            with self._lock:
                if self._held or self.proc is None or self.proc.poll() is None:
                    continue
                self.exits.append(self.proc.returncode)
                self.proc = None
            if self._stopping.wait(self.RESTART_SECONDS):
                return
            with self._lock:
                if not self._held and self.proc is None:
                    self.proc = self._spawn()

    def hold(self) -> None:
        """Stop the running sealer (if any) and suspend the restarts."""
        with self._lock:
            self._held = True
            proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc)

    def spawn(self) -> subprocess.Popen[bytes]:
        """While held: start a sealer process that the caller owns (and must wait for)."""
        assert self._held
        return self._spawn()

    def release(self) -> None:
        """Resume the restarts: a sealer runs again at once."""
        with self._lock:
            self._held = False
            if self.proc is None:
                self.proc = self._spawn()

    def stop(self) -> None:
        """Stop the supervision and the sealer."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.hold()
