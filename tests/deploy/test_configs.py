"""The deploy/ files are accepted by the real programs that will read them, and agree.

nginx -t, tor --verify-config, systemd-analyze (verify and the sandbox's exposure score),
PostgreSQL's own list of settings, and the app under the units' MemoryDenyWriteExecute.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from samleng.service.admin.views import MAX_ADMIN_REQUEST_BYTES
from samleng.service.platform.config import Config
from samleng.service.signing.formtoken import NGINX_FORM_SLOT
from samleng.service.web.security import ADMIN_LISTENER_HEADER
from tests.components import require, require_program
from tests.deploy.render import (
    DEPLOY,
    render_nginx,
    render_torrc,
    render_unit,
    settings,
)

UNITS = ["samleng-web.service", "samleng-sealer.service"]


def test_nginx_accepts_the_site(tmp_path: Path) -> None:
    nginx = require_program("nginx", "apt-get install nginx-light")
    site = render_nginx(tmp_path, [8000])
    result = subprocess.run(site.command(nginx, "-t"), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "test is successful" in result.stderr
    # nginx -T prints the configuration as nginx understood it.
    dump = subprocess.run(site.command(nginx, "-T"), capture_output=True, text=True, timeout=30)
    assert dump.returncode == 0, dump.stderr
    assert "[warn]" not in dump.stderr.replace('the "user" directive makes sense only', "")


def test_nginx_rejects_a_broken_site(tmp_path: Path) -> None:
    """The check above can fail: a misspelt directive is refused."""
    nginx = require_program("nginx", "apt-get install nginx-light")
    site = render_nginx(tmp_path, [8000])
    app = site.conf.parent / "samleng-app.conf"
    app.write_text(app.read_text().replace("proxy_cache_lock on;", "proxy_cache_lok on;"))
    result = subprocess.run(site.command(nginx, "-t"), capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "proxy_cache_lok" in result.stderr


def test_nginx_privacy_settings() -> None:
    """Settings that no syntax check can judge: what is logged, and what the cache keys on."""
    main = (DEPLOY / "nginx" / "nginx.conf").read_text()
    app = (DEPLOY / "nginx" / "samleng-app.conf").read_text()
    site = (DEPLOY / "nginx" / "samleng.conf").read_text()
    every = main + site + app
    assert re.search(r"^\s*access_log off;", main, re.M)
    assert re.findall(r"^\s*access_log\s", every, re.M) == ["    access_log "]
    assert re.search(r"^error_log \S+ crit;", main, re.M)
    assert "server_tokens off;" in main
    assert "client_max_body_size 16k;" in main and "client_body_buffer_size 16k;" in main
    key = re.search(r'proxy_cache_key "([^"]+)";', app)
    assert key and key.group(1) == "$scheme://$host$request_uri"
    for client_variable in ("remote_addr", "proxy_protocol", "cookie", "circuit", "http_"):
        assert client_variable not in key.group(1)
    # nginx's defaults keep Set-Cookie and no-store answers out of the cache; only the petition
    # page's location switches no-store off, and there nginx keeps nothing the app did not
    # mark as made with a slot for the form token.
    petition = re.search(r'^location ~ "\^/\(\?:km\|en\)/p/[^\n]*\{\n(.*?)^\}', app, re.M | re.S)
    assert petition, "samleng-app.conf has no petition-page location"
    rules = petition.group(1)
    assert "proxy_ignore_headers" not in every.replace(rules, "")
    assert "proxy_hide_header" not in every.replace(rules, "")
    assert "proxy_ignore_headers Cache-Control Expires;" in rules
    assert "proxy_no_cache $http_x_tor2web $samleng_form_unmarked;" in rules
    assert "set $samleng_form_slot nginx;" in rules
    token = "$samleng_form_issued.$samleng_form_nonce.$samleng_form_mac"
    assert f'sub_filter "{NGINX_FORM_SLOT}" "{token}";' in rules
    unmarked = re.search(
        r"map \$upstream_http_x_samleng_form \$samleng_form_unmarked \{(.*?)\}", site, re.S
    )
    assert unmarked and unmarked.group(1).split() == ["slot", '"";', "default", "1;"]
    # The onion server forwards the circuit; the clearnet server clears a client's claim.
    assert "set $samleng_circuit $proxy_protocol_addr;" in site
    assert 'set $samleng_circuit "";' in site
    assert "proxy_set_header X-Samleng-Circuit $samleng_circuit;" in app
    assert f"proxy_set_header {ADMIN_LISTENER_HEADER} $samleng_admin;" in app


def test_only_the_admin_listener_vouches_for_admin_requests() -> None:
    """Every server that proxies to the app says what X-Samleng-Admin is: empty on the public
    ones (a client's own value is dropped), the secret on the admin listener alone."""
    proxying = {
        names: body
        for names, body in server_blocks((DEPLOY / "nginx" / "samleng.conf").read_text())
        if "samleng-app.conf;" in body
    }
    assert len(proxying) == 3
    secret_include = "include /etc/nginx/samleng/samleng-admin-secret.conf;"
    for names, body in proxying.items():
        assert body.count("set $samleng_circuit ") == 1, names
        if "localhost" in names:
            assert secret_include in body and "$samleng_admin" not in body
            # The secret is set before the shared part uses it.
            assert body.index(secret_include) < body.index("samleng-app.conf;")
            assert "proxy_protocol" not in body and "ssl" not in body
        else:
            assert body.count('set $samleng_admin "";') == 1, names
            assert secret_include not in body, names


def test_tor_accepts_the_onion_service(tmp_path: Path) -> None:
    tor = require_program("tor", "apt-get install tor")
    torrc = render_torrc(tmp_path)
    result = subprocess.run(
        [tor, "--verify-config", "-f", str(torrc), "--defaults-torrc", os.devnull],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration was valid" in result.stdout
    # tor refuses unknown options, so the check above can fail.
    torrc.write_text(torrc.read_text() + "HiddenServicePoWDefensesEnabledd 1\n")
    bad = subprocess.run(
        [tor, "--verify-config", "-f", str(torrc), "--defaults-torrc", os.devnull],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0


def test_torrc_has_the_required_defences() -> None:
    torrc = settings(DEPLOY / "tor" / "torrc")
    assert torrc["SocksPort"] == "0"
    public, admin = hidden_services(DEPLOY / "tor" / "torrc")
    assert public["HiddenServiceDir"] == "/var/lib/tor/samleng/"
    assert public["HiddenServiceVersion"] == admin["HiddenServiceVersion"] == "3"
    assert public["HiddenServicePoWDefensesEnabled"] == "1"
    assert public["HiddenServiceExportCircuitID"] == "haproxy"
    assert public["HiddenServiceMaxStreamsCloseCircuit"] == "1"
    assert int(public["HiddenServiceMaxStreams"]) > 0
    # The admin's service is another one, with its own keys and address (and its own
    # authorized_clients folder).
    assert admin["HiddenServiceDir"] == "/var/lib/tor/samleng-admin/"


def test_the_files_agree_with_each_other() -> None:
    """Ports and trust settings named in several files are the same in all of them."""
    public, admin = hidden_services(DEPLOY / "tor" / "torrc")
    site = (DEPLOY / "nginx" / "samleng.conf").read_text()
    port = public["HiddenServicePort"].split()[1]
    assert f"listen {port} proxy_protocol" in site
    assert f"server {port}" not in site  # the onion listener is not an app server
    admin_port = admin["HiddenServicePort"].split()[1]
    assert admin_port != port
    assert f"listen {admin_port} default_server;" in site and f"listen {admin_port};" in site
    assert "server 127.0.0.1:8000;" in site
    assert '"127.0.0.1:8000"' in (DEPLOY / "gunicorn.conf.py").read_text()
    env = settings(DEPLOY / "samleng.env")
    assert env["SAMLENG_CIRCUIT_PROXIES"] == "127.0.0.1"
    assert env["SAMLENG_TRUSTED_PROXIES"] == "1"
    assert env["SAMLENG_RATELIMIT_STORAGE_URI"].startswith("redis://")
    assert "SAMLENG_SEAL_INTERVAL" not in env
    # A placeholder the app refuses, so that the operator must make the secret.
    assert env["SAMLENG_ADMIN_LISTENER_SECRET"].startswith("REPLACE-WITH-")
    for unit in UNITS:
        text = (DEPLOY / "systemd" / unit).read_text()
        assert "EnvironmentFile=/etc/samleng/samleng.env" in text
        assert "Environment=SAMLENG_SEAL_INTERVAL=" in text


def test_nginx_and_the_app_agree_on_body_limits() -> None:
    """One limit each: nginx refuses exactly what the app would refuse, no less, and keeps
    what it accepts in memory (the buffer is as large as the limit)."""
    main = (DEPLOY / "nginx" / "nginx.conf").read_text()
    public = Config.__dataclass_fields__["max_request_bytes"].default
    assert (
        re.search(r"^    client_max_body_size (\w+);", main, re.M).group(1) == f"{public // 1024}k"
    )  # type: ignore[union-attr]
    assert f"client_body_buffer_size {public // 1024}k;" in main
    ((names, admin),) = [
        (names, body)
        for names, body in server_blocks((DEPLOY / "nginx" / "samleng.conf").read_text())
        if "client_max_body_size" in body
    ]
    assert "localhost" in names and "samleng-admin-secret.conf" in admin
    assert f"client_max_body_size {MAX_ADMIN_REQUEST_BYTES // 1024}k;" in admin
    assert f"client_body_buffer_size {MAX_ADMIN_REQUEST_BYTES // 1024}k;" in admin
    assert public % 1024 == MAX_ADMIN_REQUEST_BYTES % 1024 == 0


def server_blocks(conf: str) -> list[tuple[str, str]]:
    """The top-level ``server { ... }`` blocks of an nginx file: (server_name, body)."""
    text = re.sub(r"#[^\n]*", "", conf)
    blocks = []
    for start in (m.end() for m in re.finditer(r"^server \{", text, re.M)):
        depth, i = 1, start
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        body = text[start : i - 1]
        names = re.search(r"server_name ([^;]+);", body)
        blocks.append((names.group(1) if names else "", body))
    return blocks


def hidden_services(path: Path) -> list[dict[str, str]]:
    """The onion services of a torrc, in order: each HiddenServiceDir with the lines after it."""
    services: list[dict[str, str]] = []
    for line in path.read_text().splitlines():
        key, _, value = line.split("#", 1)[0].strip().partition(" ")
        if key == "HiddenServiceDir":
            services.append({})
        if key.startswith("HiddenService"):
            services[-1][key] = value.strip()
    return services


def test_gunicorn_settings() -> None:
    values: dict[str, object] = {}
    exec((DEPLOY / "gunicorn.conf.py").read_text(), values)  # our own file, as gunicorn does
    assert values["bind"] == ["127.0.0.1:8000"]
    assert values["accesslog"] is None
    assert values["worker_class"] == "gthread"
    assert isinstance(values["threads"], int) and values["threads"] >= 8
    assert values["forwarded_allow_ips"] == "127.0.0.1,::1"
    assert values["loglevel"] in ("warning", "error")


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_units_verify_and_are_sandboxed(tmp_path: Path, unit: str) -> None:
    analyze = require_program("systemd-analyze", "apt-get install systemd")
    path = render_unit(unit, tmp_path, Path(sys.executable).parent)
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    text = path.read_text()
    for setting in (
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "ProtectHome=yes",
        "MemoryDenyWriteExecute=yes",
        "CapabilityBoundingSet=\n",
        "IPAddressDeny=any",
    ):
        assert setting in text, setting
    security = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert score, security.stdout + security.stderr
    assert float(score.group(1)) <= 1.5, security.stdout


MDWE_SMOKE = r"""
import ctypes, sys
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, REFUSE_EXEC_GAIN
    sys.exit(77)
import mmap
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("writable executable memory was still allowed")
except OSError:
    pass
from pathlib import Path
from samleng.service.app import create_app
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from tests.conftest import add_petition, make_config, receipt_of, sign
tmp = Path(sys.argv[1])
app = create_app(make_config(tmp, f"sqlite:///{tmp / 'db.sqlite3'}"))
upgrade(services(app).engine)
add_petition(app)
answer = sign(app.test_client(), "free-them", identifier="012 345 678", name="Dara")
assert answer.status_code == 200 and receipt_of(answer)
from weasyprint import HTML
assert HTML(string="<p>សំឡេង voice</p>").write_pdf().startswith(b"%PDF")
print("ok")
"""


def test_the_app_runs_without_writable_executable_memory(tmp_path: Path) -> None:
    """The units set MemoryDenyWriteExecute: signing and PDF rendering must work under it."""
    result = subprocess.run(
        [sys.executable, "-c", MDWE_SMOKE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=DEPLOY.parent,
    )
    require("a kernel with PR_SET_MDWE (Linux 6.3 or later)", result.returncode != 77)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_postgresql_knows_every_setting(pg_url: str) -> None:
    """Each setting of deploy/postgresql/samleng.conf exists, with a value of its type."""
    import psycopg

    wanted = settings(DEPLOY / "postgresql" / "samleng.conf")
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT name, vartype, enumvals FROM pg_settings WHERE name = ANY(%s)",
            (list(wanted),),
        ).fetchall()
    known = {name: (vartype, enumvals) for name, vartype, enumvals in rows}
    assert sorted(known) == sorted(wanted)
    for name, value in wanted.items():
        vartype, enumvals = known[name]
        if vartype == "bool":
            assert value in ("on", "off"), name
        elif vartype == "integer":
            assert re.fullmatch(r"-?[0-9]+", value), name
        elif vartype == "enum":
            assert value in enumvals, (name, value, enumvals)


def test_pg_hba_lines_are_well_formed() -> None:
    for line in (DEPLOY / "postgresql" / "pg_hba.conf").read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        assert fields[0] in ("local", "host", "hostssl"), line
        assert fields[-1] in ("peer", "scram-sha-256"), line
        assert fields[1:3] in (["samleng", "samleng"], ["samleng", "postgres"]), line
