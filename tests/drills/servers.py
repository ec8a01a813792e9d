"""The drills' own servers, which they may stop, crash and restart: a PostgreSQL cluster in a
temporary folder, a redis-server with deploy/redis/samleng.conf, and the sealer kept running
the way systemd keeps samleng-sealer.service running (Restart=always).

Nothing here touches the machine's shared PostgreSQL or Redis; everything listens on loopback
ports chosen at random.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from tests.components import PrivatePostgres, PrivateRedis, stop_process

__all__ = ["PrivatePostgres", "PrivateRedis", "Sealer", "children", "stop_process"]


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
