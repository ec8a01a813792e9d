"""Khmer line-break opportunities: between words, never inside a syllable cluster."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samleng.service.tlog.linebreaks import (
    ZWSP,
    is_cluster_boundary,
    khmer_breaks,
    khmer_breaks_in_html,
)

WORDS = [
    "ញត្តិ", "ហត្ថលេខា", "ចុះ", "ស្ត្រី", "ក្រសួង", "យុត្តិធម៌", "ប្រាំមួយ", "ខែ", "ដោះលែង",
    "អ្នក", "ការពារ", "សិទ្ធិ", "ដីធ្លី", "រាជធានី", "ខេត្ត", "កូនសោ", "៉", "ៗ", "។", "១២៣",
]  # fmt: skip


def test_words_are_marked() -> None:
    marked = khmer_breaks("ញត្តិនេះបិទហើយ។")
    assert marked.split(ZWSP) == ["ញត្តិ", "នេះ", "បិទ", "ហើយ។"]


def test_a_subscript_stays_with_its_consonant() -> None:
    for before, after in (("ស", "\u17d2"), ("\u17d2", "ត"), ("ក", "\u17b6"), ("ស្ត្រី", "ៗ")):
        assert not is_cluster_boundary(before[-1], after[0])
    assert is_cluster_boundary("ិ", "ន") and is_cluster_boundary("។", "ក")


def test_latin_and_spaces_are_left_alone() -> None:
    assert khmer_breaks("Tor Browser, 2026") == "Tor Browser, 2026"
    assert ZWSP not in khmer_breaks("ញត្តិ Tor")


@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=40))
def test_marks_fall_only_between_clusters(words: list[str]) -> None:
    text = "".join(words)
    marked = khmer_breaks(text)
    assert marked.replace(ZWSP, "") == text
    assert ZWSP * 2 not in marked
    for i, char in enumerate(marked):
        if char == ZWSP:
            assert 0 < i < len(marked) - 1
            assert is_cluster_boundary(marked[i - 1], marked[i + 1])


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ('<p title="ញត្តិនេះ">ញត្តិនេះ</p>', f'<p title="ញត្តិនេះ">ញត្តិ{ZWSP}នេះ</p>'),
        ("<pre>ញត្តិនេះ</pre><b>ញត្តិនេះ</b>", f"<pre>ញត្តិនេះ</pre><b>ញត្តិ{ZWSP}នេះ</b>"),
        ("<style>/* ញត្តិនេះ */</style>", "<style>/* ញត្តិនេះ */</style>"),
        ("<code>ញត្តិនេះ</code> ញត្តិនេះ", f"<code>ញត្តិនេះ</code> ញត្តិ{ZWSP}នេះ"),
    ],
)
def test_html_markup_and_code_are_kept(html: str, expected: str) -> None:
    assert khmer_breaks_in_html(html) == expected
