"""The delivery document: ``delivery.pdf``, the printable page for the petition's recipients.

Rendered from ``templates/delivery/delivery.html`` with WeasyPrint, which shapes Khmer with
HarfBuzz through Pango. The fonts ship with Samleng (PyPI font packages, SIL Open Font
License), so the document looks the same on every machine and never depends on the fonts a
server happens to have. What it shows comes from the frozen petition.json and the final
checkpoint, so the paper says exactly what the bundle proves. Rendering never touches the
network: the only resources it may load are those font files and the QR code, inlined as a
``data:`` URI.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import io
import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import fontpkg
from babel.dates import format_date
from flask import render_template

from samleng.crypto.endorsement import Endorsement
from samleng.service.platform.errors import Error
from samleng.service.platform.khmer import grouped, khmer_date
from samleng.service.platform.markdown import render_markdown
from samleng.service.tlog.growth import Chart, DayCount, chart
from samleng.service.tlog.linebreaks import khmer_breaks_in_html

DELIVERY_FILE = "delivery.pdf"
# The order of the texts in the document: the recipient's language first.
_LANGUAGE_ORDER = ("km", "en")
# The document's fonts: CSS family -> (fontpkg family, the weights it is set in). Noto Sans
# Khmer draws Khmer and Latin; it is a variable font, so both weights are one file.
_FONTS = {
    "Samleng Text": ("Noto Sans Khmer", (400, 700)),
    "Samleng Mono": ("IBM Plex Mono", (400, 700)),
}
_PANGO_HINT = "install Pango (Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0)"


# Words an organiser often starts the recipient with; the document says "To" itself.
_ADDRESSED = re.compile(r"^\s*(?:ជូនចំពោះ|សូមគោរពជូន|to the attention of\b|to\b)[\s:៖]*", re.IGNORECASE)


class DeliveryError(Error):
    """delivery.pdf cannot be made here; the message says what is missing."""


@dataclass(frozen=True, kw_only=True)
class FormalLetter:
    """The covering letter a Cambodian ministry expects: who sends it, where and when.

    An export option (``samleng export --formal``), not a petition setting: it frames one
    delivery, and the public bundle.zip keeps the plain document.
    """

    sender: str
    place: str
    date: dt.date


@dataclass(frozen=True, kw_only=True)
class DeliveryFacts:
    """What the delivery document states: the frozen petition and its final checkpoint."""

    petition_json: bytes
    checkpoint: bytes
    size: int
    bundle_url: str
    letter: FormalLetter | None = None
    # Signature leaves in the final checkpoint (None: every leaf but the header).
    signatures: int | None = None
    # Of them, signatures on paper forms (kind 0x05), and photo pledges (kind 0x04).
    paper: int = 0
    photos: int = 0
    # The organisations endorsing the petition at the final checkpoint, in log order.
    endorsers: Sequence[Endorsement] = ()
    # The day signing actually closed (petition.json has the day planned); None while open.
    closed_on: dt.date | None = None
    # The count at the end of each day, for the growth chart (service/tlog/growth.py).
    growth: Sequence[DayCount] = ()

    @property
    def count(self) -> int:
        """Signatures in the final checkpoint: not the header, not endorsements."""
        return max(self.size - 1, 0) if self.signatures is None else self.signatures


def bundle_url(origin: str) -> str:
    """Return the public URL of a petition's bundle: ``https://<origin>/bundle.zip``."""
    return f"https://{origin}/bundle.zip"


def written_date(value: str | None, lang: str) -> str | None:
    """An ISO date from petition.json written out: "ថ្ងៃទី៨ ខែមីនា ឆ្នាំ២០២៧", "March 8, 2027"."""
    if not value:
        return None
    day = dt.date.fromisoformat(value)
    return khmer_date(day) if lang == "km" else str(format_date(day, "long", locale="en"))


