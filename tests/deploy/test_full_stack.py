"""The reference deployment as a whole, on loopback: PostgreSQL, Redis, two app servers
(gunicorn, two workers each) and nginx, all with the files of deploy/.

Requests reach the onion listener as tor sends them (a PROXY line naming the circuit, then
HTTP) and the clearnet vhost over TLS. The tests show per-circuit limits, the app's headers
intact through nginx, a microcache that never holds a form, a receipt or a cookie, one
consistent log from two servers and six sealers, a backup that restores without its keys,
and that nothing written anywhere names a client or what they typed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from samleng.crypto.bundle import verify_bundle
from samleng.crypto.details import generate_details_keypair
from samleng.crypto.keyfile import public_key_file
from samleng.crypto.tokens import Argon2Params
from samleng.service.admin.accounts import create_account
from samleng.service.admin.views import MAX_ADMIN_REQUEST_BYTES
from samleng.service.app import create_app
from samleng.service.petitions.lifecycle import create_petition, open_petition
from samleng.service.platform.config import Config, read_master_key
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.keys import ensure_master_key
from samleng.service.platform.models import get_petition
from samleng.service.signing.formtoken import NGINX_FORM_SLOT
from samleng.service.tlog.export import write_bundle
from tests.components import PostgresServer, require, require_program
from tests.conftest import TEXTS, within_one_clock_minute
from tests.deploy.clients import (
    Answer,
    admin,
    clearnet,
    exchange,
    onion,
    run_nginx,
    wait_for_port,
)
from tests.deploy.render import (
    ADMIN_ONION_HOST,
    ADMIN_SECRET,
    DEPLOY,
    ONION_HOST,
    NginxSite,
    free_port,
    render_nginx,
    render_redis,
)
from tests.service.test_privacy import DETAILS, NEEDLES, PHONES

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BIN = Path(sys.executable).parent
TOKEN = re.compile(r'name="form_token" value="([^"]+)"')
RECEIPT = re.compile(r'<p class="receipt">([A-Z2-7-]+)</p>')
SIGN_LIMIT = 3  # per client and minute, tight so that the tests reach it
ORIGIN = "petitions.example.org"
CHEAP_ARGON2 = Argon2Params(time_cost=1, memory_kib=1024, parallelism=1)
ORGANISER, ORGANISER_PASSWORD = "sokha", "a long organiser passphrase"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def circuit(n: int) -> str:
    """A circuit as tor's HiddenServiceExportCircuitID haproxy writes it."""
    return f"fc00:dead:beef:4dad::{n >> 16:x}:{n & 0xFFFF:x}"


# What no file, log or Redis key may contain: the simulated circuits and addresses, the
# spoofed forwarding headers, and (with NEEDLES) identifiers and details as typed.
CLIENT_NEEDLES = ["dead:beef", "4dad::", "127.0.0.2", "127.0.0.3", "203.0.113.77"]


@dataclass
class Stack:
    """The running deployment, and an app object of the test's own on the same database."""

    root: Path
    env: dict[str, str]
    app: Flask
    database_url: str
    redis_port: int
    postgres: PostgresServer
    app_ports: list[int] = field(default_factory=list)
    site: NginxSite | None = None
    # Files the test wrote before anything ran (configurations, certificates): not logs.
    inputs: set[Path] = field(default_factory=set)
    signed: set[str] = field(default_factory=set)

    @property
    def nginx(self) -> NginxSite:
        """The running nginx."""
        assert self.site is not None
        return self.site


def stack_app(instance: Path, database_url: str) -> Flask:
    """The app as the stack's processes configure it, for setting up and exporting."""
    config = Config(
        instance_path=instance,
        database_url=database_url,
        origin=ORIGIN,
        master_key=read_master_key(instance),
        argon2=CHEAP_ARGON2,
        testing=True,
        seal_interval=0,
    )
    return create_app(config)


def export(app: Flask, slug: str, target: Path) -> None:
    """What ``samleng export`` writes, without the delivery PDF (slow to render).

    In one snapshot: the app servers' sealers keep appending while the bundle is written.
    """
    engine = services(app).engine.execution_options(isolation_level="REPEATABLE READ")
    with app.app_context(), Session(engine) as session:
        write_bundle(session, get_petition(session, slug), target, delivery=False)


