"""nginx's own rules, against a stub upstream that answers whatever headers a test wants and
echoes what it received: which answers the microcache keeps, and which request headers reach
the app. The full-stack test shows the same with the real app; this one shows that nginx
would hold to them even if the app sent a careless header.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from samleng.service.signing.formtoken import (
    NGINX_FORM_MARK,
    NGINX_FORM_REQUEST,
    NGINX_FORM_SLOT,
    FormTokenError,
    check_form_token,
)
from tests.components import require_program
from tests.deploy.clients import admin, clearnet, onion, run_nginx
from tests.deploy.render import (
    ADMIN_ONION_HOST,
    ADMIN_SECRET,
    FORM_KEY,
    NginxSite,
    render_nginx,
)

CIRCUIT_1 = "fc00:dead:beef:4dad::0:1"
CIRCUIT_2 = "fc00:dead:beef:4dad::0:2"
# What the stub answers, by path: extra headers. Every answer is 200 with a fresh serial
# number, so a repeated serial number means nginx served its cached copy.
ANSWERS = {
    "/en/": {},
    "/km/": {"Set-Cookie": "session=abc; Secure; HttpOnly"},
    "/en/safety": {"Cache-Control": "no-store"},
    "/km/safety": {"Cache-Control": "private"},
    "/p/demo/count.json": {"Cache-Control": "public, max-age=5"},
    "/p/demo/checkpoints/7": {"Cache-Control": "public, max-age=5"},
    "/p/demo/tile/0/000": {"Cache-Control": "public, max-age=31536000, immutable"},
    "/p/demo/tile/0/001.p/5": {"Cache-Control": "public, max-age=5"},
    "/p/demo/tile/entries/000": {"Cache-Control": "public, max-age=31536000, immutable"},
    # The petition page made for nginx: a slot where nginx puts each visitor's form token.
    "/km/p/demo": {"Cache-Control": "no-store", NGINX_FORM_MARK[0]: NGINX_FORM_MARK[1]},
    # Pages that must never be cached, even if the app forgot to say so (the petition page
    # without the mark carries a token of its own).
    "/en/p/demo": {"Cache-Control": "public, max-age=60"},
    "/en/p/demo/receipt": {"Cache-Control": "public, max-age=60"},
    "/admin/": {"Cache-Control": "public, max-age=60"},
}


class Stub(BaseHTTPRequestHandler):
    """Answers per ANSWERS with a serial number and the request headers it received."""

    protocol_version = "HTTP/1.1"
    serial = 0
    lock = threading.Lock()

    def _answer(self) -> None:
        with Stub.lock:
            Stub.serial += 1
            serial = Stub.serial
        length = int(self.headers.get("Content-Length") or 0)
        received = len(self.rfile.read(length)) if length else 0
        seen = {"serial": serial, "headers": dict(self.headers.items()), "received": received}
        answer = ANSWERS.get(self.path, {})
        marked = answer.get(NGINX_FORM_MARK[0]) == NGINX_FORM_MARK[1]
        if marked:  # what nginx fills in, in a page of the type it filters
            seen["token"] = NGINX_FORM_SLOT
        body = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if marked else "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in answer.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer
    do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        """No access log here either."""


@dataclass(frozen=True)
class Seen:
    """What the stub answered: its serial number and the headers it was sent."""

    serial: int
    headers: dict[str, str]
    cache: str


@contextmanager
def stub_upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxSite]:
    nginx = require_program("nginx", "apt-get install nginx-light")
    root = tmp_path_factory.mktemp("nginx-stub")
    with stub_upstream() as port:
        rendered = render_nginx(root, [port], cache_status=True)
        with run_nginx(nginx, rendered, root / "nginx.out"):
            yield rendered


def via_onion(site: NginxSite, path: str, circuit: str = CIRCUIT_1, **kw: str) -> Seen:
    answer = onion(site, circuit, "GET", path, **kw)
    assert answer.status == 200, (answer.status, answer.text)
    data = json.loads(answer.body)
    return Seen(data["serial"], {k.lower(): v for k, v in data["headers"].items()}, answer.cache)


def via_clearnet(site: NginxSite, path: str, **kw: str) -> Seen:
    answer = clearnet(site, "GET", path, **kw)
    assert answer.status == 200, (answer.status, answer.text)
    data = json.loads(answer.body)
    return Seen(data["serial"], {k.lower(): v for k, v in data["headers"].items()}, answer.cache)


def test_public_pages_are_cached_for_everyone_alike(site: NginxSite) -> None:
    first = via_onion(site, "/en/", CIRCUIT_1)
    again = via_onion(site, "/en/", CIRCUIT_2)
    # Another circuit gets the same copy: the cache key names no client.
    assert (first.cache, again.cache) == ("MISS", "HIT")
    assert again.serial == first.serial
    for path in (
        "/p/demo/count.json",
        "/p/demo/checkpoints/7",
        "/p/demo/tile/0/000",
        "/p/demo/tile/0/001.p/5",
        "/p/demo/tile/entries/000",
    ):
        a, b = via_onion(site, path), via_onion(site, path, CIRCUIT_2)
        assert b.cache == "HIT" and b.serial == a.serial, path


@pytest.mark.parametrize(
    "path",
    ["/km/", "/en/safety", "/km/safety", "/en/p/demo", "/en/p/demo/receipt", "/admin/"],
)
def test_never_cached(site: NginxSite, path: str) -> None:
    """Set-Cookie, no-store and private answers, forms, receipts and admin pages."""
    first, second = via_onion(site, path), via_onion(site, path)
    assert second.serial != first.serial
    assert second.cache != "HIT"


def test_petition_page_kept_with_each_visitors_own_token(site: NginxSite) -> None:
    """The page the app made for nginx is kept for a second, and every copy nginx serves
    carries a token of its own that the app accepts; the browser is told "no-store"."""
    answers = [
        onion(site, CIRCUIT_1, "GET", "/km/p/demo"),
        onion(site, CIRCUIT_2, "GET", "/km/p/demo"),
    ]
    answers.append(clearnet(site, "GET", "/km/p/demo"))
    seen = [json.loads(answer.body) for answer in answers]
    assert [answer.cache for answer in answers[:2]] == ["MISS", "HIT"]
    assert seen[0]["serial"] == seen[1]["serial"]
    assert {k.lower(): v for k, v in seen[0]["headers"].items()}["x-samleng-form-slot"] == "nginx"
    tokens = [page["token"] for page in seen]
    assert len(set(tokens)) == 3, tokens
    for token in tokens:
        check_form_token(FORM_KEY, "demo", token, min_seconds=0, max_age=60)
        with pytest.raises(FormTokenError):
            check_form_token(FORM_KEY, "other", token, min_seconds=0, max_age=60)
    for answer in answers:
        assert answer.headers["Cache-Control"] == "no-store"
        assert NGINX_FORM_MARK[0] not in answer.headers
    # Copies served across a turn of the clock's second: the issue time nginx signs is the
    # one it writes (each part of the token is worked out once per request).
    start = time.time()
    while time.time() < start + 1.2:
        token = json.loads(onion(site, CIRCUIT_1, "GET", "/km/p/demo").body)["token"]
        check_form_token(FORM_KEY, "demo", token, min_seconds=0, max_age=60)
        tokens.append(token)
    assert len(set(tokens)) == len(tokens)
    # The cache holds the slot, never a token.
    cached = b"".join(p.read_bytes() for p in (site.root / "cache").rglob("*") if p.is_file())
    assert NGINX_FORM_SLOT.encode() in cached
    assert not any(token.encode() in cached for token in tokens)


def test_posts_and_tor2web_bypass_the_cache(site: NginxSite) -> None:
    via_onion(site, "/p/demo/checkpoints/7")
    serials = set()
    for _ in range(2):
        answer = onion(site, CIRCUIT_1, "POST", "/p/demo/checkpoints/7", b"a=b")
        serials.add(json.loads(answer.body)["serial"])
        assert answer.cache != "HIT"
    assert len(serials) == 2
    a = via_onion(site, "/p/demo/checkpoints/7", X_Tor2web="1")
    b = via_onion(site, "/p/demo/checkpoints/7", X_Tor2web="1")
    assert a.serial != b.serial and "HIT" not in (a.cache, b.cache)


def test_what_the_app_is_told(site: NginxSite) -> None:
    """The circuit comes only from tor's PROXY line; a client's own claims never get through."""
    spoof = {
        "X_Samleng_Circuit": "fc00:dead:beef:4dad::9:9",
        "X_Forwarded_For": "203.0.113.77",
        "X_Forwarded_Host": "evil.example",
        "X_Forwarded_Proto": "https",
        "X_Real_IP": "203.0.113.78",
        "Forwarded": "for=203.0.113.79",
    }
    seen = via_onion(site, "/en/p/demo", CIRCUIT_2, **spoof).headers
    assert seen["x-samleng-circuit"] == CIRCUIT_2
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == seen["host"]
    assert seen["host"].endswith(".onion")
    assert "x-real-ip" not in seen and "forwarded" not in seen
    # Only the petition pages ask for a page with a slot, whatever the client says.
    claim = {NGINX_FORM_REQUEST.replace("-", "_"): "nginx"}
    for path in ("/en/p/demo/receipt", "/p/demo/count.json", "/admin/login"):
        assert NGINX_FORM_REQUEST.lower() not in via_onion(site, path, **claim).headers
    seen = via_clearnet(site, "/en/p/demo", **spoof).headers
    assert "x-samleng-circuit" not in seen
    assert seen["x-forwarded-for"] == "127.0.0.2"
    assert seen["x-forwarded-proto"] == "https"
    assert seen["host"] == seen["x-forwarded-host"] == "petitions.example.org"
    assert "x-real-ip" not in seen and "forwarded" not in seen


def test_only_the_admin_listener_sends_the_admin_secret(site: NginxSite) -> None:
    """A client's X-Samleng-Admin never reaches the app; the admin listener sends the secret.

    Naming the admin's onion host on the public onion listener, where any .onion name is
    accepted, changes nothing.
    """
    claims = [{}, {"X_Samleng_Admin": ADMIN_SECRET}, {"X_Samleng_Admin": "1"}]
    for claim in claims:
        for seen in (
            via_onion(site, "/admin/login", **claim),
            via_onion(site, "/admin/login", Host=ADMIN_ONION_HOST, **claim),
            via_clearnet(site, "/admin/login", **claim),
        ):
            assert "x-samleng-admin" not in seen.headers, claim
        answer = admin(site, "GET", "/admin/login", **claim)
        assert answer.status == 200
        seen_headers = {k.lower(): v for k, v in json.loads(answer.body)["headers"].items()}
        assert seen_headers["x-samleng-admin"] == ADMIN_SECRET
        assert "x-samleng-circuit" not in seen_headers
        assert seen_headers["x-forwarded-for"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("host", "status"),
    [
        (ADMIN_ONION_HOST, 200),
        ("localhost", 200),
        ("localhost:8081", 200),
        ("127.0.0.1:8081", 200),
        # DNS rebinding: a page's own name pointed at the organiser's tunnel.
        ("rebind.attacker.example", 421),
        ("petitions.example.org", 421),
        ("samlengtestn3rwmdqyb4c5znclkz7qvsgmxtf2g5szzvz5ol7cqdwid.onion", 421),
    ],
)
def test_the_admin_listener_serves_its_own_names_only(
    site: NginxSite, host: str, status: int
) -> None:
    assert admin(site, "GET", "/admin/login", host=host).status == status


def test_body_limits_per_listener(site: NginxSite) -> None:
    """A petition draft of 100 KiB reaches the app through the admin listener; the public
    listeners keep the sign form's 16 KiB; the admin's own limit holds at 256 KiB."""
    draft = b"body_km=" + b"%E1%9E%80" * (100 * 1024 // 9)
    answer = admin(site, "POST", "/admin/new", draft)
    assert answer.status == 200, answer.status
    assert json.loads(answer.body)["received"] == len(draft) > 100 * 1000
    for public in (
        onion(site, CIRCUIT_1, "POST", "/admin/new", draft),
        onion(site, CIRCUIT_1, "POST", "/admin/new", draft, Host=ADMIN_ONION_HOST),
        clearnet(site, "POST", "/admin/new", draft),
        onion(site, CIRCUIT_1, "POST", "/en/p/demo/sign", b"x" * (16 * 1024 + 1)),
    ):
        assert public.status == 413
    assert admin(site, "POST", "/admin/new", b"x" * (256 * 1024)).status == 200
    assert admin(site, "POST", "/admin/new", b"x" * (256 * 1024 + 1)).status == 413


def test_limits_and_refusals(site: NginxSite) -> None:
    big = onion(site, CIRCUIT_1, "POST", "/en/p/demo/sign", b"comment=" + b"x" * 17000)
    assert big.status == 413
    wrong_host = onion(site, CIRCUIT_1, "GET", "/en/", Host="petitions.example.org")
    assert wrong_host.status == 421
    for answer in (big, wrong_host, clearnet(site, "GET", "/en/")):
        assert answer.headers.get("Server") == "nginx"  # no version
    https = clearnet(site, "GET", "/en/").headers
    assert https["Strict-Transport-Security"] == "max-age=63072000"
    assert "Strict-Transport-Security" not in via_onion_headers(site)


def via_onion_headers(site: NginxSite) -> dict[str, str]:
    return dict(onion(site, CIRCUIT_1, "GET", "/en/").headers.items())


def test_an_unreachable_app_gets_a_plain_page(tmp_path: Path) -> None:
    nginx = require_program("nginx", "apt-get install nginx-light")
    from tests.deploy.render import free_port

    site = render_nginx(tmp_path, [free_port()])
    with run_nginx(nginx, site, tmp_path / "nginx.out"):
        answer = onion(site, CIRCUIT_1, "GET", "/en/p/demo")
        assert answer.status == 503 and answer.headers["Retry-After"] == "60"
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
        assert "The service is busy" in answer.text and "nginx" not in answer.text
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    assert site.error_log.read_text() == ""  # the failed upstream is logged at "error" only


def test_the_status_page_counts_without_names(site: NginxSite) -> None:
    import urllib.request

    url = f"http://127.0.0.1:{site.status_port}/nginx-status"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    assert text.startswith("Active connections:") and "127.0.0" not in text
