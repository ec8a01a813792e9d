"""The signer's journey in Chromium with JavaScript off, in Khmer and English, desktop and phone.

Screenshots of every step are written to test-artifacts/browser/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask_babel import gettext
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from sqlalchemy import select

from samleng.crypto.audit import main as audit
from samleng.crypto.leaf import LeafKind, decode_leaf
from samleng.service.admin.accounts import create_account, find_account
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import Leaf, Petition
from tests.browser.conftest import (
    PHOTO_SLUG,
    SLUG,
    VIEWPORTS,
    Site,
    chromium,
    click_and_wait,
    horizontal_overflow,
    screenshot,
    set_viewport,
    wait_until_replaced,
)
from tests.petition_texts import LONG_TEXTS
from tests.service import photofiles as files
from tests.service.test_custody import Coalition, open_shares
from tests.service.test_delivery import pdf_text
from tests.service.test_photo_pledges import pdf_images

RECEIPT = re.compile(r"[A-Z2-7]{4}(-[A-Z2-7]{1,4}){6}")
PHONES = {
    ("km", "phone"): "012 300 001",
    ("km", "desktop"): "012 300 002",
    ("en", "phone"): "+855 12 300 003",
    ("en", "desktop"): "012 300 004",
}


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """One Chromium for the module, JavaScript off (Tor Browser at "Safest")."""
    driver = chromium(tmp_path_factory.mktemp("profile"), javascript=False)
    yield driver
    driver.quit()


def translated(site: Site, lang: str, message: str) -> str:
    """``message`` as the page in ``lang`` shows it."""
    with site.app.test_request_context(f"/{lang}/"):
        return gettext(message)


def text_of(browser: webdriver.Chrome) -> str:
    return " ".join(browser.find_element(By.TAG_NAME, "body").text.split())


def follow(browser: webdriver.Chrome, by: str, selector: str) -> None:
    """Click a link or button and wait until the next page has replaced this one."""
    click_and_wait(browser, by, selector)


def step(site: Site, browser: webdriver.Chrome, viewport: str, path: str) -> None:
    """After a navigation: it was one request, and the page fits a 360 px screen."""
    assert site.requests == [path], f"{path}: the page made requests {site.requests}"
    site.requests.clear()
    if viewport == "phone":
        assert horizontal_overflow(browser) <= 0, f"{path} is wider than 360 px"


def test_javascript_is_off(browser: webdriver.Chrome) -> None:
    browser.get("data:text/html,<noscript><p id=off>off</p></noscript>")
    assert browser.find_element(By.ID, "off").is_displayed()


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
@pytest.mark.parametrize("lang", ["km", "en"])
def test_sign_and_check_the_receipt(
    site: Site, browser: webdriver.Chrome, lang: str, viewport: str
) -> None:
    name = f"{lang}-{viewport}"
    petition = f"/{lang}/p/{SLUG}"
    set_viewport(browser, viewport)
    site.requests.clear()

    browser.get(site.url(f"/{lang}/"))
    step(site, browser, viewport, f"/{lang}/")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == lang
    screenshot(browser, f"{name}-1-index")
    follow(browser, By.LINK_TEXT, LONG_TEXTS[lang]["title"])
    step(site, browser, viewport, petition)
    screenshot(browser, f"{name}-2-petition")
    body = text_of(browser)
    assert translated(site, lang, "Sign this petition") in body
    assert ("ថ្ងៃទី៨ ខែមីនា ឆ្នាំ២០២៧" if lang == "km" else "March 8, 2027") in body

    browser.find_element(By.ID, "f-identifier").send_keys(PHONES[lang, viewport])
    browser.find_element(By.ID, "f-locality").send_keys("ភ្នំពេញ" if lang == "km" else "Kampot")
    browser.find_element(By.ID, "f-consent").click()
    follow(browser, By.CSS_SELECTOR, "form[action*='/sign'] button")
    step(site, browser, viewport, f"{petition}/sign")
    receipt = browser.find_element(By.CLASS_NAME, "receipt")
    code = receipt.text.replace("\n", "")
    assert RECEIPT.fullmatch(code), code
    assert code not in browser.current_url  # the code never goes into a URL
    assert float(receipt.value_of_css_property("font-size").removesuffix("px")) >= 20
    screenshot(browser, f"{name}-3-answer")
    if viewport == "desktop":
        printed_receipt(browser, name)

    follow(browser, By.CSS_SELECTOR, f"main a[href='{petition}/receipt']")
    step(site, browser, viewport, f"{petition}/receipt")
    # Typed as a person might: small letters, spaces instead of dashes.
    browser.find_element(By.ID, "f-receipt").send_keys(code.lower().replace("-", " "))
    follow(browser, By.CSS_SELECTOR, "main form button")
    step(site, browser, viewport, f"{petition}/receipt")
    waiting = "This receipt code is not in the log yet."
    assert translated(site, lang, waiting) in text_of(browser)

    site.seal()
    follow(browser, By.CSS_SELECTOR, "main form button")
    step(site, browser, viewport, f"{petition}/receipt")
    assert translated(site, lang, "Your signature is counted.") in text_of(browser)
    screenshot(browser, f"{name}-4-counted")


def test_withdraw_in_khmer(site: Site, browser: webdriver.Chrome) -> None:
    """Sign, wait for the batch, then withdraw from the receipt page: all without script."""
    petition = f"/km/p/{SLUG}"
    set_viewport(browser, "phone")
    browser.get(site.url(petition))
    browser.find_element(By.ID, "f-identifier").send_keys("012 400 099")
    browser.find_element(By.ID, "f-consent").click()
    follow(browser, By.CSS_SELECTOR, "form[action*='/sign'] button")
    code = browser.find_element(By.CLASS_NAME, "receipt").text.replace("\n", "")
    site.seal()
    browser.get(site.url(f"{petition}/receipt"))
    browser.find_element(By.ID, "f-receipt").send_keys(code)
    follow(browser, By.CSS_SELECTOR, "main form button")
    assert translated(site, "km", "Your signature is counted.") in text_of(browser)
    follow(browser, By.CSS_SELECTOR, "form[action*='/withdraw'] button")
    assert translated(site, "km", "Your signature is being withdrawn.") in text_of(browser)
    assert code not in browser.current_url
    site.seal()
    browser.get(site.url(f"{petition}/receipt"))
    browser.find_element(By.ID, "f-receipt").send_keys(code)
    follow(browser, By.CSS_SELECTOR, "main form button")
    assert translated(site, "km", "Your signature was withdrawn.") in text_of(browser)
    screenshot(browser, "km-withdrawn")


def test_sign_with_a_photo_in_khmer(site: Site, browser: webdriver.Chrome, tmp_path: Path) -> None:
    """A photo pledge from a phone, without script: a hostile file is refused with the reason
    in Khmer; a camera photo is taken, cleaned and sealed as a kind 0x04 leaf."""
    glued, photo = tmp_path / "glued.jpg", tmp_path / "pledge.jpg"
    glued.write_bytes(files.zip_appended())
    photo.write_bytes(files.camera_jpeg(orientation=6))
    petition = f"/km/p/{PHOTO_SLUG}"
    set_viewport(browser, "phone")
    browser.get(site.url(petition))
    browser.find_element(By.ID, "f-identifier").send_keys("012 400 777")
    browser.find_element(By.ID, "f-photo").send_keys(str(glued))
    browser.find_element(By.ID, "f-photo_consent-recipient").click()
    browser.find_element(By.ID, "f-consent").click()
    follow(browser, By.CSS_SELECTOR, "form[action*='/sign'] button")
    message = (
        "This file holds more than a photo. Please send the photo alone, as your camera saved it."
    )
    assert translated(site, "km", message) in browser.find_element(By.ID, "e-photo").text
    screenshot(browser, "km-photo-refused")
    # The form comes back with what was typed, but never a file: the photo is chosen again.
    assert browser.find_element(By.ID, "f-identifier").get_attribute("value") == "012 400 777"
    browser.find_element(By.ID, "f-photo").send_keys(str(photo))
    browser.find_element(By.ID, "f-photo_consent-recipient").click()
    consent = browser.find_element(By.ID, "f-consent")
    if not consent.is_selected():
        consent.click()
    screenshot(browser, "km-photo-form")
    follow(browser, By.CSS_SELECTOR, "form[action*='/sign'] button")
    assert RECEIPT.fullmatch(browser.find_element(By.CLASS_NAME, "receipt").text.replace("\n", ""))
    site.seal()
    with site.app.app_context():
        kinds = [
            decode_leaf(leaf).kind
            for leaf in get_session().scalars(
                select(Leaf.leaf).join(Petition).where(Petition.slug == PHOTO_SLUG)
            )
        ]
    assert kinds.count(LeafKind.PHOTO) == 1
    counts = site.app.test_client().get(f"/p/{PHOTO_SLUG}/count.json").get_json()
    assert (counts["count"], counts["photos"]) == (1, 1)
    # Offline, two of the three organisations open the photo and lay out the banner.
    runner = site.app.test_cli_runner()
    bundle, details = tmp_path / "bundle", tmp_path / "details.bin"
    assert runner.invoke(args=["export", PHOTO_SLUG, str(bundle)]).exit_code == 0
    assert runner.invoke(args=["export-details", PHOTO_SLUG, str(details)]).exit_code == 0
    coalition = Coalition(slug=PHOTO_SLUG, machines=site.machines, work=tmp_path)
    shares = [str(open_shares(coalition, org)) for org in (2, 3)]
    photos, banner = tmp_path / "photos", tmp_path / "banner.pdf"
    extract = ["photos", "extract", *shares, "--details", str(details), "--bundle", str(bundle)]
    assert audit([*extract, "--out", str(photos)]) == 0
    [row] = (photos / "photos.csv").read_text().splitlines()[1:]
    leaf, consent, name = row.split(",")
    assert consent == "recipient"
    with Image.open(photos / name) as image:
        assert image.format == "JPEG" and image.size == (480, 640)  # upright, as EXIF said
    assert audit(
        ["banner", "--photos", str(photos), "--bundle", str(bundle), "--out", str(banner),
         "--audience", "recipient", "--width-cm", "100", "--height-cm", "60", "--dpi", "60"]
    ) == 0  # fmt: skip
    assert pdf_images(banner) == 1
    index = " ".join(pdf_text(banner).split())
    assert re.search(rf"\b1 1 1 {leaf} recipient\b", index), index


def test_paper_forms_from_the_keyboard_alone(site: Site, browser: webdriver.Chrome) -> None:
    """An organiser types paper forms without touching the mouse: the identifier has the
    focus when the page opens, Tab moves on, Enter saves, and the empty form is back with
    the focus in place for the next sheet."""
    with site.app.app_context():
        session = get_session()
        if find_account(session, "typist") is None:
            create_account(session, "typist", "admin", "a long passphrase for paper forms")
            session.commit()
    set_viewport(browser, "desktop")
    browser.delete_all_cookies()
    browser.get(site.url("/admin/language/en?next=/admin/login"))
    browser.find_element(By.ID, "f-name").send_keys("typist")
    browser.find_element(By.ID, "f-password").send_keys("a long passphrase for paper forms")
    follow(browser, By.CSS_SELECTOR, "main form button")
    before = site.app.test_client().get(f"/p/{SLUG}/count.json").get_json()
    browser.get(site.url(f"/admin/p/{SLUG}/paper"))
    for number, (phone, name) in enumerate((("012 555 901", "Dara"), ("097 555 902", "")), 1):
        assert browser.switch_to.active_element.get_attribute("id") == "f-identifier"
        page = browser.find_element(By.TAG_NAME, "html")
        keys = ActionChains(browser).send_keys(phone).send_keys(Keys.TAB).send_keys(name)
        keys.send_keys(Keys.ENTER).perform()
        wait_until_replaced(browser, page)
        assert f"You have entered {number} form" in text_of(browser)
    screenshot(browser, "admin-paper")
    site.seal()
    after = site.app.test_client().get(f"/p/{SLUG}/count.json").get_json()
    assert after["paper"] == before["paper"] + 2 and after["count"] == before["count"] + 2


def printed_receipt(browser: webdriver.Chrome, name: str) -> None:
    """On paper: the code and where to check it, without the menus, form links and footer."""
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        assert not browser.find_element(By.TAG_NAME, "header").is_displayed()
        assert not browser.find_element(By.TAG_NAME, "footer").is_displayed()
        assert browser.find_element(By.CLASS_NAME, "receipt").is_displayed()
        where = browser.find_element(By.CSS_SELECTOR, "p.print")
        assert where.is_displayed() and f"/p/{SLUG}/receipt" in where.text
        screenshot(browser, f"{name}-3-answer-print")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})


@pytest.mark.parametrize("lang", ["km", "en"])
def test_focus_is_visible(site: Site, browser: webdriver.Chrome, lang: str) -> None:
    """Tabbing through the petition page: every stop shows a thick outline."""
    set_viewport(browser, "desktop")
    browser.get(site.url(f"/{lang}/p/{SLUG}"))
    stops = set()
    for _ in range(14):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        active = browser.switch_to.active_element
        stops.add(active.tag_name)
        assert active.value_of_css_property("outline-style") != "none", active.tag_name
        assert float(active.value_of_css_property("outline-width").removesuffix("px")) >= 2
    assert {"a", "input", "textarea", "button"} <= stops, stops


def test_proof_download(site: Site, browser: webdriver.Chrome, tmp_path: Path) -> None:
    set_viewport(browser, "desktop")
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    browser.get(site.url(f"/en/p/{SLUG}"))
    browser.find_element(By.ID, "f-identifier").send_keys("012 300 005")
    browser.find_element(By.ID, "f-consent").click()
    follow(browser, By.CSS_SELECTOR, "form[action*='/sign'] button")
    code = browser.find_element(By.CLASS_NAME, "receipt").text.replace("\n", "")
    site.seal()
    browser.get(site.url(f"/en/p/{SLUG}/receipt"))
    browser.find_element(By.ID, "f-receipt").send_keys(code)
    follow(browser, By.CSS_SELECTOR, "main form button")
    browser.find_element(By.CSS_SELECTOR, "input[value=proof] ~ button").click()
    proof = tmp_path / f"{SLUG}-receipt-proof.txt"
    deadline = time.monotonic() + 30
    while not proof.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proof.read_text().startswith("c2sp.org/tlog-proof@v1\n")


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_error_summary_links_to_the_field(
    site: Site, browser: webdriver.Chrome, viewport: str
) -> None:
    set_viewport(browser, viewport)
    browser.get(site.url(f"/km/p/{SLUG}"))
    browser.find_element(By.ID, "f-identifier").send_keys("12")
    browser.find_element(By.ID, "f-consent").click()
    follow(browser, By.CSS_SELECTOR, "form[action*='/sign'] button")
    summary = browser.find_element(By.CSS_SELECTOR, ".errors[role=alert]")
    link = summary.find_element(By.CSS_SELECTOR, "a[href='#f-identifier']")
    # The page opens at the errors, not at the top of a long petition text.
    top = browser.execute_script("return arguments[0].getBoundingClientRect().top", summary)
    assert 0 <= top < VIEWPORTS[viewport]["height"], top
    screenshot(browser, f"km-{viewport}-5-error")
    link.click()
    assert browser.current_url.endswith("#f-identifier")
    field = browser.find_element(By.ID, "f-identifier")
    assert field.get_attribute("aria-invalid") == "true"
    assert field.get_attribute("value") == "12"  # what the signer typed is kept


def test_language_switch_keeps_the_page(site: Site, browser: webdriver.Chrome) -> None:
    set_viewport(browser, "phone")
    browser.get(site.url(f"/km/p/{SLUG}"))
    follow(browser, By.CSS_SELECTOR, "a[hreflang=en]")
    assert browser.current_url == site.url(f"/en/p/{SLUG}")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    follow(browser, By.CSS_SELECTOR, "a[hreflang=km]")
    assert browser.current_url == site.url(f"/km/p/{SLUG}")


@pytest.mark.parametrize("path", ["/km/safety", "/en/safety"])
def test_safety_page_fits_a_phone(site: Site, browser: webdriver.Chrome, path: str) -> None:
    set_viewport(browser, "phone")
    browser.get(site.url(path))
    assert horizontal_overflow(browser) <= 0
    screenshot(browser, f"{path.split('/')[1]}-phone-6-safety")


def test_khmer_renders_with_a_khmer_font(site: Site, browser: webdriver.Chrome) -> None:
    """The system font stack finds a font with Khmer glyphs (no web font is loaded)."""
    browser.get(site.url(f"/km/p/{SLUG}"))
    browser.execute_cdp_cmd("DOM.enable", {})
    browser.execute_cdp_cmd("CSS.enable", {})
    root = browser.execute_cdp_cmd("DOM.getDocument", {})["root"]["nodeId"]
    for selector in ("h1", "label", "button"):
        node = browser.execute_cdp_cmd("DOM.querySelector", {"nodeId": root, "selector": selector})
        fonts = browser.execute_cdp_cmd("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})
        families = [font["familyName"] for font in fonts["fonts"]]
        assert any("Khmer" in family for family in families), (selector, families)
        assert not any(font["isCustomFont"] for font in fonts["fonts"])
    browser.execute_cdp_cmd("CSS.disable", {})
    browser.execute_cdp_cmd("DOM.disable", {})


def test_khmer_typography(site: Site, browser: webdriver.Chrome) -> None:
    """Khmer labels and errors are bold (600 draws as 400 in Khmer fonts), hints are not
    small, underlines pass below the subscripts, headings wrap balanced."""
    set_viewport(browser, "phone")
    browser.get(site.url(f"/km/p/{SLUG}"))
    label = browser.find_element(By.CSS_SELECTOR, "label[for=f-identifier]")
    assert label.value_of_css_property("font-weight") == "700"
    hint = browser.find_element(By.CSS_SELECTOR, "label .hint")
    body_size = browser.find_element(By.TAG_NAME, "body").value_of_css_property("font-size")
    assert hint.value_of_css_property("font-size") == body_size
    link = browser.find_element(By.CSS_SELECTOR, "main a")
    size = float(link.value_of_css_property("font-size").removesuffix("px"))
    offset = float(link.value_of_css_property("text-underline-offset").removesuffix("px"))
    assert offset >= 0.45 * size
    heading = browser.find_element(By.TAG_NAME, "h1")
    assert heading.value_of_css_property("text-wrap") in ("balance", "wrap balance")
