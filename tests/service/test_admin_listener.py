"""The admin answers only requests that nginx's admin listener forwarded, whatever their Host.

nginx's admin listener sets ``X-Samleng-Admin`` to SAMLENG_ADMIN_LISTENER_SECRET; every public
server of nginx clears the header. The app believes it only with the right secret and only
from nginx's address (SAMLENG_CIRCUIT_PROXIES). Without the setting (the demo, no nginx) the
admin answers everywhere, as it always did. The same rules through the real nginx are in
tests/deploy/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from samleng.service.app import create_app
from samleng.service.platform.config import Config, load_config
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from samleng.service.platform.errors import ConfigError
from samleng.service.platform.keys import ensure_master_key
from tests.conftest import make_config

SECRET = "5e" * 32
NGINX = "127.0.0.1"
ADMIN_ONION = "a" * 56 + ".onion"


@pytest.fixture
def gated(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    """The app as deploy/samleng.env configures it: nginx at 127.0.0.1 holds the secret."""
    application = create_app(
        make_config(
            tmp_path,
            database_url,
            admin_listener_secret=SECRET,
            circuit_proxies=(NGINX,),
            trusted_proxies=1,
        )
    )
    upgrade(services(application).engine)
    yield application
    services(application).engine.dispose()


def get(
    client: FlaskClient, path: str, host: str = "localhost", peer: str = NGINX, **headers: str
) -> int:
    answer = client.get(
        path,
        base_url=f"https://{host}",
        headers={k.replace("_", "-"): v for k, v in headers.items()},
        environ_base={"REMOTE_ADDR": peer},
    )
    return answer.status_code


def test_the_admin_listener_is_let_in(gated: Flask) -> None:
    client = gated.test_client()
    assert get(client, "/admin/login", X_Samleng_Admin=SECRET) == 200
    # The Host plays no part: the admin onion name, or localhost through an SSH tunnel.
    assert get(client, "/admin/login", host=ADMIN_ONION, X_Samleng_Admin=SECRET) == 200


@pytest.mark.parametrize(
    ("host", "peer", "headers"),
    [
        # What used to open the admin: a request naming the admin's host, from anywhere.
        (ADMIN_ONION, NGINX, {}),
        ("petitions.example.org", NGINX, {}),
        ("localhost", NGINX, {}),
        # A guessed or empty marker.
        (ADMIN_ONION, NGINX, {"X_Samleng_Admin": "1"}),
        (ADMIN_ONION, NGINX, {"X_Samleng_Admin": ""}),
        (ADMIN_ONION, NGINX, {"X_Samleng_Admin": SECRET[:-1]}),
        (ADMIN_ONION, NGINX, {"X_Samleng_Admin": SECRET + "0"}),
        # The right secret from an address that is not nginx's, even claiming to be proxied.
        (ADMIN_ONION, "127.0.0.9", {"X_Samleng_Admin": SECRET}),
        (ADMIN_ONION, "203.0.113.5", {"X_Samleng_Admin": SECRET, "X_Forwarded_For": NGINX}),
    ],
)
def test_everything_else_gets_not_found(
    gated: Flask, host: str, peer: str, headers: dict[str, str]
) -> None:
    client = gated.test_client()
    assert get(client, "/admin/login", host, peer, **headers) == 404
    assert get(client, "/admin/", host, peer, **headers) == 404
    posted = client.post(
        "/admin/login",
        base_url=f"https://{host}",
        data={"name": "root", "password": "x" * 12},
        headers={k.replace("_", "-"): v for k, v in headers.items()},
        environ_base={"REMOTE_ADDR": peer},
    )
    assert posted.status_code == 404
    # The public site is not affected.
    assert get(client, "/en/", host, peer, **headers) == 200


def test_without_a_listener_the_admin_answers_everywhere(app: Flask) -> None:
    """The embedded default (the demo, no nginx): no secret set, the admin works as ever."""
    client = app.test_client()
    assert get(client, "/admin/login", peer="203.0.113.5") == 200
    assert get(client, "/admin/login", host="petitions.example.org") == 200


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("SAMLENG_"):
            monkeypatch.delenv(name)
    instance = tmp_path / "instance"
    ensure_master_key(instance)
    monkeypatch.setenv("SAMLENG_INSTANCE", str(instance))
    monkeypatch.setenv("SAMLENG_ORIGIN", "petitions.example.org")
    return instance


def test_the_setting_is_read(environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMLENG_ADMIN_LISTENER_SECRET", SECRET)
    monkeypatch.setenv("SAMLENG_CIRCUIT_PROXIES", "127.0.0.1")
    config = load_config()
    assert config.admin_listener_secret == SECRET
    assert SECRET not in repr(config)


def test_the_old_host_setting_is_refused(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SAMLENG_ADMIN_HOST trusted the Host header; silently ignoring it would open the admin."""
    monkeypatch.setenv("SAMLENG_ADMIN_HOST", ADMIN_ONION)
    with pytest.raises(ConfigError, match="SAMLENG_ADMIN_HOST is no longer supported"):
        load_config()


@pytest.mark.parametrize(
    ("secret", "proxies", "message"),
    [
        ("REPLACE-WITH-openssl-rand-hex-32", ("127.0.0.1",), "at least 64 hexadecimal"),
        ("ab" * 31, ("127.0.0.1",), "at least 64 hexadecimal"),
        ("AB" * 32, ("127.0.0.1",), "at least 64 hexadecimal"),
        (SECRET, (), "SAMLENG_CIRCUIT_PROXIES"),
    ],
)
def test_a_weak_or_unusable_secret_is_refused(
    tmp_path: Path, secret: str, proxies: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(
            instance_path=tmp_path,
            database_url="sqlite://",
            origin="x.org",
            master_key=b"k" * 32,
            admin_listener_secret=secret,
            circuit_proxies=proxies,
        )
