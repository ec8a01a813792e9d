"""Languages: Khmer first, English second, chosen by the URL prefix and nothing else.

Tor Browser sends the same Accept-Language for everyone, and a cookie would be a tracker,
so the language lives in the path (``/km/…``, ``/en/…``).
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, g, request
from flask_babel import Babel, format_decimal

from service.config import LANGUAGES

TRANSLATIONS = Path(__file__).parent / "translations"
LANGUAGE_NAMES = {"km": "ខ្មែរ", "en": "English"}
_KHMER_DIGITS = str.maketrans("0123456789", "០១២៣៤៥៦៧៨៩")


def current_lang(default: str) -> str:
    """The language of this request: from the blueprint, else the first path segment."""
    lang = g.get("lang")
    if lang in LANGUAGES:
        return str(lang)
    first = request.path.strip("/").split("/", 1)[0]
    return first if first in LANGUAGES else default


def localized_number(value: int) -> str:
    """A number grouped the local way, in Khmer digits on Khmer pages."""
    text = str(format_decimal(value))
    return text.translate(_KHMER_DIGITS) if g.get("lang") == "km" else text


def init_app(app: Flask, default_lang: str) -> None:
    """Attach Flask-Babel with the catalogues in ``service/translations``."""
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    app.config["BABEL_DEFAULT_LOCALE"] = default_lang
    Babel(app, locale_selector=lambda: current_lang(default_lang))
    app.jinja_env.filters["number"] = localized_number
    app.jinja_env.globals["LANGUAGE_NAMES"] = LANGUAGE_NAMES