def start(command: list[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)


def wait_healthy(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("gunicorn did not answer:\n" + log.read_text())


def stop_all(procs: list[subprocess.Popen[bytes]], quick: bool = False) -> None:
    """Stop every process at once, then wait for each (a hung one is killed). ``quick``
    sends SIGINT, gunicorn's quick shutdown, instead of SIGTERM's graceful one."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT if quick else signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer
) -> Iterator[Stack]:
    nginx = require_program("nginx", "apt-get install nginx-light")
    redis_server = require_program("redis-server", "apt-get install redis-server")
    require("gunicorn", (BIN / "gunicorn").exists(), "make install")
    root = tmp_path_factory.mktemp("stack")
    instance = root / "instance"
    database = f"samleng_stack_{secrets.token_hex(4)}"
    procs: list[subprocess.Popen[bytes]] = []
    gunicorns: list[subprocess.Popen[bytes]] = []
    with ExitStack() as cleanup:
        database_url = postgres_server.create_database(database)
        cleanup.callback(postgres_server.drop_database, database)
        cleanup.callback(stop_all, procs)
        cleanup.callback(stop_all, gunicorns, quick=True)
        ensure_master_key(instance)
        redis_port = free_port()
        redis_conf = render_redis(root / "redis", redis_port)
        procs.append(
            start([redis_server, str(redis_conf)], root / "redis.log", dict(os.environ), root)
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAMLENG_")}
        env.update(
            SAMLENG_INSTANCE=str(instance),
            SAMLENG_ORIGIN=ORIGIN,
            SAMLENG_ONION_ADDRESS=ONION_HOST,
            SAMLENG_DATABASE_URL=database_url,
            SAMLENG_RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{redis_port}/0",
            SAMLENG_TRUSTED_PROXIES="1",
            SAMLENG_CIRCUIT_PROXIES="127.0.0.1",
            SAMLENG_ADMIN_LISTENER_SECRET=ADMIN_SECRET,
            SAMLENG_RATELIMIT_SIGN=f"{SIGN_LIMIT} per minute",
            SAMLENG_RATELIMIT_PAGES="1000 per minute",
            SAMLENG_RATELIMIT_PETITION="1000 per minute",
            SAMLENG_ARGON2_CONCURRENCY="8",
            SAMLENG_FORM_MIN_SECONDS="0",
            # Every worker of both servers seals every second: with the two `samleng seal`
            # of the log test, six sealers race for the advisory lock.
            SAMLENG_SEAL_INTERVAL="1",
        )
        # The app servers boot (slow: four workers import the app) while the test creates
        # the schema and the petitions; nothing touches the database before the first request.
        servers = []
        for name in ("a", "b"):
            port, log = free_port(), root / f"gunicorn-{name}.log"
            command = [
                str(BIN / "gunicorn"), "-c", str(DEPLOY / "gunicorn.conf.py"),
                "--bind", f"127.0.0.1:{port}", "--workers", "2", "samleng.service.wsgi:app",
            ]  # fmt: skip
            gunicorns.append(start(command, log, env, root))
            servers.append((port, gunicorns[-1], log))
        app = stack_app(instance, database_url)
        cleanup.callback(services(app).engine.dispose)
        upgrade(services(app).engine)
        with app.app_context():
            session = get_session()
            vault = services(app).vault
            for slug in ("stack", "viral"):
                petition = create_petition(
                    session, vault=vault, origin=ORIGIN, slug=slug, texts=TEXTS,
                    goal=1000, identifier_mode="phone", argon2=CHEAP_ARGON2,
                    details_public_key=generate_details_keypair()[1],
                )  # fmt: skip
                open_petition(session, petition, vault, can_mail=False)
            create_account(session, ORGANISER, "admin", ORGANISER_PASSWORD)
            session.commit()
        stack = Stack(root, env, app, database_url, redis_port, postgres_server)
        stack.site = render_nginx(
            root / "nginx",
            [port for port, _, _ in servers],
            cache_status=True,
            form_key=services(app).form_tokens.key,
        )
        stack.inputs = {p for p in root.rglob("*") if p.is_file()} - {root / "redis.log"}
        stack.inputs -= {log for _, _, log in servers}
        wait_for_port(redis_port, procs[0], "redis-server")
        for port, proc, log in servers:
            wait_healthy(port, proc, log)
            stack.app_ports.append(port)
        cleanup.enter_context(run_nginx(nginx, stack.nginx, root / "nginx.out"))
        yield stack


def form_token(page: Answer) -> str:
    assert page.status == 200, (page.status, page.text)
    match = TOKEN.search(page.text)
    assert match, page.text
    return match.group(1)


def sign_body(token: str, identifier: str, **details: str) -> bytes:
    fields = {"form_token": token, "identifier": identifier, "consent": "yes", **details}
    return urllib.parse.urlencode(fields).encode()


def sign_onion(stack: Stack, slug: str, on: str, identifier: str, **details: str) -> Answer:
    """Load the form and sign it, both through the onion listener on circuit ``on``."""
    token = form_token(onion(stack.nginx, on, "GET", f"/en/p/{slug}"))
    answer = onion(
        stack.nginx, on, "POST", f"/en/p/{slug}/sign", sign_body(token, identifier, **details)
    )
    if answer.status == 200:
        stack.signed.add(identifier)
    return answer


def sign_clearnet(stack: Stack, slug: str, source: str, identifier: str, **headers: str) -> Answer:
    token = form_token(clearnet(stack.nginx, "GET", f"/en/p/{slug}", source=source))
    body = sign_body(token, identifier)
    answer = clearnet(stack.nginx, "POST", f"/en/p/{slug}/sign", body, source=source, **headers)
    if answer.status == 200:
        stack.signed.add(identifier)
    return answer


def sign_direct(stack: Stack, slug: str, server: int, on: str, identifier: str) -> Answer:
    """Sign at one app server directly, as nginx would pass a request from circuit ``on``."""
    import http.client

    def conn() -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", stack.app_ports[server], timeout=15)

    headers = {"X-Samleng-Circuit": on, "X-Forwarded-For": "127.0.0.1"}
    page = exchange(conn(), "GET", f"/en/p/{slug}", ONION_HOST, headers=headers)
    body = sign_body(form_token(page), identifier)
    answer = exchange(conn(), "POST", f"/en/p/{slug}/sign", ONION_HOST, body, headers)
    if answer.status == 200:
        stack.signed.add(identifier)
    return answer


SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def assert_app_headers(answer: Answer) -> None:
    csp = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src" not in csp
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers[name] == value, name
    assert answer.headers["Server"] == "nginx"  # neither a version nor gunicorn's
    assert "Set-Cookie" not in answer.headers


def test_headers_survive_nginx(stack: Stack) -> None:
    page = onion(stack.nginx, circuit(1), "GET", "/en/p/stack")
    assert page.status == 200
    assert_app_headers(page)
    assert page.headers["Cache-Control"] == "no-store"
    assert "Onion-Location" not in page.headers  # already on the onion service
    assert "Strict-Transport-Security" not in page.headers
    # The app knows it is on the onion service (no "plain HTTP" warning on the page).
    assert "tor2web" not in page.text.lower()

    tls = clearnet(stack.nginx, "GET", "/en/p/stack?x=1")
    assert tls.status == 200
    assert_app_headers(tls)
    assert tls.headers.get_all("Onion-Location") == [f"http://{ONION_HOST}/en/p/stack?x=1"]
    assert tls.headers["Strict-Transport-Security"] == "max-age=63072000"

    count = onion(stack.nginx, circuit(1), "GET", "/p/stack/count.json")
    assert count.status == 200 and count.headers["Cache-Control"] == "public, max-age=5"
    assert_app_headers(count)

    import http.client

    plain = exchange(
        http.client.HTTPConnection("127.0.0.1", stack.nginx.http_port, timeout=10),
        "GET",
        "/en/",
        "petitions.example.org",
    )
    assert plain.status == 301
    assert plain.headers["Location"] == "https://petitions.example.org/en/"


def test_limits_are_per_circuit(stack: Stack) -> None:
    flooder, other = circuit(0x10001), circuit(0x10002)
    within_one_clock_minute(15)  # the servers count in the clock's minutes
    answers = [sign_onion(stack, "stack", flooder, f"012 400 {i:03d}") for i in range(4)]
    assert [a.status for a in answers] == [200] * SIGN_LIMIT + [429]
    refused = answers[-1]
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert refused.headers["Cache-Control"] == "no-store"
    assert_app_headers(refused)
    # Another circuit through the same tor, the same nginx, the same address: still signs.
    assert sign_onion(stack, "stack", other, "012 400 100").status == 200


def test_a_clearnet_client_cannot_claim_circuits(stack: Stack) -> None:
    """nginx drops X-Samleng-Circuit from the clearnet, so every claim is the same client."""
    within_one_clock_minute(15)
    statuses = [
        sign_clearnet(
            stack, "stack", "127.0.0.3", f"012 401 {i:03d}", X_Samleng_Circuit=circuit(0x20000 + i)
        ).status
        for i in range(SIGN_LIMIT + 1)
    ]
    assert statuses == [200] * SIGN_LIMIT + [429]


def test_the_microcache_keeps_no_form_receipt_or_cookie(stack: Stack) -> None:
    reader, writer = circuit(0x30001), circuit(0x30002)
    answers: list[Answer] = []

    def get(on: str, path: str) -> Answer:
        answers.append(onion(stack.nginx, on, "GET", path))
        assert answers[-1].status == 200, (path, answers[-1].status)
        return answers[-1]

    # Public pages: the second circuit gets the first one's copy.
    for path in ("/km/", "/en/safety", "/p/viral/count.json", "/p/viral/checkpoint"):
        assert (get(reader, path).cache, get(writer, path).cache) == ("MISS", "HIT"), path
    # The log's tiles too (in a cache of their own, where full ones stay for good).
    size = json.loads(get(reader, "/p/viral/count.json").body)["size"]
    assert 0 < size < 256
    tile = f"/p/viral/tile/0/000.p/{size}"
    assert (get(reader, tile).cache, get(writer, tile).cache) == ("MISS", "HIT")
    # The petition page carries the sign form: kept for a second, and each copy nginx serves
    # has a token of its own, minted by nginx, that the app accepts (sign_onion below).
    # (Not in ``answers``: its "no-store" is for the browser; nginx keeps the page.)
    first = onion(stack.nginx, reader, "GET", "/en/p/stack")
    copies = [onion(stack.nginx, writer, "GET", "/en/p/stack") for _ in range(5)]
    assert {page.status for page in [first, *copies]} == {200}
    assert {page.headers["Cache-Control"] for page in [first, *copies]} == {"no-store"}
    assert "HIT" in {copy.cache for copy in copies}
    tokens = [form_token(first)] + [form_token(copy) for copy in copies]
    assert len(set(tokens)) == len(tokens)
    # The answer page with its receipt code, and the receipt pages.
    signed = sign_onion(stack, "stack", writer, "012 402 000")
    answers.append(signed)
    code = RECEIPT.search(signed.text)
    assert signed.status == 200 and code
    for _ in range(2):
        checked = onion(
            stack.nginx, writer, "POST", "/en/p/stack/receipt",
            urllib.parse.urlencode({"receipt": code.group(1)}).encode(),
        )  # fmt: skip
        answers.append(checked)
        assert checked.status == 200 and code.group(1) in checked.text
        assert get(reader, "/en/p/stack/receipt").cache != "HIT"
        assert code.group(1) not in answers[-1].text
    for answer in answers:
        assert "Set-Cookie" not in answer.headers
        if answer.headers.get("Cache-Control") == "no-store":
            assert answer.cache != "HIT"
    # Nothing in the cache folder holds a form token, a receipt code or a typed number.
    cached = b"".join(
        p.read_bytes() for p in (stack.nginx.root / "cache").rglob("*") if p.is_file()
    )
    assert NGINX_FORM_SLOT.encode() in cached
    assert not any(token.encode() in cached for token in tokens)
    assert code.group(1).encode() not in cached and b"012 402" not in cached


def test_two_servers_and_six_sealers_make_one_log(stack: Stack, tmp_path: Path) -> None:
    """Signatures through both app servers and nginx, while two `samleng seal --watch` and
    the four workers' in-process sealers race: one append-only log, each person once."""
    watchers = [
        start(
            [str(BIN / "samleng"), "seal", "--watch"],
            tmp_path / f"seal-{i}.log",
            stack.env,
            tmp_path,
        )
        for i in range(2)
    ]
    try:
        phones = [f"012 500 {i:03d}" for i in range(12)]
        work = phones + phones[:6]  # six people submit twice, at the other server
        for i, phone in enumerate(work):
            on = circuit(0x40000 + i // SIGN_LIMIT)
            if i % 3 == 2:
                answer = sign_onion(stack, "viral", on, phone)
            else:
                answer = sign_direct(stack, "viral", i % 2, on, phone)
            assert answer.status == 200, (i, answer.status, answer.text[:300])
        deadline = time.monotonic() + 30
        count = -1
        while count != len(phones) and time.monotonic() < deadline:
            time.sleep(0.5)
            url = f"http://127.0.0.1:{stack.app_ports[1]}/p/viral/count.json"
            with urllib.request.urlopen(url, timeout=5) as answer:
                count = json.load(answer)["count"]
        assert count == len(phones)
    finally:
        stop_all(watchers)
    for i in range(2):
        log = (tmp_path / f"seal-{i}.log").read_text()
        assert "Traceback" not in log and "error" not in log.lower(), log
    bundle = tmp_path / "bundle"
    export(stack.app, "viral", bundle)
    assert verified_count(bundle) == len(phones)
    # Many batches, each signed as an extension of the one before.
    assert len(list((bundle / "checkpoints").iterdir())) >= 2


def verified_count(bundle: Path) -> int:
    result = subprocess.run(
        [str(BIN / "samleng-audit"), "verify", str(bundle)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("count "), result.stdout
    return int(last.split()[1])


def test_backup_restores_without_the_keys_inside(stack: Stack, tmp_path: Path) -> None:
    require_program("pg_dump", "apt-get install postgresql-client")
    require_program("pg_restore", "apt-get install postgresql-client")
    script = str(DEPLOY / "samleng-backup")
    env = dict(stack.env, SAMLENG_BACKUP_DB=stack.database_url)
    inside = subprocess.run(
        [script, "backup", str(Path(stack.env["SAMLENG_INSTANCE"]) / "backups")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert inside.returncode == 2 and "instance folder" in inside.stderr
    backups = tmp_path / "backups"
    done = subprocess.run(
        [script, "backup", str(backups)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    (dump,) = backups.iterdir()
    assert dump.stat().st_mode & 0o077 == 0
    master_key = (Path(stack.env["SAMLENG_INSTANCE"]) / "master.key").read_bytes()
    assert master_key not in dump.read_bytes()

    name = f"samleng_restore_{secrets.token_hex(4)}"
    restored_url = stack.postgres.create_database(name)
    try:
        env["SAMLENG_BACKUP_DB"] = restored_url
        back = subprocess.run(
            [script, "restore", str(dump)], env=env, capture_output=True, text=True, timeout=60
        )
        assert back.returncode == 0, back.stderr
        # With the key put back from its own backup, the restored database exports the
        # same verifiable log.
        restored = stack_app(Path(stack.env["SAMLENG_INSTANCE"]), restored_url)
        try:
            export(restored, "stack", tmp_path / "restored")
        finally:
            services(restored).engine.dispose()
        export(stack.app, "stack", tmp_path / "original")
        original = verify_bundle(tmp_path / "original")
        assert verify_bundle(tmp_path / "restored").count == original.count > 0
        assert (tmp_path / "restored" / "leaves.bin").read_bytes() == (
            tmp_path / "original" / "leaves.bin"
        ).read_bytes()
    finally:
        stack.postgres.drop_database(name)


def test_the_admin_answers_only_through_its_listener(stack: Stack) -> None:
    """/admin/ is the app's 404 on every public listener, whatever the request claims: the
    admin's onion name (which the onion listener accepts like any .onion) or the header that
    the admin listener sends, even with its secret."""
    on = circuit(0x60001)
    refused = [
        onion(stack.nginx, on, "GET", "/admin/login", Host=ADMIN_ONION_HOST),
        onion(
            stack.nginx, on, "GET", "/admin/login", Host=ADMIN_ONION_HOST,
            X_Samleng_Admin=ADMIN_SECRET,
        ),
        onion(stack.nginx, on, "POST", "/admin/login", b"name=sokha", Host=ADMIN_ONION_HOST),
        clearnet(stack.nginx, "GET", "/admin/login", X_Samleng_Admin=ADMIN_SECRET),
    ]  # fmt: skip
    for answer in refused:
        assert answer.status == 404, answer.status
        assert_app_headers(answer)  # the app's own answer, not nginx's
        assert "password" not in answer.text
    # A process on the machine that reaches gunicorn itself needs the secret too.
    import http.client

    for claim in ("", "0" * 64, "1"):
        direct = exchange(
            http.client.HTTPConnection("127.0.0.1", stack.app_ports[0], timeout=15),
            "GET", "/admin/login", ADMIN_ONION_HOST, headers={"X-Samleng-Admin": claim},
        )  # fmt: skip
        assert direct.status == 404
    for host in (ADMIN_ONION_HOST, f"localhost:{stack.nginx.admin_port}"):
        page = admin(stack.nginx, "GET", "/admin/login", host=host)
        assert page.status == 200 and 'name="password"' in page.text, host


class AdminBrowser:
    """An organiser's browser on the admin listener: keeps the cookies it is given."""

    def __init__(self, site: NginxSite) -> None:
        self.site = site
        self.jar: dict[str, str] = {}

    def request(self, method: str, path: str, fields: dict[str, str] | None = None) -> Answer:
        """One request with the cookies so far; the answer's cookies are kept."""
        body = None if fields is None else urllib.parse.urlencode(fields).encode()
        cookies = "; ".join(f"{k}={v}" for k, v in self.jar.items() if v)
        answer = admin(self.site, method, path, body, **({"Cookie": cookies} if cookies else {}))
        for header in answer.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.jar[name] = rest.split(";", 1)[0]
        return answer

    def csrf(self, path: str) -> str:
        """The CSRF token of the form on ``path``."""
        page = self.request("GET", path)
        match = CSRF.search(page.text)
        assert page.status == 200 and match, (path, page.status)
        return match.group(1)


def test_a_long_draft_reaches_the_app_through_the_admin_listener(stack: Stack) -> None:
    """A petition text the app accepts (here 100 KiB once form-encoded) is not cut off by
    nginx's sign-form limit on the admin listener; more than the app's limit is refused."""
    browser = AdminBrowser(stack.nginx)
    fields = {"name": ORGANISER, "password": ORGANISER_PASSWORD, "code": ""}
    logged_in = browser.request(
        "POST", "/admin/login", {"csrf": browser.csrf("/admin/login"), **fields}
    )
    assert logged_in.status == 302, logged_in.text
    body = "ពួកគេបានការពារទន្លេ ហើយត្រូវបានចាប់ខ្លួន។\n\n" * 280
    draft = {
        "csrf": browser.csrf("/admin/new"),
        "slug": "long-draft",
        "km-title": "ដោះលែងអ្នកការពារទន្លេ",
        "km-body": body,
        "en-title": "Free the river defenders",
        "en-body": "They defended the river.",
        "goal": "500",
        "identifier_mode": "phone",
        "verification_mode": "none",
        "region": "KH",
        "details_key_text": public_key_file(generate_details_keypair()[1]).decode(),
    }
    size = len(urllib.parse.urlencode(draft))
    assert 100 * 1024 <= size <= MAX_ADMIN_REQUEST_BYTES and len(body) <= 20000
    saved = browser.request("POST", "/admin/new", draft)
    assert saved.status == 302 and saved.headers["Location"].endswith("/admin/p/long-draft")
    with stack.app.app_context():
        assert get_petition(get_session(), "long-draft").texts["km"]["body"] == body.strip()
    too_large = dict(draft, slug="too-large", **{"en-body": "x" * MAX_ADMIN_REQUEST_BYTES})
    assert browser.request("POST", "/admin/new", too_large).status == 413


def test_nothing_written_names_a_client(stack: Stack) -> None:
    """Runs last: signs with the privacy suite's identifiers and details, provokes nginx and
    the app into their error paths, then reads every file the stack wrote and every key in
    Redis."""
    on = circuit(0x50001)
    for phone in PHONES:
        assert sign_onion(stack, "stack", on, phone, **DETAILS).status == 200
    assert sign_onion(stack, "stack", on, PHONES[0], **DETAILS).status == 200  # a repeat
    refused = sign_onion(stack, "stack", circuit(0x50002), PHONES[1], comment="x" * 17000)
    assert refused.status == 413  # nginx's own limit, logged only at "error"
    assert onion(stack.nginx, on, "GET", "/en/p/no-such-petition").status == 404
    spoofed = clearnet(
        stack.nginx, "GET", "/en/", source="127.0.0.2", X_Forwarded_For="203.0.113.77"
    )
    assert spoofed.status == 200
    time.sleep(1.5)  # let the sealers write what they write

    needles = [*NEEDLES, *CLIENT_NEEDLES, *stack.signed]
    files = [p for p in stack.root.rglob("*") if p.is_file() and p not in stack.inputs]
    assert not [p for p in files if "access" in p.name], "an access log was written"
    assert (stack.nginx.root / "logs" / "error.log").read_text() == ""
    for path in files:
        data = path.read_bytes()
        found = [n for n in needles if n.encode() in data or n.encode("utf-16-le") in data]
        assert found == [], path
    for name in ("gunicorn-a.log", "gunicorn-b.log"):
        assert "Traceback" not in (stack.root / name).read_text()

    import redis

    conn = redis.Redis(port=stack.redis_port)
    keys = list(conn.scan_iter("*"))
    assert keys, "the limiter stored nothing in Redis"
    blob = b"".join(key + (conn.dump(key) or b"") for key in keys)
    conn.close()
    assert [n for n in needles if n.encode() in blob] == []
