"""The MDN HTTP Observatory grades the clearnet site A+, with every one of its tests passed.

The Observatory's scanner (npm ``@mdn/mdn-http-observatory``, its command line
``src/scan.js <host>``) takes a host name only: it fetches ``http://<host>/`` and
``https://<host>/`` on the standard ports, follows the redirects, then asks for
``/robots.txt`` and sends a CORS preflight, and grades the headers of the final answer. So
the real nginx (deploy/nginx, a self-signed certificate) and the real app behind it
(gunicorn with deploy/gunicorn.conf.py, on SQLite) run in a network namespace of their own,
where nginx has ports 443 and 80 and the site's name resolves to 127.0.0.1 (an /etc/hosts
mounted over the real one in a mount namespace of the same processes). The namespace has
nothing but a loopback interface: the scan cannot reach the internet.

The scanner trusts the certificate through NODE_EXTRA_CA_CERTS; its ``bin/wrapper.js`` is
not used, because it points that variable at a Mozilla bundle that is downloaded at
install time. It is installed with ``npm ci --ignore-scripts`` (the install scripts would
download Chromium's HSTS preload list and IANA's TLD list) from
tests/deploy/observatory/package-lock.json into .cache/observatory/ (not in git), once, and
again only when the lock file changes; the lists are replaced by the small stand-ins beside
the lock file. Only the HSTS list is read by a scan; petitions.example.org is not in it,
as it would not be in the real one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from samleng.service.app import create_app
from samleng.service.platform.config import Config, read_master_key
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from samleng.service.platform.keys import ensure_master_key
from tests.components import require, require_program
from tests.deploy.render import (
    ADMIN_SECRET,
    CLEARNET_HOST,
    DEPLOY,
    DEPLOYED_PORTS,
    ONION_HOST,
    REPO,
    NginxSite,
    render_nginx,
)

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent / "observatory"
CACHE = REPO / ".cache" / "observatory"
SCANNER = CACHE / "node_modules" / "@mdn" / "mdn-http-observatory"
# What the package's install scripts would download, and where its code reads them from.
STAND_INS = ("hsts-preload.json", "tld-list.json")
ARTIFACTS = REPO / "test-artifacts"
BIN = Path(sys.executable).parent
# The app as deploy/samleng.env configures it (the variables that concern its answers).
APP_SETTINGS = {
    "SAMLENG_ORIGIN": CLEARNET_HOST,
    "SAMLENG_ONION_ADDRESS": ONION_HOST,
    "SAMLENG_TRUSTED_PROXIES": "1",
    "SAMLENG_CIRCUIT_PROXIES": "127.0.0.1",
    "SAMLENG_ADMIN_LISTENER_SECRET": ADMIN_SECRET,
    "SAMLENG_SEAL_INTERVAL": "0",
    "SAMLENG_WORKERS": "1",
}
# The best result of each test that a site can reach without being on the real HSTS
# preload list (which would add 5 to HSTS; it cannot be had on loopback). The scanner's
# version is pinned, so these names are stable.
BEST = {
    "content-security-policy": "csp-implemented-with-no-unsafe-default-src-none",
    "cookies": "cookies-not-found",
    "cross-origin-resource-policy": "corp-implemented-with-same-origin",
    "cross-origin-resource-sharing": "cross-origin-resource-sharing-not-implemented",
    "redirection": "redirection-to-https",
    "referrer-policy": "referrer-policy-private",
    "strict-transport-security": "hsts-implemented-max-age-at-least-six-months",
    "subresource-integrity": "sri-not-implemented-but-no-scripts-loaded",
    "x-content-type-options": "x-content-type-options-nosniff",
    "x-frame-options": "x-frame-options-implemented-via-csp",
}
# Variables that would send the scanner's requests elsewhere.
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(scope="session")
def scanner() -> Path:
    """The Observatory's scan.js, installed from the lock file with its stand-in lists."""
    npm = require_program("npm", "install nodejs (see deploy/debian-packages.txt)")
    require_program("node", "install nodejs (see deploy/debian-packages.txt)")
    lock = (HERE / "package-lock.json").read_bytes()
    stamp = CACHE / ".installed"
    wanted = hashlib.sha256(lock + (HERE / "package.json").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != wanted:
        CACHE.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(HERE / name, CACHE / name)
        done = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CACHE,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        require("the MDN HTTP Observatory", done.returncode == 0, done.stderr[-2000:])
        stamp.write_text(wanted)
    for name in STAND_INS:
        shutil.copyfile(HERE / name, SCANNER / "conf" / name)
    return SCANNER / "src" / "scan.js"


@dataclass(frozen=True)
class Namespace:
    """A private network and mount namespace, kept alive by one process."""

    holder: subprocess.Popen[bytes]
    nsenter: str

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside the namespace."""
        return [self.nsenter, f"--target={self.holder.pid}", "--net", "--mount", "--", *argv]


@contextmanager
def private_network(root: Path) -> Iterator[Namespace]:
    """Loopback only, with the clearnet name on 127.0.0.1."""
    unshare = require_program("unshare", "apt-get install util-linux")
    nsenter = require_program("nsenter", "apt-get install util-linux")
    ip = require_program("ip", "apt-get install iproute2")
    hosts = root / "hosts"
    hosts.write_text(f"127.0.0.1 localhost {CLEARNET_HOST}\n::1 localhost\n")
    script = (
        f"{ip} link set lo up && mount --bind {hosts} /etc/hosts && echo ready && exec sleep 900"
    )
    holder = subprocess.Popen(
        [unshare, "--net", "--mount", "--propagation", "private", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert holder.stdout is not None
        first = holder.stdout.readline().decode()
        require(
            "a private network namespace (unshare --net --mount, as root)",
            first == "ready\n",
            first,
        )
        yield Namespace(holder, nsenter)
    finally:
        holder.kill()
        holder.wait(timeout=15)
        if holder.stdout is not None:
            holder.stdout.close()


WAIT_FOR_PORTS = """
import socket, sys, time
deadline = time.monotonic() + 40
for port in map(int, sys.argv[1:]):
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"nothing listens on {port}")
            time.sleep(0.1)
