"""Markdown that is safe to preview: a transcript opened in JupyterLab fetches and runs nothing.

JupyterLab's Markdown preview allows raw HTML (`<img src>`, `<video poster>` are fetched), shows
images, and typesets `$…$`, `\\(…\\)` and `\\begin{…}` with MathJax, whose `\\style` and `\\href`
fetch URLs. Model text in an exported transcript therefore has, outside fenced code:

- `<` written as `&lt;` (raw HTML and autolinks show as text),
- `![` written as `[image: ` (an image becomes a link to it),
- `$` and `\\` written as `＄` (U+FF04) and `⧵` (U+29F5): escaping them with backslashes is not
  enough, since JupyterLab's Markdown step turns `\\$` back into `$` and `\\\\(` into `\\(`,
  which MathJax then reads as delimiters.

Fenced code is kept exactly, re-fenced at the left margin with a fence longer than any run in
it: JupyterLab hides `$` in such fences from MathJax, and a code block shows text as text. The
JSON export keeps the exact text.
"""

from __future__ import annotations

import re

__all__ = ["HEADER", "preview_safe"]

HEADER = (
    "> Sanitised for previewing by ipychat: raw HTML is shown as text, images as links, and "
    "outside code blocks dollar signs and backslashes are written as ＄ and ⧵ so nothing is "
    "typeset. The JSON export (`--export NAME.json`) keeps the exact text."
)

_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})(.*)$")
_RUN = re.compile(r"`+|~+")


_IMAGE = re.compile(r"!+\[")


def _prose(text: str) -> str:
    text = text.replace("\\", "⧵").replace("$", "＄").replace("<", "&lt;")
    return _IMAGE.sub("[image: ", text)


def _fence(lines: list[str], info: str) -> str:
    body = "\n".join(lines)
    longest = max((len(run) for run in _RUN.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    lang = _prose(info.strip().split(maxsplit=1)[0]) if info.strip() else ""
    lang = lang.replace("`", "")
    return f"{fence}{lang}\n{body}\n{fence}" if lines else f"{fence}{lang}\n{fence}"


def preview_safe(text: str) -> str:
    """`text` (untrusted Markdown) made inert for any Markdown previewer with MathJax."""
    out: list[str] = []
    prose: list[str] = []
    code: list[str] = []
    fence, info = "", ""
    for line in text.split("\n"):
        if fence:
            closing = _OPEN.match(line)
            if (
                closing
                and closing[1][0] == fence[0]
                and len(closing[1]) >= len(fence)
                and not closing[2].strip()
            ):
                out.append(_fence(code, info))
                fence, code = "", []
            else:
                code.append(line)
            continue
        opening = _OPEN.match(line)
        if opening and not (opening[1][0] == "`" and "`" in opening[2]):
            if prose:
                out.append(_prose("\n".join(prose)))
                prose = []
            fence, info = opening[1], opening[2]
            continue
        prose.append(line)
    if fence:  # unclosed: CommonMark runs it to the end; close it so nothing after is code
        out.append(_fence(code, info))
    if prose:
        out.append(_prose("\n".join(prose)))
    return "\n".join(out)
