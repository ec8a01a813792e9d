"""The files of deploy/, rewritten to a temporary folder and free loopback ports.

The tests run the real programs on the real files: only paths, ports and names that a test
machine cannot use are replaced, and every replacement must match, so a change in deploy/
that a test no longer covers fails loudly instead of being skipped over.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from samleng.service.signing.formtoken import nginx_form_key_conf
from tests.components import free_port

__all__ = ["free_port"]

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CLEARNET_HOST = "petitions.example.org"
ONION_HOST = "samlengtestn3rwmdqyb4c5znclkz7qvsgmxtf2g5szzvz5ol7cqdwid.onion"
# The admin's own onion service, and the secret its nginx listener sends the app (one per
# test run, as SAMLENG_ADMIN_LISTENER_SECRET wants it).
ADMIN_ONION_HOST = "samlengadmintestq3v6e7kzt5b2fyxg4lm5o2h7wuc3jrnzd4ik6ayd.onion"
ADMIN_SECRET = secrets.token_hex(32)
# The form-token key nginx mints petition-page tokens under, unless a test gives the app's.
FORM_KEY = secrets.token_bytes(32)
# The header the stack tests add to see what the microcache did (not shipped: a visitor
# has no need to learn whether someone else loaded a page in the last seconds).
CACHE_STATUS_HEADER = "add_header X-Cache-Status $upstream_cache_status always;"


def rewrite(text: str, replacements: list[tuple[str, str]], name: str) -> str:
    """Apply ``replacements`` in order; each must occur in ``text``."""
    for old, new in replacements:
        assert old in text, f"{name} no longer contains {old!r}: update tests/deploy/render.py"
        text = text.replace(old, new)
    return text


@dataclass(frozen=True)
class Ports:
    """The ports nginx listens on (all on 127.0.0.1 in the tests)."""

    https: int
    http: int
    onion: int
    admin: int
    status: int

    @classmethod
    def free(cls) -> Ports:
        """Ports that nothing on this machine's loopback listens on now."""
        return cls(free_port(), free_port(), free_port(), free_port(), free_port())


# The ports of deploy/ itself, for a private network namespace where they are free.
DEPLOYED_PORTS = Ports(https=443, http=80, onion=8080, admin=8081, status=8090)


@dataclass(frozen=True)
class NginxSite:
    """A rendered nginx configuration and the loopback ports it listens on."""

    root: Path
    conf: Path
    https_port: int
    http_port: int
    onion_port: int
    status_port: int
    admin_port: int

    @property
    def error_log(self) -> Path:
        """nginx's error log (the configured one, and the start-up one given with -e)."""
        return self.root / "logs" / "error.log"

    def command(self, nginx: str, *extra: str) -> list[str]:
        """The nginx command line for this configuration."""
        return [
            nginx,
            "-p",
            str(self.root),
            "-c",
            str(self.conf),
            "-e",
            str(self.error_log),
            *extra,
        ]


