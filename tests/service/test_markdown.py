"""The safe Markdown subset of petition texts."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samleng.service.platform.markdown import render_markdown


@pytest.mark.parametrize(
    "source, html",
    [
        ("One.\n\nTwo.", "<p>One.</p>\n<p>Two.</p>\n"),
        ("*a* _b_ **c**", "<p><em>a</em> <em>b</em> <strong>c</strong></p>\n"),
        ("- a\n- b", "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n"),
        ("1. a\n2. b", "<ol>\n<li>a</li>\n<li>b</li>\n</ol>\n"),
        (
            "# One\n## Two\n### Three\n#### Four",
            "<h2>One</h2>\n<h2>Two</h2>\n<h3>Three</h3>\n<h3>Four</h3>\n",
        ),
        (
            "[report](https://example.org/r?a=1&b=2)",
            '<p><a href="https://example.org/r?a=1&amp;b=2" rel="noopener noreferrer nofollow">'
            "report</a></p>\n",
        ),
        (
            "<https://example.org>",
            '<p><a href="https://example.org" rel="noopener noreferrer nofollow">'
            "https://example.org</a></p>\n",
        ),
        ("ខ្ញុំ**គាំទ្រ**ញត្តិនេះ", "<p>ខ្ញុំ<strong>គាំទ្រ</strong>ញត្តិនេះ</p>\n"),
    ],
)
def test_the_subset(source: str, html: str) -> None:
    assert render_markdown(source) == html


@pytest.mark.parametrize(
    "source, shown",
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        (
            '<img src="https://x.example/p.png">',
            "&lt;img src=&quot;https://x.example/p.png&quot;&gt;",
        ),
        ("<b onclick=x>hi</b>", "&lt;b onclick=x&gt;hi&lt;/b&gt;"),
        ("[x](javascript:alert(1))", "[x](javascript:alert(1))"),
        ("[x](JAVASCRIPT:alert(1))", "[x](JAVASCRIPT:alert(1))"),
        ("[x](data:text/html,hi)", "[x](data:text/html,hi)"),
        ("[x](/relative)", "[x](/relative)"),
        ("[x](//evil.example)", "[x](//evil.example)"),
        ("<javascript:alert(1)>", "&lt;javascript:alert(1)&gt;"),
        ("    indented", "indented"),
        ("`code`", "`code`"),
        ("> quote", "&gt; quote"),
    ],
)
def test_everything_else_is_text(source: str, shown: str) -> None:
    html = render_markdown(source)
    assert shown in html
    assert "<img" not in html and "<script" not in html and "<code" not in html


def test_images_are_not_loaded() -> None:
    html = render_markdown("![map](https://maps.example/x.png)")
    assert "<img" not in html and "src=" not in html


@given(st.text(max_size=300))
def test_no_tag_outside_the_subset(text: str) -> None:
    allowed = {"p", "em", "strong", "ul", "ol", "li", "h2", "h3", "a", "br"}
    html = str(render_markdown(text))
    for tag in re.findall(r"</?([a-zA-Z0-9]+)", html):
        assert tag in allowed, (text, html)
    for href in re.findall(r'href="([^"]*)"', html):
        assert href.startswith(("http://", "https://")), (text, html)
