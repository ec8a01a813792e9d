"""Configuration: one frozen object built from ``SAMLENG_*`` variables.

Settings come from the instance folder's ``config.toml`` (Flask's instance-folder convention:
``samleng demo`` records its settings there), then from ``SAMLENG_*`` variables, which win.
Secrets have no default: outside demo mode the app refuses to start without them and says
which one is missing. The demo generates its secrets into its own instance folder.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import flask

from samleng.crypto.tokens import DEFAULT_ARGON2, Argon2Params
from samleng.service.platform.db import normalise_url
from samleng.service.platform.errors import ConfigError
from samleng.service.platform.keys import MASTER_KEY_FILE
from samleng.service.platform.models import LANGUAGES

# The instance's own settings (keys without the SAMLENG_ prefix), read before the variables.
INSTANCE_CONFIG_FILE = "config.toml"
DEMO_ORIGIN = "demo.samleng.invalid"
# An origin is a host name with an optional port and path: no scheme, no spaces, no "+"
# (it becomes the key name of signed notes, where "+" and spaces are not allowed).
_ORIGIN = re.compile(r"^[a-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~-]+)*$")
# What `openssl rand -hex 32` prints, or longer.
_ADMIN_LISTENER_SECRET = re.compile(r"^[0-9a-f]{64,}$")
_WITNESS_PROXY = re.compile(r"socks5h://[A-Za-z0-9.-]+:[0-9]{1,5}")


@dataclass(frozen=True, kw_only=True)
class Config:
    """Everything the app needs to run. Build it with :func:`load_config` or directly in tests."""

    instance_path: Path
    database_url: str
    origin: str
    # A streaming replica of the PostgreSQL primary for the public reads (pages, the log,
    # receipt checks): service/platform/replica.py. None: everything on database_url.
    database_replica_url: str | None = None
    master_key: bytes = field(repr=False)
    default_lang: str = "km"
    ratelimit_storage_uri: str = "memory://"
    onion_address: str | None = None
    smtp_url: str | None = None
    argon2: Argon2Params = DEFAULT_ARGON2
    seal_interval: int = 30
    # Seal sooner, once this many signatures wait in the current epoch (0: every interval
    # only). Batches stay at least this large under load (service/petitions/scheduler.py).
    seal_batch: int = 500
    form_min_seconds: int = 3
    # How long a sign form's token works (each works once: its HMAC is remembered this long).
    form_max_age: int = 2 * 3600
    max_request_bytes: int = 16 * 1024
    # Photo pledges (service/signing/photos.py): the largest photo file taken, and the most
    # pixels it may decode to. Only a petition that takes photos accepts a larger request.
    photo_max_bytes: int = 10 * 1024 * 1024
    photo_max_pixels: int = 40_000_000
    # Rate limits (flask-limiter notation). Per client: every page, and signing; per
    # petition: all clients together. The fallback applies per process if storage is down.
    ratelimit_pages: str = "120 per minute"
    ratelimit_sign: str = "6 per minute;30 per hour"
    ratelimit_petition: str = "3000 per minute"
    ratelimit_fallback: str = "30 per minute"
    # An IPv6 client is its /64; the /48 around it gets this many times each per-client limit.
    ratelimit_ipv6_site_factor: int = 8
    # Confirmation mails to one address (email-verified petitions), whoever asks for them.
    ratelimit_mail: str = "3 per day"
    trusted_proxies: int = 0
    circuit_proxies: tuple[str, ...] = ()
    # Argon2 computations in flight per process (one per core: gunicorn runs one process per
    # core), and how long a signature may wait for a free one before the 503.
    argon2_concurrency: int = 1
    argon2_wait: float = 0.5
    # How long a worker keeps a rendered petition page and "thank you" page
    # (service/web/pagecache.py); 0: never.
    page_cache_seconds: float = 1.0
    # The organisers' admin (/admin/): off with SAMLENG_ADMIN=false. With the secret set it
    # answers only requests that nginx's admin listener forwarded (X-Samleng-Admin carrying
    # the secret, from an address in circuit_proxies) and 404 to everything else, whatever
    # their Host. Unset (the demo, no nginx), it answers everywhere.
    admin: bool = True
    admin_listener_secret: str | None = field(default=None, repr=False)
    admin_idle_timeout: int = 30 * 60
    admin_absolute_timeout: int = 12 * 3600
    # Login throttles (service/admin/throttle.py): attempts per client; failures per account
    # name from one client; failures per account name from every client together, beyond
    # which only a login with a right authenticator code passes.
    ratelimit_login: str = "10 per minute;100 per day"
    ratelimit_login_account: str = "5 per minute;30 per hour"
    ratelimit_login_account_all: str = "30 per hour;100 per day"
    # Email-verified signing: the sender address and how long a confirmation link works.
    mail_from: str | None = None
    confirm_max_age: int = 48 * 3600
    # Witnesses (service/tlog/witnesses.py): the SOCKS5 proxy for onion witnesses (Tor's,
    # socks5h://127.0.0.1:9050) and how long one request may take, in seconds.
    witness_proxy: str | None = None
    witness_timeout: float = 10.0
    demo: bool = False
    testing: bool = False

    def __post_init__(self) -> None:
        if len(self.master_key) != 32:
            raise ConfigError("the master key must be exactly 32 bytes")
        if not _ORIGIN.match(self.origin):
            raise ConfigError(
                f"SAMLENG_ORIGIN {self.origin!r} must be a host name with an optional port and "
                "path, without scheme, spaces or '+', e.g. petitions.example.org"
            )
        if self.argon2_concurrency < 1:
            raise ConfigError("SAMLENG_ARGON2_CONCURRENCY must be at least 1")
        if not 0 <= self.argon2_wait <= 30:
            raise ConfigError("SAMLENG_ARGON2_WAIT must be between 0 and 30 seconds")
        if not 0 <= self.page_cache_seconds <= 60:
            raise ConfigError("SAMLENG_PAGE_CACHE_SECONDS must be between 0 and 60")
        if self.ratelimit_ipv6_site_factor < 1:
            raise ConfigError("SAMLENG_RATELIMIT_IPV6_SITE_FACTOR must be at least 1")
        if not 60 <= self.form_max_age <= 24 * 3600:
            raise ConfigError("SAMLENG_FORM_MAX_AGE must be between 60 seconds and a day")
        if self.default_lang not in LANGUAGES:
            raise ConfigError(f"SAMLENG_DEFAULT_LANG must be one of {', '.join(LANGUAGES)}")
        if not 1 <= self.witness_timeout <= 300:
            raise ConfigError("SAMLENG_WITNESS_TIMEOUT must be between 1 and 300 seconds")
        if self.witness_proxy is not None and not _WITNESS_PROXY.fullmatch(self.witness_proxy):
            raise ConfigError(
                "SAMLENG_WITNESS_PROXY must be socks5h://HOST:PORT (socks5h: Tor resolves the "
                "onion names), e.g. socks5h://127.0.0.1:9050"
            )
        if self.database_replica_url is not None and not (
            _postgresql(self.database_url) and _postgresql(self.database_replica_url)
        ):
            raise ConfigError(
                "SAMLENG_DATABASE_REPLICA_URL must be a postgresql:// URL, a streaming replica "
                "of the PostgreSQL primary in SAMLENG_DATABASE_URL"
            )
        if self.admin_listener_secret is not None:
            _check_admin_listener(self.admin_listener_secret, self.circuit_proxies)


def _postgresql(url: str) -> bool:
    return normalise_url(url).startswith("postgresql+")


def _check_admin_listener(secret: str, proxies: tuple[str, ...]) -> None:
    # A placeholder or a short word would let anyone who guesses it in; it is compared in
    # constant time, but only a long random value makes guessing hopeless.
    if not _ADMIN_LISTENER_SECRET.match(secret):
        raise ConfigError(
            "SAMLENG_ADMIN_LISTENER_SECRET must be at least 64 hexadecimal characters in "
            "lower case (`openssl rand -hex 32`), the same as in nginx's "
            "samleng-admin-secret.conf"
        )
    if not proxies:
        raise ConfigError(
            "SAMLENG_ADMIN_LISTENER_SECRET needs SAMLENG_CIRCUIT_PROXIES, nginx's address "
            "(127.0.0.1): the admin believes the secret only from there"
        )


def default_database_url(instance_path: Path) -> str:
    """The embedded default: an SQLite file inside the instance folder."""
    return f"sqlite:///{instance_path / 'samleng.sqlite3'}"


def read_master_key(instance_path: Path) -> bytes:
    """Read the master key file, refusing a missing, short, or world-readable one."""
    path = instance_path / MASTER_KEY_FILE
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(
            f"missing secret: the master key file {path} does not exist "
            "(create it with `samleng keys generate`)"
        ) from None
    if st.st_mode & 0o077:
        raise ConfigError(f"the master key file {path} must be readable by its owner only (0600)")
    key = path.read_bytes()
    if len(key) != 32:
        raise ConfigError(f"the master key file {path} must hold exactly 32 bytes")
    return key


def _flag(value: object) -> bool:
    """A boolean setting: JSON true/false (Flask parses those), or 1/0, yes/no, on/off."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"expected true or false, not {value!r}")


