"""The sign form's character check, against Unicode's own categories for every code point."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from samleng.service.signing.forms import _bad_characters

LINE_BREAKS = "\n\r\t"


def refused_by_category(ch: str, multiline: bool) -> bool:
    """The rule as Unicode states it: control, surrogate and private-use characters, and the
    replacement character that undecodable bytes become; line breaks and tabs in multi-line
    fields."""
    if multiline and ch in LINE_BREAKS:
        return False
    return ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cs", "Co")


@pytest.mark.parametrize("multiline", [False, True])
def test_every_code_point_is_judged_as_its_category_says(multiline: bool) -> None:
    wrong = [
        f"U+{cp:04X}"
        for cp in range(sys.maxunicode + 1)
        if _bad_characters(chr(cp), multiline) != refused_by_category(chr(cp), multiline)
    ]
    assert wrong == []


def test_a_bad_character_anywhere_in_a_value_is_found() -> None:
    assert not _bad_characters("ស្រី សុខា, Phnom Penh", multiline=False)
    assert _bad_characters("Sokha\x1b[31m", multiline=False)
    assert _bad_characters("two\nlines", multiline=False)
    assert not _bad_characters("two\r\nlines\tand a tab", multiline=True)
    assert _bad_characters("private \ue000 use", multiline=True)