"""


def start(
    ns: Namespace, argv: list[str], log: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(ns.command(*argv), env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Namespace, NginxSite]]:
    """nginx on 443, 80 and the other ports of deploy/, in front of gunicorn on 8000."""
    nginx = require_program("nginx", "apt-get install nginx-light")
    require("gunicorn", (BIN / "gunicorn").exists(), "make install")
    root = tmp_path_factory.mktemp("observatory")
    instance = root / "instance"
    ensure_master_key(instance)
    database_url = f"sqlite:///{instance / 'samleng.sqlite3'}"
    app = create_app(
        Config(
            instance_path=instance,
            database_url=database_url,
            origin=CLEARNET_HOST,
            master_key=read_master_key(instance),
        )
    )
    upgrade(services(app).engine)
    services(app).engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMLENG_")}
    env.update(APP_SETTINGS, SAMLENG_INSTANCE=str(instance), SAMLENG_DATABASE_URL=database_url)
    rendered = render_nginx(root / "nginx", [8000], ports=DEPLOYED_PORTS)
    with ExitStack() as cleanup:
        ns = cleanup.enter_context(private_network(root))
        command = [
            str(BIN / "gunicorn"),
            "-c",
            str(DEPLOY / "gunicorn.conf.py"),
            "samleng.service.wsgi:app",
        ]
        app_server = start(ns, command, root / "gunicorn.log", env)
        cleanup.callback(stop, app_server)
        web = start(ns, rendered.command(nginx, "-g", "daemon off;"), root / "nginx.log", env)
        cleanup.callback(stop, web)
        ports = [str(p) for p in (8000, DEPLOYED_PORTS.https, DEPLOYED_PORTS.http)]
        waited = subprocess.run(
            ns.command(sys.executable, "-c", WAIT_FOR_PORTS, *ports),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        logs = "".join(
            p.read_text() for p in (root / "gunicorn.log", root / "nginx.log") if p.exists()
        )
        assert waited.returncode == 0, waited.stderr + logs
        yield ns, rendered


def observe(ns: Namespace, site: NginxSite, scanner: Path) -> dict[str, Any]:
    """The Observatory's scan of the clearnet site, as its command line prints it."""
    node = require_program("node", "install nodejs (see deploy/debian-packages.txt)")
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
    env["NODE_EXTRA_CA_CERTS"] = str(site.root / "tls" / "fullchain.pem")
    done = subprocess.run(
        ns.command(node, str(scanner), CLEARNET_HOST),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def report(result: dict[str, Any]) -> str:
    """The grade, the score and one line per test, for the failure message and the file."""
    scan = result["scan"]
    lines = [
        f"grade {scan['grade']}, score {scan['score']}, "
        f"{scan['testsPassed']} of {scan['testsQuantity']} tests passed",
    ]
    for name, test in sorted(result["tests"].items()):
        verdict = "pass" if test["pass"] else "FAIL"
        lines.append(f"  {verdict} {name}: {test['result']} ({test['scoreModifier']:+d})")
    return "\n".join(lines)


def test_the_clearnet_site_scores_a_plus(site: tuple[Namespace, NginxSite], scanner: Path) -> None:
    ns, rendered = site
    result = observe(ns, rendered, scanner)
    summary = report(result)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "observatory.txt").write_text(summary + "\n", encoding="utf-8")
    (ARTIFACTS / "observatory.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    scan = result["scan"]
    assert scan["grade"] == "A+", summary
    assert scan["testsPassed"] == scan["testsQuantity"] == len(result["tests"]) == 10, summary
    # Each at its best (over a certificate the scanner trusted: with one it refused, HSTS and
    # the redirection would not count).
    assert {name: test["result"] for name, test in result["tests"].items()} == BEST, summary