def instance_folder() -> Path:
    """The instance folder: ``SAMLENG_INSTANCE``, by default ``./instance``."""
    return Path(os.environ.get("SAMLENG_INSTANCE") or "instance").resolve()


def write_instance_config(instance_path: Path, settings: dict[str, str | bool | int]) -> None:
    """Record ``settings`` as the instance's config.toml (mode 0600), replacing it."""
    lines = ["# This instance's settings; SAMLENG_* variables of the same names override them."]
    for key, value in sorted(settings.items()):
        if isinstance(value, bool):
            rendered = "true" if value else "false"
        elif isinstance(value, int):
            rendered = str(value)
        else:
            rendered = json.dumps(value)  # a JSON string is a TOML basic string
        lines.append(f"{key} = {rendered}")
    partial = instance_path / f".{INSTANCE_CONFIG_FILE}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    partial.replace(instance_path / INSTANCE_CONFIG_FILE)


def _read_instance_config(raw: flask.Config, instance_path: Path) -> None:
    path = instance_path / INSTANCE_CONFIG_FILE
    if not path.exists():
        return
    try:
        raw.from_file(str(path), load=tomllib.load, text=False)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def load_config(*, demo: bool = False) -> Config:
    """Build the configuration from the instance's config.toml and ``SAMLENG_*`` variables."""
    instance_path = instance_folder()
    raw = flask.Config(str(instance_path))
    _read_instance_config(raw, instance_path)
    raw.from_prefixed_env("SAMLENG")
    demo = demo or _flag(raw.get("DEMO", False))
    origin = str(raw.get("ORIGIN", DEMO_ORIGIN if demo else ""))
    if not origin:
        raise ConfigError(
            "missing setting: SAMLENG_ORIGIN (the public host name, e.g. petitions.example.org)"
        )
    argon2 = Argon2Params(
        time_cost=int(raw.get("ARGON2_TIME_COST", DEFAULT_ARGON2.time_cost)),
        memory_kib=int(raw.get("ARGON2_MEMORY_KIB", DEFAULT_ARGON2.memory_kib)),
        parallelism=int(raw.get("ARGON2_PARALLELISM", DEFAULT_ARGON2.parallelism)),
    )
    if raw.get("ADMIN_HOST"):
        # It trusted the Host header, which any client sets; ignoring it quietly would leave
        # the admin open on every listener of a site that relied on it.
        raise ConfigError(
            "SAMLENG_ADMIN_HOST is no longer supported: anyone could name that host. Remove "
            "it and serve the admin through nginx's admin listener with "
            'SAMLENG_ADMIN_LISTENER_SECRET (docs/operators.md, "The admin listener")'
        )
    admin_secret = raw.get("ADMIN_LISTENER_SECRET") or None
    onion = raw.get("ONION_ADDRESS") or None
    smtp = raw.get("SMTP_URL") or None
    replica = raw.get("DATABASE_REPLICA_URL") or None
    return Config(
        instance_path=instance_path,
        database_url=str(raw.get("DATABASE_URL", default_database_url(instance_path))),
        database_replica_url=None if replica is None else str(replica),
        origin=origin,
        master_key=read_master_key(instance_path),
        default_lang=str(raw.get("DEFAULT_LANG", "km")),
        ratelimit_storage_uri=str(raw.get("RATELIMIT_STORAGE_URI", "memory://")),
        onion_address=None if onion is None else str(onion),
        smtp_url=None if smtp is None else str(smtp),
        argon2=argon2,
        seal_interval=int(raw.get("SEAL_INTERVAL", 30)),
        seal_batch=int(raw.get("SEAL_BATCH", Config.seal_batch)),
        ratelimit_pages=str(raw.get("RATELIMIT_PAGES", Config.ratelimit_pages)),
        ratelimit_sign=str(raw.get("RATELIMIT_SIGN", Config.ratelimit_sign)),
        ratelimit_petition=str(raw.get("RATELIMIT_PETITION", Config.ratelimit_petition)),
        ratelimit_fallback=str(raw.get("RATELIMIT_FALLBACK", Config.ratelimit_fallback)),
        ratelimit_ipv6_site_factor=int(
            raw.get("RATELIMIT_IPV6_SITE_FACTOR", Config.ratelimit_ipv6_site_factor)
        ),
        ratelimit_mail=str(raw.get("RATELIMIT_MAIL", Config.ratelimit_mail)),
        trusted_proxies=int(raw.get("TRUSTED_PROXIES", 0)),
        circuit_proxies=tuple(str(raw.get("CIRCUIT_PROXIES", "")).replace(",", " ").split()),
        argon2_concurrency=int(raw.get("ARGON2_CONCURRENCY", Config.argon2_concurrency)),
        argon2_wait=float(raw.get("ARGON2_WAIT", Config.argon2_wait)),
        form_min_seconds=int(raw.get("FORM_MIN_SECONDS", Config.form_min_seconds)),
        form_max_age=int(raw.get("FORM_MAX_AGE", Config.form_max_age)),
        photo_max_bytes=int(raw.get("PHOTO_MAX_BYTES", Config.photo_max_bytes)),
        photo_max_pixels=int(raw.get("PHOTO_MAX_PIXELS", Config.photo_max_pixels)),
        page_cache_seconds=float(raw.get("PAGE_CACHE_SECONDS", Config.page_cache_seconds)),
        admin=_flag(raw.get("ADMIN", True)),
        admin_listener_secret=None if admin_secret is None else str(admin_secret),
        admin_idle_timeout=int(raw.get("ADMIN_IDLE_TIMEOUT", Config.admin_idle_timeout)),
        admin_absolute_timeout=int(
            raw.get("ADMIN_ABSOLUTE_TIMEOUT", Config.admin_absolute_timeout)
        ),
        ratelimit_login=str(raw.get("RATELIMIT_LOGIN", Config.ratelimit_login)),
        ratelimit_login_account=str(
            raw.get("RATELIMIT_LOGIN_ACCOUNT", Config.ratelimit_login_account)
        ),
        ratelimit_login_account_all=str(
            raw.get("RATELIMIT_LOGIN_ACCOUNT_ALL", Config.ratelimit_login_account_all)
        ),
        mail_from=str(raw.get("MAIL_FROM") or "") or None,
        confirm_max_age=int(raw.get("CONFIRM_MAX_AGE", Config.confirm_max_age)),
        witness_proxy=str(raw.get("WITNESS_PROXY") or "") or None,
        witness_timeout=float(raw.get("WITNESS_TIMEOUT", Config.witness_timeout)),
        demo=demo,
    )
