"""A real server and Debian's Chromium for the signer's journeys.

The app runs on 127.0.0.1 under Werkzeug's server in a thread, with a counter of the requests
it receives (so a test can check that a page is one request). Chromium runs headless as
Tor Browser at "Safest" would: JavaScript off. The accessibility audit alone uses a second
session with JavaScript on, because axe-core is a script; the pages themselves have none.
"""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait
from werkzeug.serving import make_server

from samleng.service.app import create_app
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from samleng.service.tlog.store import seal_all
from tests.components import require, require_program
from tests.conftest import add_petition, make_config
from tests.petition_texts import LONG_TEXTS
from tests.service.test_custody import create, make_machines

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE.parents[1] / "test-artifacts" / "browser"
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
SLUG = "land"
PHOTO_SLUG = "faces"  # a petition that takes photo pledges
# As the machine's probe found: without these, headless Chromium tries to reach Google.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
VIEWPORTS = {
    "desktop": {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
    "phone": {"width": 360, "height": 740, "deviceScaleFactor": 1, "mobile": True},
}


@dataclass
class Site:
    """The running app: its address, and the paths it was asked for since the last reset."""

    app: Flask
    base: str
    requests: list[str] = field(default_factory=list)
    # The key holders' machines of the photo petition (tests/service/test_custody.py).
    machines: list[Path] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def seal(self) -> None:
        """Seal pending signatures into the log, as the scheduler would."""
        seal_all(services(self.app).engine, services(self.app).vault)


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The app on SQLite with the long petition ``land``, served on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("site")
    app = create_app(make_config(tmp, f"sqlite:///{tmp / 'samleng.sqlite3'}"))
    upgrade(services(app).engine)
    add_petition(app, slug=SLUG, texts=LONG_TEXTS, closes_on=dt.date(2027, 3, 8))
    # Photo pledges in the custody of 3 organisations, 2 of which open them (on "machines"
    # of their own: folders with each one's key file).
    machines = make_machines(tmp / "machines")
    status, output = create(app, PHOTO_SLUG, machines, "--threshold", "2", "--photos", "optional")
    assert status == 0, output
    opened = app.test_cli_runner().invoke(args=["petition", "open", PHOTO_SLUG])
    assert opened.exit_code == 0, opened.output
    site = Site(app=app, base="", machines=machines)
    inner = app.wsgi_app

    def counting(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        site.requests.append(environ["PATH_INFO"])
        return inner(environ, start_response)

    app.wsgi_app = counting  # type: ignore[method-assign]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    site.base = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield site
    server.shutdown()
    thread.join(timeout=5)
    services(app).engine.dispose()


def chromium(profile: Path, *, javascript: bool) -> webdriver.Chrome:
    """Debian's Chromium through chromedriver, headless; JavaScript off unless asked."""
    binary = require_program("chromium", "apt-get install chromium")
    driver_path = require_program("chromedriver", "apt-get install chromium-driver")
    options = Options()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1280,900")
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    return driver


# What chromedriver says, besides StaleElementReferenceException, when asked about an element of
# a document that has just been replaced (seen with Chromium 156 when the answer comes quickly).
_REPLACED = ("does not belong to the document", "No node with given id")


def _replaced(old: WebElement) -> Callable[[webdriver.Chrome], bool]:
    def gone(_driver: webdriver.Chrome) -> bool:
        try:
            old.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if any(words in (error.msg or "") for words in _REPLACED):
                return True
            raise
        return False

    return gone


def click_and_wait(driver: webdriver.Chrome, by: str, selector: str) -> None:
    """Click a link or button and wait until the next page has replaced this one."""
    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(by, selector).click()
    wait_until_replaced(driver, page)


def wait_until_replaced(driver: webdriver.Chrome, page: WebElement) -> None:
    """Wait until the document whose ``html`` element is ``page`` has been replaced by the next."""
    WebDriverWait(driver, 30).until(_replaced(page))


def set_viewport(driver: webdriver.Chrome, name: str) -> None:
    """Emulate a screen: ``desktop`` (1280x900) or ``phone`` (360 px wide, touch)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", VIEWPORTS[name])


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """Save the whole page (not only the visible part) as test-artifacts/browser/NAME.png."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def horizontal_overflow(driver: webdriver.Chrome) -> float:
    """How many CSS pixels the page is wider than the screen (0 when it fits)."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    return float(metrics["cssContentSize"]["width"] - metrics["cssLayoutViewport"]["clientWidth"])


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's script, installed from tests/browser/package-lock.json on first use."""
    if not AXE.exists():
        npm = require_program("npm", "install nodejs (see deploy/debian-packages.txt)")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        require("axe-core", done.returncode == 0 and AXE.exists(), done.stderr[-2000:])
    return AXE.read_text(encoding="utf-8")
