"""Markdown → Qt rich text for chat messages: CommonMark (markdown-it-py, raw HTML escaped) with code blocks
highlighted by Pygments (inline styles, which Qt's rich text understands) and a "Copy" link under each block.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name, guess_lexer
from pygments.util import ClassNotFound

COPY_SCHEME = "copy:"


@dataclass(frozen=True)
class Rendered:
    html: str
    code_blocks: tuple[str, ...]


def _lexer(code: str, language: str) -> Any:
    # Pygments finds lexers by importing modules by name: a missing one (a frozen build) must not break a reply.
    if language:
        try:
            return get_lexer_by_name(language)
        except (ClassNotFound, ImportError):
            pass
    if len(code) > 40:
        try:
            return guess_lexer(code)
        except (ClassNotFound, ImportError):
            pass
    return TextLexer()


class MarkdownRenderer:
    def __init__(self, dark: bool = False) -> None:
        self._md = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable("table")
        fence = self._fence

        def render_fence(_renderer: Any, tokens: Any, idx: int, options: Any, env: dict[str, Any]) -> str:
            return fence(tokens, idx, env)

        # markdown-it binds rules to its renderer, so the rule is a plain function that calls back here
        self._md.add_render_rule("fence", render_fence)
        self._md.add_render_rule("code_block", render_fence)
        style = "monokai" if dark else "friendly"
        try:
            self._formatter = HtmlFormatter(noclasses=True, nowrap=True, style=style)
        except (ClassNotFound, ImportError):
            self._formatter = HtmlFormatter(noclasses=True, nowrap=True)
        self._background = "#272822" if dark else "#f3f4f6"
        self._link = "#818cf8" if dark else "#4f46e5"

    def render(self, text: str) -> Rendered:
        env: dict[str, Any] = {"code": []}
        body = self._md.render(text, env)
        return Rendered(body, tuple(env["code"]))

    def _fence(self, tokens: Any, idx: int, env: dict[str, Any]) -> str:
        token = tokens[idx]
        code = token.content
        language = (token.info or "").strip().split(" ")[0]
        index = len(env["code"])
        env["code"].append(code)
        highlighted = highlight(code, _lexer(code, language), self._formatter)
        label = html.escape(language) if language else "code"
        return (
            f'<table width="100%" cellpadding="8" style="background-color:{self._background};">'
            f'<tr><td><pre style="font-family:monospace; white-space:pre-wrap;">{highlighted}</pre></td></tr></table>'
            f'<p style="margin-top:2px;"><span style="color:gray;">{label}</span> &nbsp; '
            f'<a href="{COPY_SCHEME}{index}" style="color:{self._link};">Copy</a></p>'
        )
