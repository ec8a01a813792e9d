"""How Khmer writes numbers and dates (docs/glossary.km.md), for the pages and delivery.pdf."""

from __future__ import annotations

import datetime as dt

from babel.dates import get_month_names
from babel.numbers import format_decimal
from flask import g
from flask_babel import format_decimal as format_for_page

_KHMER_DIGITS = str.maketrans("0123456789", "០១២៣៤៥៦៧៨៩")


def khmer_digits(text: str | int) -> str:
    """``text`` (or a number) with its digits written in Khmer (១២៣)."""
    return str(text).translate(_KHMER_DIGITS)


def khmer_date(value: dt.date) -> str:
    """A date as Khmer documents write it: "ថ្ងៃទី៤ ខែធ្នូ ឆ្នាំ២០២៦"."""
    month = get_month_names("wide", locale="km")[value.month]
    return khmer_digits(f"ថ្ងៃទី{value.day} ខែ{month} ឆ្នាំ{value.year}")


def grouped(number: int, lang: str) -> str:
    """``number`` with its thousands grouped: "5,000" in English, "៥,០០០" in Khmer."""
    text = str(format_decimal(number, locale="km" if lang == "km" else "en"))
    return khmer_digits(text) if lang == "km" else text


def localized_number(value: int) -> str:
    """A number grouped the way of the current page's language, in Khmer digits on Khmer
    pages (needs a request)."""
    text = str(format_for_page(value))
    return khmer_digits(text) if g.get("lang") == "km" else text
