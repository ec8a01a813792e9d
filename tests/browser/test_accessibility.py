"""axe-core audits the signer's pages in Khmer and English: no serious or critical violation.

axe is a script, so this module's Chromium runs JavaScript; the harness injects axe through
WebDriver. The pages themselves contain no script (tests/service/test_pages.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from samleng.service.admin.accounts import create_account, find_account
from samleng.service.platform.dbsession import get_session
from tests.browser.conftest import (
    ARTIFACTS,
    PHOTO_SLUG,
    SLUG,
    Site,
    chromium,
    click_and_wait,
    set_viewport,
)

# A password for the admin's pages: the account is made once per language, at the pinned cost.
ADMIN_PASSWORD = "a long passphrase for the audit only"

BLOCKING = ("serious", "critical")
# WCAG 2.1 A and AA, and axe's best practices (landmarks, headings, ...).
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


@pytest.fixture(scope="module")
def audited(
    tmp_path_factory: pytest.TempPathFactory, axe_source: str
) -> Iterator[webdriver.Chrome]:
    """One Chromium for the module, JavaScript on for axe only, which every page gets."""
    driver = chromium(tmp_path_factory.mktemp("profile"), javascript=True)
    driver.set_script_timeout(30)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": axe_source})
    yield driver
    driver.quit()


def audit(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """Run axe on the current page; its violations."""
    result: dict[str, Any] = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: arguments[0]},"
        " resultTypes: ['violations']})"
        ".then(r => done({violations: r.violations}), e => done({error: String(e)}));",
        TAGS,
    )
    assert "error" not in result, result
    violations: list[dict[str, Any]] = result["violations"]
    return violations


def report(name: str, found: dict[str, list[dict[str, Any]]]) -> None:
    """Every violation, of any impact, as a test artefact to read."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    text = "\n".join(f"{where}:\n{summary(violations)}" for where, violations in found.items())
    (ARTIFACTS / f"axe-{name}.txt").write_text(text + "\n", encoding="utf-8")


def summary(violations: list[dict[str, Any]]) -> str:
    return json.dumps(
        [
            {
                "id": v["id"],
                "impact": v["impact"],
                "help": v["help"],
                "nodes": [n["html"][:160] for n in v["nodes"][:3]],
            }
            for v in violations
        ],
        ensure_ascii=False,
        indent=1,
    )


def assert_none_blocking(found: dict[str, list[dict[str, Any]]]) -> None:
    """No page has a serious or critical violation; the message lists those it has."""
    blocking = {
        where: [v for v in violations if v["impact"] in BLOCKING]
        for where, violations in found.items()
    }
    assert not any(blocking.values()), "\n".join(
        f"{where}:\n{summary(violations)}" for where, violations in blocking.items() if violations
    )


def submit(driver: webdriver.Chrome, button: str) -> None:
    """Press a form's button and wait for the answer page."""
    click_and_wait(driver, By.CSS_SELECTOR, button)


def test_axe_finds_a_known_violation(audited: webdriver.Chrome) -> None:
    """The harness itself works: an unlabelled field in faint grey is reported."""
    audited.get(
        "data:text/html,<html lang=en><title>t</title><main><p style='color:%23ccc'>"
        "faint</p><input></main></html>"
    )
    found = {v["id"]: v["impact"] for v in audit(audited)}
    assert found.get("label") == "critical" and found.get("color-contrast") == "serious", found


@pytest.mark.parametrize("lang", ["km", "en"])
def test_no_serious_violation(site: Site, audited: webdriver.Chrome, lang: str) -> None:
    """At 360 px, where layout problems show first (colours and names do not depend on it)."""
    viewport = "phone"
    set_viewport(audited, viewport)
    found: dict[str, list[dict[str, Any]]] = {}
    pages = (f"/{lang}/", f"/{lang}/p/{SLUG}", f"/{lang}/safety", f"/{lang}/p/{SLUG}/updates")
    for path in (*pages, f"/{lang}/p/{PHOTO_SLUG}"):
        audited.get(site.url(path))
        found[path] = audit(audited)

    audited.get(site.url(f"/{lang}/p/{SLUG}"))
    audited.find_element(By.ID, "f-identifier").send_keys("12")  # not a phone number
    audited.find_element(By.ID, "f-consent").click()
    submit(audited, "form[action*='/sign'] button")
    found["sign errors"] = audit(audited)

    audited.get(site.url(f"/{lang}/p/{SLUG}"))
    phone = {"km": "012 400 001", "en": "012 400 002"}[lang]
    audited.find_element(By.ID, "f-identifier").send_keys(phone)
    audited.find_element(By.ID, "f-consent").click()
    submit(audited, "form[action*='/sign'] button")
    code = audited.find_element(By.CLASS_NAME, "receipt").text.replace("\n", "")
    found["answer"] = audit(audited)

    site.seal()
    audited.get(site.url(f"/{lang}/p/{SLUG}/receipt"))
    found["receipt form"] = audit(audited)
    audited.find_element(By.ID, "f-receipt").send_keys(code)
    submit(audited, "main form button")
    assert audited.find_elements(By.CSS_SELECTOR, "input[value=proof]"), "not counted"
    found["receipt counted"] = audit(audited)

    audited.get(site.url(f"/{lang}/p/{SLUG}/receipt"))
    audited.find_element(By.ID, "f-receipt").send_keys("not a code")
    submit(audited, "main form button")
    found["receipt error"] = audit(audited)
    report(f"{lang}-{viewport}", found)

    assert_none_blocking(found)


@pytest.mark.parametrize("lang", ["km", "en"])
def test_no_serious_violation_in_the_admin(
    site: Site, audited: webdriver.Chrome, lang: str
) -> None:
    """The organisers' pages, logged in, in each language, at a desktop's width."""
    name = f"axe-{lang}"
    with site.app.app_context():
        session = get_session()
        if find_account(session, name) is None:
            create_account(session, name, "admin", ADMIN_PASSWORD)
            session.commit()
    set_viewport(audited, "desktop")
    audited.delete_all_cookies()
    found: dict[str, list[dict[str, Any]]] = {}
    audited.get(site.url(f"/admin/language/{lang}?next=/admin/login"))
    found["login"] = audit(audited)
    audited.find_element(By.ID, "f-name").send_keys(name)
    audited.find_element(By.ID, "f-password").send_keys(ADMIN_PASSWORD)
    submit(audited, "main form button")
    assert audited.current_url.endswith("/admin/"), audited.current_url
    for path in (
        "/admin/",
        "/admin/new",
        f"/admin/p/{SLUG}",
        f"/admin/p/{SLUG}/preview/{lang}",
        f"/admin/p/{SLUG}/timeline",
        f"/admin/p/{SLUG}/paper",
        "/admin/accounts",
        "/admin/organisations",
        "/admin/audit",
        "/admin/me",
    ):
        audited.get(site.url(path))
        assert audited.find_element(By.TAG_NAME, "html").get_attribute("lang") == lang, path
        found[path] = audit(audited)
    audited.get(site.url("/admin/new"))
    audited.find_element(By.ID, "f-slug").send_keys("Not A Slug")  # refused, with the texts
    submit(audited, "main form button[type=submit]")
    found["draft errors"] = audit(audited)
    report(f"admin-{lang}", found)
    assert_none_blocking(found)
