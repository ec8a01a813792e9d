"""delivery.pdf in the export bundle, and the public bundle.zip of a closed petition.

The PDF is read back with poppler's pdftotext and pdffonts; its first page is kept as
test-artifacts/delivery-page-1.png (and the last, the verification page), to look at.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from werkzeug.test import TestResponse

from samleng.crypto.bundle import verify_bundle
from samleng.service.petitions.lifecycle import close_petition, forget_petition
from samleng.service.platform.context import services
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import get_petition
from samleng.service.tlog.delivery import (
    DeliveryError,
    DeliveryFacts,
    FormalLetter,
    delivery_html,
    lay_out_delivery,
    render_delivery_pdf,
)
from samleng.service.tlog.linebreaks import ZWSP, is_cluster_boundary, is_khmer
from samleng.service.tlog.store import seal_all
from tests.components import require_program
from tests.conftest import TEXTS, OpenPetition, add_petition, sign
from tests.petition_texts import LONG_TEXTS

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def signed_and_sealed(app: Flask, client: FlaskClient, slug: str, count: int) -> None:
    for i in range(count):
        response = sign(client, slug, identifier=f"012 345 {i:03d}", name="សុខ")
        assert response.status_code == 200
    seal_all(services(app).engine, services(app).vault)


def close(app: Flask, slug: str, *, forget: bool = False) -> None:
    with app.app_context():
        session = get_session()
        petition = get_petition(session, slug)
        close_petition(session, petition)
        if forget:
            forget_petition(session, petition, services(app).vault)
        session.commit()


def pdf_text(pdf: Path) -> str:
    pdftotext = require_program("pdftotext", "apt-get install poppler-utils")
    result = subprocess.run(
        [pdftotext, "-enc", "UTF-8", str(pdf), "-"], capture_output=True, check=True
    )
    return result.stdout.decode("utf-8")


def test_delivery_pdf_in_the_bundle(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    petition: OpenPetition,
    tmp_path: Path,
    database_url: str,
) -> None:
    signed_and_sealed(app, client, petition.slug, 7)
    bundle = tmp_path / "bundle"
    result = runner.invoke(args=["export", petition.slug, str(bundle)])
    assert result.exit_code == 0, result.output
    pdf = bundle / "delivery.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert "  delivery.pdf\n" in (bundle / "SHA256SUMS").read_text()
    assert verify_bundle(bundle).count == 7

    text = pdf_text(pdf)
    squeezed = re.sub(r"\s+", "", text)
    assert re.search(r"^7$", text, re.MULTILINE), "the count is not on a line of its own"
    assert "count 7" in text
    # pdftotext may split Khmer words where the layout puts clusters apart; the letters
    # themselves must all be there, in order.
    assert TEXTS["km"]["title"] in squeezed
    assert "៧" in text  # the count in Khmer digits
    assert TEXTS["en"]["title"] in text and TEXTS["en"]["target"] in text
    assert "Second paragraph." in text
    assert f"https://{petition.origin}/bundle.zip" in squeezed
    vkey = (bundle / "vkey").read_text().strip()
    assert vkey in squeezed
    checkpoint_lines = (bundle / "checkpoint").read_text().splitlines()
    assert checkpoint_lines[2] in squeezed  # the root, base64
    assert "សុខ" not in text  # a signer's details never reach the document

    pdffonts = require_program("pdffonts", "apt-get install poppler-utils")
    fonts = subprocess.run([pdffonts, str(pdf)], capture_output=True, check=True, text=True)
    # The shipped fonts (service/tlog/delivery.py), embedded and subset; no system font.
    families = {line.split()[0].split("+", 1)[1] for line in fonts.stdout.splitlines()[2:]}
    assert {"Samleng-Text", "Samleng-Mono"} <= families, fonts.stdout
    assert families <= {"Samleng-Text", "Samleng-Text-Bold", "Samleng-Mono", "Samleng-Mono-Bold"}
    assert all(" yes yes yes " in line for line in fonts.stdout.splitlines()[2:]), fonts.stdout

    pdftoppm = require_program("pdftoppm", "apt-get install poppler-utils")
    if "sqlite" in database_url:  # one set of pictures is enough
        ARTIFACTS.mkdir(exist_ok=True)
        for page in ("1", "4"):
            subprocess.run(
                [pdftoppm, "-png", "-r", "110", "-f", page, "-l", page, "-singlefile",
                 str(pdf), str(ARTIFACTS / f"delivery-page-{page}")],
                check=True,
            )  # fmt: skip
            assert (ARTIFACTS / f"delivery-page-{page}.png").stat().st_size > 10_000


def test_the_bundle_never_depends_on_the_pdf(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    petition: OpenPetition,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without WeasyPrint the verifiable bundle is still written and verified; the command
    says what is missing and fails, so that nobody takes the bundle for complete."""
    signed_and_sealed(app, client, petition.slug, 2)
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # import weasyprint now fails
    bundle = tmp_path / "out" / "bundle"
    result = runner.invoke(args=["export", petition.slug, str(bundle)])
    assert result.exit_code == 1
    assert "cannot make delivery.pdf: WeasyPrint cannot be loaded" in result.output
    assert "install Pango" in result.output and "--no-pdf" in result.output
    assert "verified: count 2" in result.output
    assert not (bundle / "delivery.pdf").exists()
    assert "delivery.pdf" not in (bundle / "SHA256SUMS").read_text()
    assert verify_bundle(bundle).count == 2
    assert [p.name for p in bundle.parent.iterdir()] == ["bundle"]  # no leftovers

    again = tmp_path / "again"
    result = runner.invoke(args=["export", petition.slug, str(again), "--no-pdf"])
    assert result.exit_code == 0, result.output
    assert not (again / "delivery.pdf").exists()
    assert verify_bundle(again).count == 2