def addressee(target: str) -> str:
    """The recipient without a leading "To" / "ជូនចំពោះ", which the document prints itself."""
    return _ADDRESSED.sub("", target, count=1).strip() or target


def qr_data_uri(url: str) -> str:
    """Return an SVG QR code of ``url`` as a ``data:`` URI (no file, no network)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(
        url,
        image_factory=qrcode.image.svg.SvgPathImage,
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        border=4,
    )
    svg = io.BytesIO()
    image.save(svg)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.getvalue()).decode("ascii")


def _texts(petition: dict[str, Any]) -> list[dict[str, Any]]:
    """The petition's texts in document order: Khmer, English, then any other language."""
    texts: dict[str, dict[str, str]] = petition.get("texts") or {}
    order = [lang for lang in _LANGUAGE_ORDER if lang in texts]
    order += sorted(lang for lang in texts if lang not in _LANGUAGE_ORDER)
    return [
        {
            "lang": lang,
            "title": texts[lang].get("title", ""),
            "target": texts[lang].get("target", ""),
            "addressee": addressee(texts[lang].get("target", "")),
            "summary": texts[lang].get("summary", ""),
            # The same safe Markdown subset as the petition page: it loads nothing.
            "body": render_markdown(texts[lang].get("body", "")),
        }
        for lang in order
    ]


def _organisers(petition: dict[str, Any]) -> list[dict[str, Any]]:
    """petition.json's organisers, each with both names; none for an older petition.json."""
    named = petition.get("organisers")
    if not isinstance(named, list):
        return []
    return [
        o
        for o in named
        if isinstance(o, dict)
        and isinstance(o.get("name"), dict)
        and all(isinstance(o["name"].get(lang), str) for lang in ("km", "en"))
    ]


def _growth_text(growth: Chart) -> dict[str, str]:
    """The growth chart's caption in Khmer and English, with its first and last day."""
    first, last = growth.first, growth.last
    return {
        "km": f"កំណើននៃញត្តិតាមថ្ងៃ៖ ពី {grouped(first.count, 'km')} នៅ{khmer_date(first.day)} "
        f"ដល់ {grouped(last.count, 'km')} នៅ{khmer_date(last.day)}។",
        "en": f"How the petition grew, day by day: from {grouped(first.count, 'en')} on "
        f"{format_date(first.day, 'long', locale='en')} to {grouped(last.count, 'en')} on "
        f"{format_date(last.day, 'long', locale='en')}.",
    }


def delivery_html(facts: DeliveryFacts) -> str:
    """Render the document's HTML (needs an app context, for the template), with the line
    breaks Khmer needs (service/tlog/linebreaks.py)."""
    petition = json.loads(facts.petition_json)
    texts = _texts(petition)
    by_lang = {text["lang"]: text for text in texts}
    goal = petition.get("goal")
    letter = facts.letter
    growth = chart(facts.growth)
    html = render_template(
        "delivery/delivery.html",
        petition=petition,
        texts=texts,
        organisers=_organisers(petition),
        growth=growth,
        growth_text=None if growth is None else _growth_text(growth),
        endorsers=facts.endorsers,
        endorsers_km=grouped(len(facts.endorsers), "km"),
        km=by_lang.get("km"),
        en=by_lang.get("en"),
        count=facts.count,
        count_en=grouped(facts.count, "en"),
        count_km=grouped(facts.count, "km"),
        paper=facts.paper,
        photos={lang: grouped(facts.photos, lang) for lang in ("km", "en")}
        if facts.photos
        else None,
        parts={
            lang: (grouped(facts.count - facts.paper, lang), grouped(facts.paper, lang))
            for lang in ("km", "en")
        },
        goal_en=None if goal is None else grouped(goal, "en"),
        goal_km=None if goal is None else grouped(goal, "km"),
        dates={
            lang: (
                written_date(petition.get("opens_on"), lang),
                written_date(
                    facts.closed_on.isoformat() if facts.closed_on else petition.get("closes_on"),
                    lang,
                ),
            )
            for lang in ("km", "en")
        },
        letter=letter,
        letter_date=None
        if letter is None
        else {"km": khmer_date(letter.date), "en": format_date(letter.date, "long", locale="en")},
        checkpoint=facts.checkpoint.decode("utf-8"),
        vkey=petition["log"]["vkey"],
        petition_sha256=hashlib.sha256(facts.petition_json).hexdigest(),
        bundle_url=facts.bundle_url,
        qr=qr_data_uri(facts.bundle_url),
    )
    return khmer_breaks_in_html(html)


