"""The read path through nginx, warm microcache, against nginx serving static files (issue 21).

The real deploy/nginx configuration (rendered as the tests render it) in front of one
gunicorn serving the demo petition, signed 300 times and sealed, so that the log has a full
tile. For each public page a viral petition's readers ask for (the petition page, count.json,
the checkpoint, a full tile), a static file of the same size is served by the same nginx
server; ``wrk`` loads the page and its static twin in turn, interleaved round by round, and
the ratio of their rates is the figure (target >= 0.8). The petition page is the one that
costs nginx something on a hit: set-misc mints a form token for every copy and sub_filter
puts it in the page. Also printed: how much CPU the app spent while nginx served each page (the
microcache's refills: about one request per second for the petition page, per 5 s for the
rest), and a check that every copy of the petition page carried a token of its own.

For comparison, not a target: the same petition page kept by the same cache but served
without a token of its own per copy (a location only this bench adds, which keeps one copy
of the page as the app made it): what the page would cost nginx if the sign form were not
on it, the way the count, checkpoint and tiles are served.

nginx's onion listener is used without tor's PROXY line (wrk cannot send one), which is the
only change to the configuration besides paths and ports.

    .venv/bin/python bench/read_path.py [--rounds 5] [--seconds 8] [--connections 32]
        [--no-record]
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
import subprocess
import tempfile
import urllib.parse
from pathlib import Path

from common import (
    UNLIMITED,
    VENV_BIN,
    bench_env,
    form_tokens,
    gunicorn,
    load_average,
    machine,
    median,
    note,
    prepare_demo,
    record,
    server_cpu,
)

from samleng.service.platform.config import read_master_key
from samleng.service.platform.keys import derive_key
from tests.deploy.clients import run_nginx
from tests.deploy.render import ONION_HOST, render_nginx

TARGET = 0.8
WRK = shutil.which("wrk") or "/usr/bin/wrk"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PAGES = {
    "petition page": "/en/p/demo",
    "count.json": "/p/demo/count.json",
    "checkpoint": "/p/demo/checkpoint",
    "full tile": "/p/demo/tile/0/000",
}
# Not a page readers ask for: the petition page kept and served without sub_filter or
# set-misc, measured beside the others for comparison only (no target).
COMPARISON = {"page, no token": "/bench/page-without-token"}
MEASURED = {**PAGES, **COMPARISON}
TOKEN = re.compile(rb'name="form_token" value="([^"]+)"')


def twin_of(name: str) -> str:
    """The file name of a page's static twin."""
    return re.sub(r"[^a-z0-9.]+", "-", name)