def test_missing_glyphs_fail_rather_than_print_boxes(app: Flask, petition: OpenPetition) -> None:
    with app.app_context():
        found = get_petition(get_session(), petition.slug)
        assert found.petition_json is not None
        # A private-use character: no installed font draws it.
        facts = DeliveryFacts(
            petition_json=found.petition_json.replace(
                TEXTS["en"]["title"].encode(), "Free \ue000 them".encode()
            ),
            checkpoint=b"x\n1\nAAAA\n",
            size=1,
            bundle_url="https://example.org/bundle.zip",
        )
        with pytest.raises(DeliveryError, match=r"the shipped fonts cannot draw U\+E000 "):
            render_delivery_pdf(facts)


def test_the_document_loads_nothing_from_the_network(
    app: Flask, petition: OpenPetition, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote resource stops the rendering instead of being fetched; only the shipped font
    files are read."""
    opened: list[str] = []
    real_open = urllib.request.OpenerDirector.open

    def recording_open(self: urllib.request.OpenerDirector, url: Any, *a: Any, **k: Any) -> Any:
        opened.append(url if isinstance(url, str) else url.full_url)
        return real_open(self, url, *a, **k)

    monkeypatch.setattr("urllib.request.OpenerDirector.open", recording_open)
    monkeypatch.setattr(
        "samleng.service.tlog.delivery.delivery_html",
        lambda facts: '<p>x</p><img src="https://tracker.invalid/p.png">',
    )
    with app.app_context(), pytest.raises(DeliveryError, match="tracker.invalid") as refused:
        render_delivery_pdf(
            DeliveryFacts(petition_json=b"{}", checkpoint=b"", size=1, bundle_url="")
        )
    assert "may load nothing but its own fonts" in str(refused.value)
    assert opened and all(url.startswith("file://") for url in opened), opened
    assert all(url.endswith(".ttf") for url in opened), opened


def get(client: FlaskClient, url: str) -> TestResponse:
    """GET ``url`` and read the whole body, closing the file a send_file answer holds open."""
    response = client.get(url)
    response.get_data()
    response.close()
    return response


def unzip(data: bytes, target: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert all(name.startswith("free-them-bundle/") for name in names)
        archive.extractall(target)
    return target / "free-them-bundle"


def test_bundle_zip_only_once_closed(
    app: Flask, client: FlaskClient, petition: OpenPetition, tmp_path: Path
) -> None:
    signed_and_sealed(app, client, petition.slug, 2)
    assert get(client, f"/p/{petition.slug}/bundle.zip").status_code == 404
    assert client.get("/p/no-such-petition/bundle.zip").status_code == 404
    sign(client, petition.slug, identifier="012 999 999")  # pending at closing time
    close(app, petition.slug)

    response = get(client, f"/p/{petition.slug}/bundle.zip")
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert "Set-Cookie" not in response.headers
    assert response.headers["Content-Disposition"] == "attachment; filename=free-them-bundle.zip"
    first = unzip(response.data, tmp_path / "first")
    assert verify_bundle(first).count == 2
    assert (first / "delivery.pdf").is_file()

    cache = Path(app.instance_path) / "bundles" / petition.slug
    (zipped,) = cache.glob("3-*.zip")
    made = zipped.stat().st_mtime_ns
    again = get(client, f"/p/{petition.slug}/bundle.zip")
    assert again.data == response.data
    assert zipped.stat().st_mtime_ns == made  # served from the cache

    # The signature that was pending at closing is sealed: a newer checkpoint, a new zip.
    seal_all(services(app).engine, services(app).vault)
    newer = get(client, f"/p/{petition.slug}/bundle.zip")
    assert verify_bundle(unzip(newer.data, tmp_path / "newer")).count == 3
    assert [p.name[:2] for p in cache.glob("*.zip")] == ["4-"]


def test_bundle_zip_stays_public_after_forget(
    app: Flask, client: FlaskClient, petition: OpenPetition, tmp_path: Path
) -> None:
    signed_and_sealed(app, client, petition.slug, 1)
    close(app, petition.slug, forget=True)
    response = get(client, f"/p/{petition.slug}/bundle.zip")
    assert response.status_code == 200
    assert verify_bundle(unzip(response.data, tmp_path)).count == 1
    assert client.get(f"/p/{petition.slug}/checkpoint").status_code == 200


def test_bundle_zip_unavailable_without_weasyprint(
    app: Flask,
    client: FlaskClient,
    petition: OpenPetition,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    signed_and_sealed(app, client, petition.slug, 1)
    close(app, petition.slug)
    monkeypatch.setitem(sys.modules, "weasyprint", None)
    assert get(client, f"/p/{petition.slug}/bundle.zip").status_code == 503
    assert "WeasyPrint cannot be loaded" in caplog.text
    assert not list((Path(app.instance_path) / "bundles").rglob("*.zip"))


# A long Khmer paragraph with no space at all: every line break in it has to come from the
# segmenter, and a naive one splits a consonant from its subscript.
KHMER_PARAGRAPH = (
    "ក្រុមគ្រួសាររបស់អ្នកការពារសិទ្ធិដីធ្លីទាំងដប់មួយនាក់បានរង់ចាំយុត្តិធម៌អស់រយៈពេលប្រាំមួយខែហើយ"
    "ដោយគ្មានការជំនុំជម្រះក្ដីនៅក្នុងតុលាការខេត្តឡើយពួកគេស្នើសុំឲ្យអាជ្ញាធរពាក់ព័ន្ធបញ្ឈប់ការបណ្ដេញចេញ"
    "និងរៀបចំការវាស់វែងដីធ្លីដោយឯករាជ្យព្រមទាំងអនុញ្ញាតឲ្យអ្នកជាប់ឃុំជួបគ្រូពេទ្យនិងមេធាវីដែលពួកគេ"
    "ជ្រើសរើសដោយខ្លួនឯងក្នុងរយៈពេលដ៏ខ្លីបំផុតដើម្បីការពារសុខភាពនិងសិទ្ធិរបស់ពួកគេស្របតាមរដ្ឋធម្មនុញ្ញ"
    "នៃព្រះរាជាណាចក្រកម្ពុជានិងកតិកាសញ្ញាអន្តរជាតិស្ដីពីសិទ្ធិពលរដ្ឋនិងសិទ្ធិនយោបាយ"
)


def laid_out_paragraphs(document: Any) -> list[list[str]]:
    """The text of every line, paragraph by paragraph, as the PDF draws it.

    Read from WeasyPrint's line boxes rather than from pdftotext: poppler gives Khmer back in
    glyph order (a pre-base vowel before its consonant, subscripts apart), so its text cannot
    say where a line ends within a word; the line boxes are what write_pdf draws, position
    for position.
    """
    from weasyprint.formatting_structure.boxes import LineBox, TextBox

    paragraphs: list[list[str]] = []

    def walk(box: Any) -> None:
        children = getattr(box, "children", [])
        lines = [child for child in children if isinstance(child, LineBox)]
        if lines:
            paragraphs.append(
                ["".join(t.text for t in line.descendants() if isinstance(t, TextBox))
                 for line in lines]
            )  # fmt: skip
        for child in children:
            if not isinstance(child, LineBox):
                walk(child)

    for page in document.pages:
        walk(page._page_box)
    return paragraphs


def khmer_facts(app: Flask, slug: str, **letter: Any) -> DeliveryFacts:
    texts = {
        "km": {**LONG_TEXTS["km"], "body": KHMER_PARAGRAPH + "\n\n" + LONG_TEXTS["km"]["body"]},
        "en": {**LONG_TEXTS["en"], "target": "To the Ministry of Justice"},
    }
    texts["km"]["target"] = "ជូនចំពោះ ក្រសួងយុត្តិធម៌"
    add_petition(app, slug=slug, texts=texts, closes_on=dt.date(2027, 3, 8))
    with app.app_context():
        found = get_petition(get_session(), slug)
        assert found.petition_json is not None
        return DeliveryFacts(
            petition_json=found.petition_json,
            checkpoint=b"x\n12346\nAAAA\n",
            size=12346,
            bundle_url="https://example.org/bundle.zip",
            letter=FormalLetter(**letter) if letter else None,
        )


def test_khmer_lines_break_between_words_never_inside_a_cluster(app: Flask) -> None:
    facts = khmer_facts(app, "long-khmer")
    with app.app_context():
        paragraphs = laid_out_paragraphs(lay_out_delivery(facts))
        # The document's text as written, spaces collapsed: where it had a space, a line may
        # end (WeasyPrint drops the space at the end of the line).
        source = re.sub(r"\s+", " ", re.sub(r"<[^>]*>", "", delivery_html(facts)))
    whole = [p for p in paragraphs if "".join(p).replace(ZWSP, "") == KHMER_PARAGRAPH]
    assert whole and len(whole[0]) >= 4, "the long paragraph should fill several lines"
    # Every line of the long paragraph ends where the segmenter allowed, between clusters.
    for line, following in zip(whole[0], whole[0][1:], strict=False):
        assert line.endswith(ZWSP), f"a break inside a word: …{line[-12:]!r} | {following[:12]!r}"
        assert is_cluster_boundary(line.rstrip(ZWSP)[-1], following[0])
    # And in the whole document: every line ends at a segmenter's mark or at a space of the
    # text, never between two clusters of one word.
    checked = 0
    for lines in paragraphs:
        for before, after in zip(lines, lines[1:], strict=False):
            if before.endswith((ZWSP, " ")) or not (before and after):
                continue
            if not (is_khmer(before[-1]) or is_khmer(after[0])):
                continue  # Latin: hyphens, and addresses wrapped anywhere on purpose
            checked += 1
            tail, head = before[-8:], after[:8]
            assert f"{tail} {head}" in source, f"a line breaks inside a word: …{tail!r} | {head!r}…"
            assert is_cluster_boundary(before[-1], after[0]), (tail, head)
    assert checked > 5


def test_khmer_digits_dates_and_no_double_to(app: Flask, tmp_path: Path) -> None:
    facts = khmer_facts(app, "formal", sender="សម្ព័ន្ធ", place="ភ្នំពេញ", date=dt.date(2026, 12, 4))
    with app.app_context():
        pdf = tmp_path / "delivery.pdf"
        pdf.write_bytes(render_delivery_pdf(facts))
        paragraphs = laid_out_paragraphs(lay_out_delivery(facts))
    text = "\n".join(line.replace(ZWSP, "") for p in paragraphs for line in p)
    assert "12,345" in text and "១២,៣៤៥" in text  # the count, grouped, in both scripts
    assert "១០០ នាក់" in text and "100 people" in text  # the goal
    assert "ថ្ងៃទី៨ ខែមីនា ឆ្នាំ២០២៧" in text and "March 8, 2027" in text
    # "To" once: the recipient's own "To" / "ជូនចំពោះ" is not printed after the label.
    assert "ជូនចំពោះ / To\nក្រសួងយុត្តិធម៌\nthe Ministry of Justice\n" in text, text[:600]
    # The formal framing, on a page of its own before the document.
    assert "ជាតិ សាសនា ព្រះមហាក្សត្រ" in text and "កម្មវត្ថុ៖" in text
    assert "សូមគោរពជូន" in text and "ធ្វើនៅភ្នំពេញ ថ្ងៃទី៤ ខែធ្នូ ឆ្នាំ២០២៦" in text
    assert "ការគោរពដ៏ខ្ពង់ខ្ពស់" in text
    with app.app_context():
        weights = khmer_heading_weights(lay_out_delivery(facts))
    assert weights == {700}, "Khmer headings print regular beside bold English"
    first_page = pdf_text_pages(pdf, 1)
    assert "Verifiable petition" not in first_page
    assert "Verifiable petition" in pdf_text_pages(pdf, 2)


def pdf_text_pages(pdf: Path, page: int) -> str:
    pdftotext = require_program("pdftotext", "apt-get install poppler-utils")
    result = subprocess.run(
        [pdftotext, "-enc", "UTF-8", "-f", str(page), "-l", str(page), str(pdf), "-"],
        capture_output=True,
        check=True,
    )
    return result.stdout.decode("utf-8")


def test_export_formal_puts_the_covering_letter_first(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    petition: OpenPetition,
    tmp_path: Path,
) -> None:
    signed_and_sealed(app, client, petition.slug, 2)
    formal = tmp_path / "formal"
    args = ["export", petition.slug, str(formal), "--formal", "Coalition", "--date", "2026-12-04"]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    first = pdf_text_pages(formal / "delivery.pdf", 1)
    assert "English translation." in first and "December 4, 2026" in first
    assert "signed by 2 people" in first and "Verifiable petition" not in first
    plain = tmp_path / "plain"
    assert runner.invoke(args=["export", petition.slug, str(plain)]).exit_code == 0
    assert "English translation." not in pdf_text(plain / "delivery.pdf")
    refused = runner.invoke(args=[*args[:2], str(tmp_path / "x"), "--formal", " ", "--no-pdf"])
    assert refused.exit_code == 2 and not (tmp_path / "x").exists()


def khmer_heading_weights(document: Any) -> set[int]:
    """The font weights of the Khmer text in the document's h2 and h3 headings."""
    from weasyprint.formatting_structure.boxes import TextBox

    weights: set[int] = set()

    def walk(box: Any, heading: bool) -> None:
        heading = heading or getattr(box, "element_tag", None) in ("h2", "h3")
        if heading and isinstance(box, TextBox) and any(is_khmer(c) for c in box.text):
            weights.add(int(box.style["font_weight"]))
        for child in getattr(box, "children", []):
            walk(child, heading)

    for page in document.pages:
        walk(page._page_box, False)
    return weights
