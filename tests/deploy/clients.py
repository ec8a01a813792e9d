"""Clients for the deploy tests: the onion listener (with tor's PROXY line), the clearnet TLS
vhost (with SNI) and the admin listener, all speaking plain http.client, plus a running
nginx."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.components import wait_for_port
from tests.deploy.render import ADMIN_ONION_HOST, CLEARNET_HOST, ONION_HOST, NginxSite


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, read whole."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        """The body as UTF-8."""
        return self.body.decode("utf-8", "replace")

    @property
    def cache(self) -> str:
        """What nginx's microcache did (the test-only X-Cache-Status header), or ""."""
        return self.headers.get("X-Cache-Status", "")


class OnionConnection(http.client.HTTPConnection):
    """A connection to nginx's onion listener that begins as tor does, with a PROXY line
    whose source address is the circuit (HiddenServiceExportCircuitID haproxy)."""

    def __init__(self, port: int, circuit: str) -> None:
        super().__init__("127.0.0.1", port, timeout=15)
        self.circuit = circuit

    def connect(self) -> None:
        super().connect()
        assert self.sock is not None
        self.sock.sendall(f"PROXY TCP6 {self.circuit} ::1 1234 80\r\n".encode())


class ClearnetConnection(http.client.HTTPSConnection):
    """A TLS connection to the clearnet vhost that asks for the site's name (SNI) and comes
    from ``source`` (any 127.x address: it plays a visitor's public address)."""

    def __init__(self, port: int, cafile: Path, source: str) -> None:
        context = ssl.create_default_context(cafile=str(cafile))
        context.check_hostname = False  # the name is checked below, against CLEARNET_HOST
        super().__init__("127.0.0.1", port, timeout=15, context=context)
        self._context = context
        self.source = source

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), 15, (self.source, 0))
        self.sock = self._context.wrap_socket(raw, server_hostname=CLEARNET_HOST)
        cert = self.sock.getpeercert()
        assert cert is not None and ("DNS", CLEARNET_HOST) in cert.get("subjectAltName", ())


def exchange(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    host: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """Send one request on a fresh connection and read the whole answer."""
    all_headers = {"Host": host, "Connection": "close", **(headers or {})}
    if body is not None:
        all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    try:
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


def onion(
    site: NginxSite, circuit: str, method: str, path: str, body: bytes | None = None, **kw: str
) -> Answer:
    """A request through the onion listener on ``circuit``."""
    headers = {k.replace("_", "-"): v for k, v in kw.items()}
    return exchange(
        OnionConnection(site.onion_port, circuit), method, path, ONION_HOST, body, headers
    )


def clearnet(
    site: NginxSite,
    method: str,
    path: str,
    body: bytes | None = None,
    source: str = "127.0.0.2",
    **kw: str,
) -> Answer:
    """A request to the clearnet TLS vhost from ``source``."""
    headers = {k.replace("_", "-"): v for k, v in kw.items()}
    conn = ClearnetConnection(site.https_port, site.root / "tls" / "fullchain.pem", source)
    return exchange(conn, method, path, CLEARNET_HOST, body, headers)


def admin(
    site: NginxSite,
    method: str,
    path: str,
    body: bytes | None = None,
    host: str = ADMIN_ONION_HOST,
    **kw: str,
) -> Answer:
    """A request to the admin listener, as its onion service or an SSH tunnel sends it."""
    headers = {k.replace("_", "-"): v for k, v in kw.items()}
    conn = http.client.HTTPConnection("127.0.0.1", site.admin_port, timeout=15)
    return exchange(conn, method, path, host, body, headers)


@contextmanager
def run_nginx(nginx: str, site: NginxSite, output: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run nginx in the foreground for the duration of the generator."""
    with output.open("ab") as out:
        proc = subprocess.Popen(
            site.command(nginx, "-g", "daemon off;"), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port(site.https_port, proc, "nginx")
        wait_for_port(site.onion_port, proc, "nginx")
        wait_for_port(site.admin_port, proc, "nginx")
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)
