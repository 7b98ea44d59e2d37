"""Task instructions: Markdown rendered without raw HTML, images or unsafe links."""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt
from markupsafe import Markup


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # Instructions carry process data (a lead's name, a note) that anyone may have typed:
    # no raw HTML, and no images, which would load from wherever the text points.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).disable("image")


def render_instructions(text: str | None) -> Markup:
    """Return the instructions as safe HTML (raw HTML in them is shown as text)."""
    if not text:
        return Markup("")
    return Markup(_markdown().render(text))  # noqa: S704  (markdown-it escapes; html is off)