def write_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the clearnet name, as PEM files (cert, key)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CLEARNET_HOST)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(CLEARNET_HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def render_nginx(
    root: Path,
    upstreams: list[int],
    *,
    cache_status: bool = False,
    ports: Ports | None = None,
    admin_secret: str = ADMIN_SECRET,
    form_key: bytes = FORM_KEY,
) -> NginxSite:
    """deploy/nginx/* under ``root``, proxying to ``upstreams`` (ports on 127.0.0.1);
    nginx mints petition-page form tokens under ``form_key``."""
    conf_dir, logs = root / "conf", root / "logs"
    for folder in (conf_dir, logs, root / "temp"):
        folder.mkdir(parents=True, exist_ok=True)
    cert, key = write_certificate(root / "tls")
    ports = ports or Ports.free()
    include_dir = f"{conf_dir}/"
    # As root the workers must be able to enter the test's private folders; as anyone
    # else nginx keeps its own user and the directive is not needed.
    user = "user root;" if os.geteuid() == 0 else ""
    main = rewrite(
        (DEPLOY / "nginx" / "nginx.conf").read_text(),
        [
            ("user www-data;", user),
            ("pid /run/nginx.pid;", f"pid {root}/nginx.pid;"),
            ("/var/log/nginx/error.log", str(logs / "error.log")),
            ("/var/lib/nginx/", f"{root}/temp/"),
            ("/etc/nginx/samleng/", include_dir),
        ],
        "nginx.conf",
    )
    app_include = "include /etc/nginx/samleng/samleng-app.conf;"
    site = rewrite(
        (DEPLOY / "nginx" / "samleng.conf").read_text(),
        [
            (
                "server 127.0.0.1:8000;",
                "\n    ".join(f"server 127.0.0.1:{port};" for port in upstreams),
            ),
            ("/run/samleng-nginx-cache", str(root / "cache")),
            ("/run/samleng-nginx-tiles", str(root / "tiles")),
            ("listen 80 default_server;", f"listen 127.0.0.1:{ports.http} default_server;"),
            ("listen [::]:80 default_server;", ""),
            (
                "listen 443 ssl default_server;",
                f"listen 127.0.0.1:{ports.https} ssl default_server;",
            ),
            ("listen [::]:443 ssl default_server;", ""),
            ("listen 443 ssl;", f"listen 127.0.0.1:{ports.https} ssl;"),
            ("listen [::]:443 ssl;", ""),
            (
                "listen 127.0.0.1:8080 proxy_protocol",
                f"listen 127.0.0.1:{ports.onion} proxy_protocol",
            ),
            (
                "listen 127.0.0.1:8081 default_server;",
                f"listen 127.0.0.1:{ports.admin} default_server;",
            ),
            ("listen 127.0.0.1:8081;", f"listen 127.0.0.1:{ports.admin};"),
            ("REPLACE-WITH-THE-ADMIN-ONION-ADDRESS.onion", ADMIN_ONION_HOST),
            ("listen 127.0.0.1:8090;", f"listen 127.0.0.1:{ports.status};"),
            ("/etc/ssl/samleng/fullchain.pem", str(cert)),
            ("/etc/ssl/samleng/privkey.pem", str(key)),
            (
                app_include,
                (CACHE_STATUS_HEADER + "\n    " if cache_status else "")
                + app_include.replace("/etc/nginx/samleng/", include_dir),
            ),
            (
                "/etc/nginx/samleng/samleng-admin-secret.conf",
                f"{include_dir}samleng-admin-secret.conf",
            ),
        ],
        "samleng.conf",
    )
    app = rewrite(
        (DEPLOY / "nginx" / "samleng-app.conf").read_text(),
        [
            (
                "/etc/nginx/samleng/samleng-form-key.conf",
                f"{include_dir}samleng-form-key.conf",
            )
        ],
        "samleng-app.conf",
    )
    (conf_dir / "nginx.conf").write_text(main)
    (conf_dir / "samleng.conf").write_text(site)
    (conf_dir / "samleng-app.conf").write_text(app)
    # What `samleng keys nginx-form` writes for the operator.
    form_key_file = conf_dir / "samleng-form-key.conf"
    form_key_file.write_text(nginx_form_key_conf(form_key))
    form_key_file.chmod(0o600)
    # What docs/operators.md has the operator write, with the secret the app is given.
    secret_file = conf_dir / "samleng-admin-secret.conf"
    secret_file.write_text(f'set $samleng_admin "{admin_secret}";\n')
    secret_file.chmod(0o600)
    return NginxSite(
        root, conf_dir / "nginx.conf", ports.https, ports.http, ports.onion, ports.status,
        ports.admin,
    )  # fmt: skip


def render_torrc(root: Path, onion_port: int = 8080, admin_port: int = 8081) -> Path:
    """deploy/tor/torrc with its data folder under ``root`` and nginx's onion and admin
    ports."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    torrc = rewrite(
        (DEPLOY / "tor" / "torrc").read_text(),
        [
            ("/var/lib/tor", str(root / "tor")),
            ("127.0.0.1:8080", f"127.0.0.1:{onion_port}"),
            ("127.0.0.1:8081", f"127.0.0.1:{admin_port}"),
            ("127.0.0.1:9035", f"127.0.0.1:{free_port()}"),
        ],
        "torrc",
    )
    path = root / "torrc"
    path.write_text(torrc)
    return path


def render_redis(root: Path, port: int) -> Path:
    """deploy/redis/samleng.conf on ``port``, working in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    conf = rewrite(
        (DEPLOY / "redis" / "samleng.conf").read_text(),
        [("bind 127.0.0.1 -::1", "bind 127.0.0.1"), ("port 6379", f"port {port}")],
        "redis/samleng.conf",
    )
    path = root / "redis.conf"
    path.write_text(conf + f'\ndir "{root}"\n')
    return path


def render_unit(name: str, root: Path, venv_bin: Path) -> Path:
    """A systemd unit of deploy/systemd with the virtualenv of this checkout."""
    root.mkdir(parents=True, exist_ok=True)
    text = rewrite(
        (DEPLOY / "systemd" / name).read_text(),
        [("/opt/samleng/venv/bin", str(venv_bin))],
        name,
    )
    path = root / name
    path.write_text(text)
    return path


def settings(path: Path) -> dict[str, str]:
    """``key = value`` (or ``KEY=value``) lines of a settings file, comments dropped."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            key, _, value = line.partition(" ")
        values[key.strip()] = value.strip().strip("'")
    return values