def get(port: int, path: str) -> tuple[int, bytes]:
    """One GET through the onion listener (no PROXY line); status and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Host": ONION_HOST})
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def sign(base: str, tokens: object, count: int) -> None:
    """``count`` signatures on the demo petition, straight to gunicorn."""
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    for n in range(count):
        body = urllib.parse.urlencode(
            {"form_token": tokens(), "identifier": f"012 {700000 + n}", "consent": "yes"}  # type: ignore[operator]
        )
        conn.request("POST", "/en/p/demo/sign", body=body, headers=headers)
        answer = conn.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"signature {n}: {answer.status}")
    conn.close()


def wrk(port: int, path: str, seconds: float, connections: int) -> float:
    """wrk's rate for ``path`` on the onion listener; fails on any non-2xx answer."""
    done = subprocess.run(
        [WRK, "-t", "2", "-c", str(connections), "-d", f"{seconds:.0f}s",
         "-H", f"Host: {ONION_HOST}", f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    bad = re.search(r"Non-2xx or 3xx responses:\s+([0-9]+)", done.stdout)
    if bad:
        raise RuntimeError(f"{path}: {bad.group(1)} non-2xx answers\n{done.stdout}")
    return float(re.search(r"Requests/sec:\s+([0-9.]+)", done.stdout).group(1))  # type: ignore[union-attr]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-record", action="store_true", help="do not write to README")
    args = parser.parse_args(argv)
    header = machine()
    note(header)
    work = Path(tempfile.mkdtemp(prefix="samleng-read-"))
    instance = work / "instance"
    env = bench_env(
        instance,
        **UNLIMITED,
        SEAL_INTERVAL="3600",
    )
    prepare_demo(env)
    rows: dict[str, list[float]] = {name: [] for name in MEASURED}
    app_ms: dict[str, list[float]] = {name: [] for name in MEASURED}
    sizes: dict[str, int] = {}
    with gunicorn("samleng.service.wsgi:app", env) as app:
        note("signing 300 times and sealing, for a full tile")
        sign(app.base, form_tokens(instance), 300)
        subprocess.run(
            [str(VENV_BIN / "samleng"), "seal"], env=env, check=True, stdout=subprocess.DEVNULL
        )
        port = int(app.base.rsplit(":", 1)[1])
        key = derive_key(read_master_key(instance), "form-token")
        site = render_nginx(work / "nginx", [port], form_key=key)
        conf = site.conf.parent / "samleng.conf"
        conf.write_text(
            conf.read_text().replace(
                f"listen 127.0.0.1:{site.onion_port} proxy_protocol",
                f"listen 127.0.0.1:{site.onion_port}",
            )
        )
        static = work / "static"
        static.mkdir()
        shared = site.conf.parent / "samleng-app.conf"
        shared.write_text(
            shared.read_text()
            + f"\n# The bench's static twins.\nlocation ^~ /static/ {{ root {work}; }}\n"
            + "# The bench's comparison: the petition page from the cache, one copy for all.\n"
            + "location = /bench/page-without-token {\n"
            + "    proxy_cache samleng_cache;\n"
            + "    proxy_ignore_headers Cache-Control Expires;\n"
            + "    proxy_cache_valid 200 1s;\n"
            + "    proxy_pass http://samleng_app/en/p/demo;\n"
            + "}\n"
        )
        with run_nginx(NGINX, site, work / "nginx.out"):
            tokens = set()
            for name, path in MEASURED.items():
                status, body = get(site.onion_port, path)
                if status != 200:
                    raise RuntimeError(f"{path}: {status}")
                sizes[name] = len(body)
                (static / twin_of(name)).write_bytes(b"x" * len(body))
                found = TOKEN.search(body)
                if found and name in PAGES:
                    tokens.add(found.group(1))
            for _ in range(20):
                found = TOKEN.search(get(site.onion_port, PAGES["petition page"])[1])
                assert found, "a petition page without a form token"
                tokens.add(found.group(1))
            distinct = len(tokens)
            note(f"sizes {sizes}; warming up")
            for path in MEASURED.values():
                wrk(site.onion_port, path, 2, args.connections)
            for round_ in range(1, args.rounds + 1):
                for name, path in MEASURED.items():
                    twin = "/static/" + twin_of(name)
                    order = [(path, True), (twin, False)]
                    if round_ % 2 == 0:
                        order.reverse()
                    rates = {}
                    for target, is_page in order:
                        before = server_cpu(app)
                        rates[is_page] = wrk(
                            site.onion_port, target, args.seconds, args.connections
                        )
                        if is_page:
                            app_ms[name].append((server_cpu(app) - before) * 1000 / args.seconds)
                    rows[name].append(rates[True] / rates[False])
                    note(
                        f"round {round_}, {name}: {rates[True]:.0f}/s vs static "
                        f"{rates[False]:.0f}/s = {rates[True] / rates[False]:.3f}; "
                        f"load {load_average()}"
                    )
    shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"machine: {header}",
        "nginx: deploy/nginx (worker_processes auto), onion listener without the PROXY line; "
        "one gunicorn (deploy/gunicorn.conf.py) on SQLite behind it; demo petition with 300 "
        "signatures, sealed",
        f"load: wrk -t 2 -c {args.connections}, {args.rounds} interleaved rounds of "
        f"{args.seconds:.0f} s per page and its static twin, after 2 s warm-up",
        "page             bytes  ratio to static (median; rounds)            app CPU ms/s",
        *(
            f"{name:<15} {sizes[name]:6d}  {median(rows[name]):.3f} ("
            + ", ".join(f"{r:.3f}" for r in rows[name])
            + f")  {median(app_ms[name]):6.1f}"
            for name in MEASURED
        ),
        f"target >= {TARGET} for each but the comparison: "
        + ", ".join(
            f"{name} {'MET' if median(rows[name]) >= TARGET else 'MISSED'}" for name in PAGES
        ),
        f"petition page: {distinct} distinct form tokens in 21 copies served by nginx",
    ]
    print("\n".join(lines))
    if not args.no_record:
        record("read_path.py", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
