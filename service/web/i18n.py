"""Languages: Khmer first, English second, chosen by the URL prefix and nothing else.

Tor Browser sends the same Accept-Language for everyone, and a cookie would be a tracker,
so the language lives in the path (``/km/…``, ``/en/…``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flask import Flask, g, request, url_for
from flask_babel import Babel, format_date

from samleng.service.platform.khmer import khmer_date, khmer_digits, localized_number
from samleng.service.platform.models import LANGUAGES

TRANSLATIONS = Path(__file__).resolve().parents[1] / "translations"
LANGUAGE_NAMES = {"km": "ខ្មែរ", "en": "English"}


def current_lang(default: str) -> str:
    """The language of this request: from the blueprint, else the first path segment."""
    lang = g.get("lang")
    if lang in LANGUAGES:
        return str(lang)
    first = request.path.strip("/").split("/", 1)[0]
    return first if first in LANGUAGES else default


def localized_date(value: dt.date) -> str:
    """A date written out the local way: "ថ្ងៃទី៨ ខែមីនា ឆ្នាំ២០២៦", "March 8, 2026"."""
    if g.get("lang") == "km":
        return khmer_date(value)
    return str(format_date(value, "long"))


def localized_digits(value: object) -> str:
    """Any text with its digits in Khmer on Khmer pages (a time, a size, a day)."""
    text = str(value)
    return khmer_digits(text) if g.get("lang") == "km" else text


def language_url(lang: str) -> str:
    """This page in ``lang``; a page that only answers a POST falls back to its petition."""
    endpoint = request.endpoint or ""
    args = {k: v for k, v in (request.view_args or {}).items() if k != "lang"}
    if endpoint == "public.sign":
        return url_for("public.petition", lang=lang, **args)
    if endpoint == "public.withdraw":
        return url_for("public.receipt", lang=lang, **args)
    if endpoint.startswith("public.") and request.url_rule is not None:
        return url_for(endpoint, lang=lang, **args)
    return url_for("public.index", lang=lang)


def init_app(app: Flask, default_lang: str) -> None:
    """Attach Flask-Babel with the catalogues in ``service/translations``."""
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    app.config["BABEL_DEFAULT_LOCALE"] = default_lang
    Babel(app, locale_selector=lambda: current_lang(default_lang))
    app.jinja_env.filters["number"] = localized_number
    app.jinja_env.filters["date"] = localized_date
    app.jinja_env.filters["digits"] = localized_digits
    app.jinja_env.globals["language_url"] = language_url
    app.jinja_env.globals["LANGUAGE_NAMES"] = LANGUAGE_NAMES
