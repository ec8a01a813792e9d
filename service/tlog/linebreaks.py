"""Where a line of Khmer may break, for delivery.pdf.

Khmer writes no space between words. WeasyPrint lays text out with Pango, which finds no
break opportunity inside a run of Khmer: a long sentence overflows its box, and with
``overflow-wrap: break-word`` it is cut anywhere, even between a consonant and its subscript.
ICU's line breaker, with its Khmer dictionary, finds the boundaries between words; a ZERO
WIDTH SPACE at each of them tells Pango where it may break, and Pango breaks nowhere else.

ICU comes from icu4py, whose wheels bundle ICU itself (no system library, no compiler).
"""

from __future__ import annotations

import re
import unicodedata

from icu4py.breakers import LineBreaker

ZWSP = "\u200b"
COENG = "\u17d2"  # the sign that puts the next consonant below: it never ends a cluster
_LEK_TOO = "\u17d7"  # ៗ, "repeat the word": it belongs to the word before it
_JOINERS = {"\u200c", "\u200d"}
_KHMER = re.compile("[\u1780-\u17ff\u19e0-\u19ff]")
# Markup is kept as it is; text inside these elements is not prose to be broken.
_TAG = re.compile(r"(<[^>]*>)")
_VERBATIM = re.compile(r"<(style|title|pre|code)\b", re.IGNORECASE)


def is_khmer(char: str) -> bool:
    """Whether ``char`` is a Khmer letter, sign or digit."""
    return bool(_KHMER.fullmatch(char))


def is_cluster_boundary(before: str, after: str) -> bool:
    """Whether a line may end between the characters ``before`` and ``after`` without
    splitting a Khmer syllable cluster (a consonant, its subscripts, vowels and signs)."""
    if before == COENG or before in _JOINERS:
        return False
    return not (
        after in _JOINERS or after == _LEK_TOO or unicodedata.category(after) in ("Mn", "Mc")
    )


def khmer_breaks(text: str) -> str:
    """``text`` with a ZWSP at each line-break opportunity ICU finds between Khmer words."""
    if not _KHMER.search(text):
        return text
    segments = list(LineBreaker(text, "km"))
    out = [segments[0]]
    for before, after in zip(segments, segments[1:], strict=False):
        last, first = before[-1], after[0]
        if is_khmer(last) and is_khmer(first) and is_cluster_boundary(last, first):
            out.append(ZWSP)
        out.append(after)
    return "".join(out)


def khmer_breaks_in_html(html: str) -> str:
    """``html`` with :func:`khmer_breaks` applied to its text, never to markup, attributes,
    styles, titles or code."""
    pieces = _TAG.split(html)
    verbatim: str | None = None
    for i, piece in enumerate(pieces):
        if i % 2:  # a tag
            opening = _VERBATIM.match(piece)
            if opening and verbatim is None:
                verbatim = opening.group(1).lower()
            elif verbatim and piece.lower().startswith(f"</{verbatim}"):
                verbatim = None
        elif verbatim is None:
            pieces[i] = khmer_breaks(piece)
    return "".join(pieces)
