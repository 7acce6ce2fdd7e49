"""Untrusted model Markdown -> safe HTML, rendered in Python.

JupyterLab and Notebook 7 trust the outputs of executed cells, so a Markdown or HTML output
(or an `ipywidgets.HTML` value) holding `<img src=x onerror=...>` or `<script>` would run. We
therefore never hand model text to the front end as Markdown or raw HTML: markdown-it-py renders
it here with raw HTML disabled (tags come out as escaped text), links restricted to safe
schemes, and images shown as links (an image URL would be fetched without a click, which lets a
prompt-injected reply send data to any server). Code is highlighted by Pygments, which escapes.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

    from ._reply import Reply

__all__ = [
    "StreamingMarkdown",
    "fenced_blocks",
    "markdown_to_html",
    "render_reply_html",
    "split_blocks",
    "status_line",
]

SAFE_LINK = re.compile(r"^(https?:|mailto:|#)", re.I)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.options["highlight"] = _highlight
    md.validateLink = lambda url: bool(SAFE_LINK.match(url.strip()))

    # markdown-it binds render rules to the renderer, so each rule takes it first.
    def render_image(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        src = str(token.attrGet("src") or "")
        alt = html.escape(token.content or "image")
        if not SAFE_LINK.match(src):
            return f"[image: {alt}]"
        return f'<a href="{html.escape(src)}" rel="noopener noreferrer nofollow">[image: {alt}]</a>'

    def render_link_open(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
        tokens[idx].attrSet("target", "_blank")
        return renderer.renderToken(tokens, idx, options, env)

    md.add_render_rule("image", render_image)
    md.add_render_rule("link_open", render_link_open)
    return md


def _highlight(code: str, lang: str, attrs: str) -> str:
    """Pygments with inline styles (no CSS needed in any viewer); '' lets markdown-it escape."""
    if not lang:
        return ""
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import get_lexer_by_name
        from pygments.util import ClassNotFound
    except ImportError:
        return ""
    try:
        lexer = get_lexer_by_name(lang)
    except ClassNotFound:
        return ""
    formatter = HtmlFormatter(noclasses=True, nowrap=True, style="default")
    return highlight(code, lexer, formatter)


def markdown_to_html(text: str) -> str:
    """Safe HTML for untrusted Markdown: no raw HTML, no script-capable links, no images."""
    return _parser().render(text)


_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")


def split_blocks(text: str) -> list[str]:
    """Split Markdown at blank lines outside fenced code, into blocks that render on their own."""
    blocks: list[str] = []
    current: list[str] = []
    fence = ""
    for line in text.split("\n"):
        opener = _FENCE.match(line)
        if fence:
            current.append(line)
            if opener and opener[1][0] == fence[0] and len(opener[1]) >= len(fence):
                fence = "" if not line[opener.end() :].strip() else fence
        elif opener:
            fence = opener[1]
            current.append(line)
        elif line.strip():
            current.append(line)
        elif current:
            blocks.append("\n".join(current))
            current = []
    if current:
        blocks.append("\n".join(current))
    return blocks


class StreamingMarkdown:
    """Renders a growing reply again and again, re-parsing only its last block each time.

    Finished blocks (before the last blank line outside code) are cached, so an update costs
    the size of the last paragraph, not of the whole reply. The preview can differ from a
    whole-document render in small ways (a loose list shown as several lists); the final
    output is always rendered whole by `markdown_to_html`.
    """

    def __init__(self) -> None:
        self._done: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        *finished, last = split_blocks(text) or [""]
        parts = []
        for block in finished:
            html_block = self._done.get(block)
            if html_block is None:
                html_block = self._done[block] = markdown_to_html(block)
            parts.append(html_block)
        parts.append(markdown_to_html(last))
        return "".join(parts)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced code block, as a Markdown parser sees them."""
    tokens = _parser().parse(text)
    return [((t.info or "").strip().split(" ")[0], t.content) for t in tokens if t.type == "fence"]


def status_line(reply: Reply, *, streaming: bool = False) -> str:
    """Plain text: model, tokens, time to first token, total time, and any warning."""
    parts = [reply.model or "?"]
    if reply.usage and reply.usage.total_tokens is not None:
        parts.append(f"{reply.usage.total_tokens} tokens")
    if reply.time_to_first_token is not None:
        parts.append(f"first token {reply.time_to_first_token:.2f} s")
    if reply.elapsed is not None:
        parts.append(f"{'elapsed' if streaming else 'total'} {reply.elapsed:.2f} s")
    if reply.budget_left:
        parts.append(reply.budget_left)
    if streaming:
        parts.append("streaming…")
    elif reply.truncated:
        parts.append("⚠ cut off at max_tokens (finish_reason=length)")
    elif reply.filtered:
        parts.append(f"⚠ filtered by the content safety check ({reply.finish_reason})")
    elif not reply.complete:
        parts.append("⚠ incomplete")
    if reply.filled and not streaming:
        parts.append("filled: " + ", ".join(reply.filled))
    return " · ".join(parts)


STYLE_BODY = "font-size: var(--jp-content-font-size1, 14px); line-height: 1.5"
STYLE_STATUS = "color: #666; font-size: 0.85em; margin-top: 0.4em; font-family: monospace"
STYLE_WARN = "color: #a15c00"
STYLE_REASONING = "color: #777; border-left: 3px solid #ddd; padding-left: 0.6em"


def render_reply_html(
    reply: Reply, *, streaming: bool = False, markdown: Callable[[str], str] = markdown_to_html
) -> str:
    """The whole reply view: reasoning (collapsed), the answer, the status line."""
    parts = ['<div class="ipychat-reply">']
    if reply.reasoning:
        opened = " open" if streaming and not reply.text else ""
        parts.append(
            f'<details{opened} style="{STYLE_REASONING}"><summary>Reasoning</summary>'
            f"{markdown(reply.reasoning) if not reply.text else markdown_to_html(reply.reasoning)}"
            "</details>"
        )
    parts.append(f'<div style="{STYLE_BODY}">{markdown(reply.text)}</div>')
    status = html.escape(status_line(reply, streaming=streaming))
    warn = not streaming and (reply.truncated or reply.filtered or not reply.complete)
    style = STYLE_STATUS + ("; " + STYLE_WARN if warn else "")
    parts.append(f'<div class="ipychat-status" style="{style}">{status}</div></div>')
    return "".join(parts)
