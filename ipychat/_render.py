"""Untrusted model Markdown -> safe, inert HTML, rendered in Python in bounded time.

JupyterLab and Notebook 7 trust the outputs of executed cells, so a Markdown or HTML output
(or an `ipywidgets.HTML` value) holding `<img src=x onerror=...>` or `<script>` would run. We
therefore never hand model text to the front end as Markdown or raw HTML: markdown-it-py renders
it here with raw HTML disabled (tags come out as escaped text), links restricted to safe
schemes, and images shown as links (an image URL would be fetched without a click, which lets a
prompt-injected reply send data to any server).

Three more things keep an output from doing anything but being read:

- Math is converted to sanitised MathML here (`_math`), and every fragment is marked so the
  front end's MathJax skips it: MathJax's `\\style` and `\\href` would otherwise fetch URLs.
- Code is highlighted only by lexers proven not to hang (`_highlight`), within a time budget.
- Rendering has a time allowance proportional to the text; past it, or for a block too big to
  parse quickly, the text is shown as escaped plain text instead (`_OverBudget`).
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ._math import bracket_math, inert_html, math_html
from ._safetext import visible

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

    from ._reply import Reply

__all__ = [
    "StreamingMarkdown",
    "fenced_blocks",
    "inert_html",
    "markdown_to_html",
    "render_reply_html",
    "split_blocks",
    "status_line",
]

SAFE_LINK = re.compile(r"^(https?:|mailto:|#)", re.I)
# Long lines wrap: a 200,000-character line must not make the output that wide.
STYLE_PRE = "white-space: pre-wrap; overflow-wrap: anywhere"
STYLE_WRAP = "overflow-wrap: anywhere"

# Parsing a block is linear but slow for some shapes (a table costs ~25 µs a character):
# blocks past these sizes are shown as plain text without being parsed.
BLOCK_CAP = 20_000  # characters of one block (fenced code is exempt: it parses linearly)
TABLE_ROWS_CAP = 500  # lines holding "|" in one block
# CPU seconds a render may take: a base plus a rate per character; past it, blocks are shown
# plain. CPU time, not wall time: on a busy machine a normal reply still renders in full.
ALLOWANCE_BASE = 0.1
ALLOWANCE_PER_CHAR = 3e-6


class _OverBudget(Exception):
    """The render ran past its time allowance."""


def clock() -> float:
    """This thread's CPU seconds: allowances count the work done, not the machine's load."""
    return time.thread_time()


def _deadline(state: Any) -> None:
    env = state.env
    checks = env["ipychat_checks"] = env.get("ipychat_checks", 0) + 1
    if checks % 32 == 1 and clock() > env.get("ipychat_deadline", float("inf")):
        raise _OverBudget  # checked every 32 rule calls: reading the clock costs ~1 µs


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    import latex2mathml.converter  # noqa: F401 - loaded here, not inside a time allowance
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.validateLink = lambda url: bool(SAFE_LINK.match(url.strip()))
    # Pandoc's rule for `$`: no space inside either delimiter, no digit after the closing one,
    # so "$5 and $10" stays prose. `$$…$$` inside a paragraph is display math.
    dollarmath_plugin(
        md,
        allow_labels=False,
        allow_space=False,
        allow_digits=False,
        allow_blank_lines=False,
        double_inline=True,
    )
    # `\(…\)` and `\[…\]` before CommonMark's backslash escapes eat their backslashes.
    md.inline.ruler.before("escape", "math_bracket", bracket_math)
    # Time checks between rules: a slow render stops at its allowance.
    md.block.ruler.before("table", "ipychat_deadline", _block_deadline)
    md.inline.ruler.before("text", "ipychat_deadline", _inline_deadline)
    md.core.ruler.after("inline", "ipychat_link_text", _visible_link_text)

    # markdown-it binds render rules to the renderer, so each rule takes it first.
    def render_image(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        src = str(token.attrGet("src") or "")
        alt = html.escape(visible(token.content or "image"))
        if not SAFE_LINK.match(src):
            return f"[image: {alt}]"
        return f'<a href="{html.escape(src)}" rel="noopener noreferrer nofollow">[image: {alt}]</a>'

    def render_link_open(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
        tokens[idx].attrSet("target", "_blank")
        return renderer.renderToken(tokens, idx, options, env)

    def render_math(delimiters: tuple[str, str], display: bool) -> Callable[..., str]:
        def rule(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
            return math_html(tokens[idx].content, display, delimiters)

        return rule

    def render_math_block(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        return f"<div>{math_html(tokens[idx].content, True, ('$$', '$$'))}</div>\n"

    md.add_render_rule("image", render_image)
    md.add_render_rule("link_open", render_link_open)
    md.add_render_rule("fence", _render_fence)
    md.add_render_rule("code_block", _render_fence)
    md.add_render_rule("math_inline", render_math(("$", "$"), False))
    md.add_render_rule("math_inline_double", render_math(("$$", "$$"), True))
    md.add_render_rule("math_paren", render_math(("\\(", "\\)"), False))
    md.add_render_rule("math_square", render_math(("\\[", "\\]"), True))
    md.add_render_rule("math_block", render_math_block)
    return md


def _block_deadline(state: Any, start: int, end: int, silent: bool) -> bool:
    _deadline(state)
    return False


def _inline_deadline(state: Any, silent: bool) -> bool:
    _deadline(state)
    return False


def _visible_link_text(state: Any) -> None:
    """Link text cannot hide behind bidi overrides or zero-width characters."""
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        depth = 0
        for token in block.children:
            if token.type == "link_open":
                depth += 1
            elif token.type == "link_close":
                depth -= 1
            elif depth and token.type in ("text", "code_inline"):
                token.content = visible(token.content)


_LANG = re.compile(r"[A-Za-z0-9_+#.-]{1,40}")


def _render_fence(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    """Highlighted when the language is allowlisted and time allows; escaped text otherwise."""
    from ._highlight import BUDGET, highlight_code, lexer_for

    token = tokens[idx]
    info = (token.info or "").strip().split(maxsplit=1)
    lang = info[0] if info else ""
    code = token.content
    body = None
    start = clock()
    lexer = lexer_for(lang)
    if "ipychat_deadline" in env:  # loading a lexer's module (once) is not rendering
        env["ipychat_deadline"] += clock() - start
    if lexer is not None:
        left = env.get("ipychat_deadline", float("inf")) - clock()
        body = highlight_code(code, lang, budget=min(BUDGET, left))
    if body is None:
        body = html.escape(code, quote=False)
    cls = f' class="language-{lang}"' if _LANG.fullmatch(lang) else ""
    return f'<pre style="{STYLE_PRE}"><code{cls} style="{STYLE_PRE}">{body}</code></pre>\n'


def _plain(block: str) -> str:
    text = html.escape(block, quote=False)
    return f'<pre class="ipychat-plain" style="{STYLE_PRE}">{text}</pre>\n'


def _allowance(text: str) -> float:
    return ALLOWANCE_BASE + ALLOWANCE_PER_CHAR * len(text)


def _too_big(block: str) -> bool:
    if _FENCE.match(block):
        return False
    if len(block) > BLOCK_CAP:
        return True
    return block.count("|") > TABLE_ROWS_CAP and (
        sum(1 for line in block.split("\n") if "|" in line) > TABLE_ROWS_CAP
    )


def _render(text: str, allowance: float) -> str:
    parser = _parser()
    env = {"ipychat_deadline": clock() + allowance}
    return parser.render(text, env)


def _render_blocks(text: str) -> str:
    """Block by block, each within its own allowance and all within the text's: a block too
    big, too slow, or left when the text's allowance is spent is shown plain."""
    parts = []
    end = clock() + _allowance(text)
    for block in split_blocks(text):
        left = min(_allowance(block), end - clock())
        if _too_big(block) or left <= 0:
            parts.append(_plain(block))
            continue
        try:
            parts.append(_render(block, left))
        except _OverBudget:
            parts.append(_plain(block))
    return "".join(parts)


