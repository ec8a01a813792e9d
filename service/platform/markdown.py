"""The safe Markdown subset of petition texts, rendered to HTML that cannot run or load anything.

Organisers write the petition body with paragraphs, *emphasis*, **strong**, lists, headings and
links. Everything else, raw HTML above all, is shown as the text it is: markdown-it-py escapes
it (``html`` is off), images and code are not enabled, and links go only to http(s) addresses.
Headings become ``h2``/``h3`` because the petition's title is the page's only ``h1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markupsafe import Markup

BLOCK_RULES = ["paragraph", "heading", "list"]
INLINE_RULES = ["newline", "escape", "emphasis", "link", "autolink", "entity"]
LINK_SCHEMES = ("http://", "https://")
# Links leave the site: tell the next site nothing about where the reader came from.
LINK_REL = "noopener noreferrer nofollow"


def _heading_level(tag: str) -> str:
    """``#`` and ``##`` become h2; deeper levels become h3."""
    return "h2" if tag in ("h1", "h2") else "h3"


def _is_safe_link(url: str) -> bool:
    """Only absolute http(s) addresses: no javascript:, data:, mailto: or relative paths."""
    return url.strip().lower().startswith(LINK_SCHEMES)


def _build() -> MarkdownIt:
    """markdown-it with only the subset enabled, safe links, and shifted headings."""
    md = MarkdownIt("zero", {"html": False, "linkify": False, "typographer": False})
    md.enable(BLOCK_RULES).enable(INLINE_RULES)
    md.validateLink = _is_safe_link  # type: ignore[method-assign]

    def render_heading(
        renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: Any, env: Any
    ) -> str:
        tokens[idx].tag = _heading_level(tokens[idx].tag)
        return renderer.renderToken(tokens, idx, options, env)

    def render_link_open(
        renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: Any, env: Any
    ) -> str:
        tokens[idx].attrSet("rel", LINK_REL)
        return renderer.renderToken(tokens, idx, options, env)

    md.add_render_rule("heading_open", render_heading)
    md.add_render_rule("heading_close", render_heading)
    md.add_render_rule("link_open", render_link_open)
    return md


_MARKDOWN = _build()


@lru_cache(maxsize=128)
def render_markdown(text: str) -> Markup:
    """The petition text as safe HTML (petition texts are few and change rarely: cached)."""
    # Safe by construction: html off escapes raw HTML, links are http(s) only (module doc;
    # tests/service/test_markdown.py tries script, event handlers and javascript: links).
    return Markup(_MARKDOWN.render(text))  # noqa: S704