@functools.cache
def font_faces() -> tuple[str, frozenset[str]]:
    """The @font-face rules of the shipped fonts, and the file URLs they name."""
    rules, urls = [], set()
    for css_family, (package_family, weights) in _FONTS.items():
        for weight in weights:
            url = fontpkg.path(package_family, weight).resolve().as_uri()
            urls.add(url)
            rules.append(
                f'@font-face {{ font-family: "{css_family}"; src: url("{url}"); '
                f"font-weight: {weight}; font-style: normal; }}"
            )
    return "\n".join(rules), frozenset(urls)


def render_delivery_pdf(facts: DeliveryFacts) -> bytes:
    """Render delivery.pdf; DeliveryError when WeasyPrint cannot run or a glyph is missing.

    Fails rather than produce a document with boxes for letters the fonts cannot draw.
    """
    document = lay_out_delivery(facts)
    pdf: bytes = document.write_pdf()
    missing = sorted({cp for font in document.fonts.values() for cp in font.missing})
    if missing:
        shown = " ".join(f"U+{cp:04X}" for cp in missing[:8])
        raise DeliveryError(
            f"cannot make {DELIVERY_FILE}: the shipped fonts cannot draw {shown} "
            "(a script other than Khmer and Latin)"
        )
    return pdf


def lay_out_delivery(facts: DeliveryFacts) -> Any:
    """The laid-out document (a WeasyPrint Document: its pages, lines and glyph runs are what
    the PDF draws); DeliveryError when WeasyPrint cannot run or would load anything."""
    try:
        from weasyprint import CSS, HTML
        from weasyprint.text.fonts import FontConfiguration
        from weasyprint.urls import FatalURLFetchingError, URLFetcher
    except (ImportError, OSError) as exc:
        # WeasyPrint loads Pango with ctypes-like dlopen: a missing system library is OSError.
        raise DeliveryError(
            f"cannot make {DELIVERY_FILE}: WeasyPrint cannot be loaded ({exc}); {_PANGO_HINT}"
        ) from None
    rules, font_urls = font_faces()

    class _Offline(URLFetcher):  # type: ignore[misc]
        """Fetches data: URIs and the shipped font files, nothing else."""

        def fetch(self, url: str, headers: Any = None) -> Any:
            if not (url.startswith("data:") or url in font_urls):
                raise ValueError(f"{DELIVERY_FILE} may not load {url[:80]}")
            return super().fetch(url, headers)

    # A refused fetch stops the rendering.
    offline = _Offline(fail_on_errors=True)
    try:
        with warnings.catch_warnings():
            # On a machine without system fonts WeasyPrint warns of ugly output; it would
            # be, but for the fonts declared here, which are all the document uses.
            warnings.filterwarnings("ignore", "No fonts configured in FontConfig")
            fonts = FontConfiguration()
            document = HTML(string=delivery_html(facts), url_fetcher=offline).render(
                stylesheets=[CSS(string=rules, font_config=fonts, url_fetcher=offline)],
                font_config=fonts,
            )
    except FatalURLFetchingError as exc:
        # A BaseException in WeasyPrint: turned into our error so callers can handle it.
        raise DeliveryError(
            f"cannot make {DELIVERY_FILE}: it may load nothing but its own fonts ({exc})"
        ) from None
    return document