def markdown_to_html(text: str) -> str:
    """Safe, inert HTML for untrusted Markdown, rendered in time proportional to its size.

    No raw HTML, no script-capable links, no images, math as sanitised MathML, and nothing
    the front end's MathJax will typeset. A render that runs past its allowance, or a block
    too big to parse quickly, falls back to rendering block by block, with plain text for
    the blocks that are still too big or too slow.
    """
    blocks = split_blocks(text)
    if any(_too_big(block) for block in blocks):
        return inert_html(_render_blocks(text))
    try:
        return inert_html(_render(text, _allowance(text)))
    except _OverBudget:
        return inert_html(_render_blocks(text))


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
    """(language, code) of each fenced code block, as a Markdown parser sees them.

    Bounded like rendering: past the allowance, or with a block too big to parse quickly, the
    text is parsed block by block, skipping blocks too big or too slow (a fence starts a block,
    so those hold no fence of their own).
    """
    blocks = split_blocks(text)
    if not any(_too_big(block) for block in blocks):
        try:
            return _fences(text)
        except _OverBudget:
            pass
    found: list[tuple[str, str]] = []
    for block in blocks:
        if not _too_big(block):
            try:
                found += _fences(block)
            except _OverBudget:
                continue
    return found


def _fences(text: str) -> list[tuple[str, str]]:
    parser = _parser()
    env = {"ipychat_deadline": clock() + _allowance(text)}
    tokens = parser.parse(text, env)
    return [((t.info or "").strip().split(" ")[0], t.content) for t in tokens if t.type == "fence"]


def status_line(reply: Reply, *, streaming: bool = False) -> str:
    """Plain text: model, tokens, time to first token, total time, and any warning.

    The model name and finish reason come from the server: shown with controls, bidi
    overrides and zero-width characters made visible, on one line.
    """
    from ._safetext import one_line

    parts = [one_line(reply.model, 80) if reply.model else "?"]
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
        reason = one_line(str(reply.finish_reason), 40)
        parts.append(f"⚠ filtered by the content safety check ({reason})")
    elif not reply.complete:
        parts.append("⚠ incomplete")
    if reply.filled and not streaming:
        parts.append("filled: " + ", ".join(reply.filled))
    return " · ".join(parts)


STYLE_BODY = f"font-size: var(--jp-content-font-size1, 14px); line-height: 1.5; {STYLE_WRAP}"
STYLE_STATUS = (
    "color: var(--jp-ui-font-color2, #777); font-size: 0.85em; margin-top: 0.4em; "
    f"font-family: monospace; {STYLE_WRAP}"
)
STYLE_WARN = "color: var(--jp-warn-color0, #c26a00)"
STYLE_REASONING = (
    "color: var(--jp-ui-font-color2, #777); "
    "border-left: 3px solid var(--jp-border-color2, #ccc); padding-left: 0.6em"
)


def render_reply_html(
    reply: Reply, *, streaming: bool = False, markdown: Callable[[str], str] = markdown_to_html
) -> str:
    """The whole reply view: reasoning (collapsed), the answer, the status line; all inert."""
    from ._math import IGNORE_CLASS

    parts = [f'<div class="ipychat-reply"><div class="{IGNORE_CLASS}">']
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
    parts.append(f'<div class="ipychat-status" style="{style}">{status}</div></div></div>')
    return "".join(parts)
