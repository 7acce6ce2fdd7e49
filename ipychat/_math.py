"""LaTeX in model text -> sanitised MathML, made in Python; outputs marked so no typesetter runs.

JupyterLab typesets `$…$` in every HTML output with MathJax, and MathJax's safe mode still
honours `\\style{cursor:url(http://host/…)}`: the browser fetches the URL as soon as the math is
shown, from the live output, the saved notebook (trusted or not) and the HTML export. So the
front end's typesetter must never see model text. Two parts:

- `inert_html` wraps a fragment in the class MathJax skips: `mathjax_ignore` is MathJax 3's
  default `ignoreHtmlClass` (JupyterLab 4 creates its math document with the defaults), and
  `tex2jax_ignore` is MathJax 2's (nbconvert's HTML export loads MathJax 2). JupyterLab's HTML
  sanitiser (untrusted notebooks) keeps `class`, so the mark survives it.
- `tex_to_mathml` converts LaTeX with `latex2mathml` and rebuilds the result from an allowlist
  of MathML elements and attributes: no `href`, `style`, `class` or `id` (which `\\href`,
  `\\style`, `\\class` and `\\cssId` produce), lengths bounded, text escaped. Chromium, Firefox
  and Safari draw MathML natively, so math still shows as math with nothing typeset.

`bracket_math` is the markdown-it rule for `\\(…\\)` and `\\[…\\]` (CommonMark's escapes would
eat their backslashes); `$…$` comes from mdit-py-plugins' dollarmath.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

__all__ = ["IGNORE_CLASS", "MAX_TEX", "bracket_math", "inert_html", "math_html", "tex_to_mathml"]

IGNORE_CLASS = "mathjax_ignore tex2jax_ignore"
MAX_TEX = 2000  # characters of one formula; latex2mathml costs ~25 µs a character

_ELEMENTS = frozenset(
    """
    math mrow mi mn mo ms mtext mspace msup msub msubsup mfrac msqrt mroot mstyle merror
    mpadded mphantom menclose mover munder munderover mtable mtr mtd mlabeledtr mmultiscripts
    mprescripts none
    """.split()  # noqa: SIM905
)
_LENGTH = re.compile(r"^-?(?:\d{1,4}(?:\.\d*)?|\.\d+)(em|ex|pt|px|mu)?$")
_LENGTH_LIMIT = {"em": 10.0, "ex": 20.0, "pt": 100.0, "px": 130.0, "mu": 180.0, None: 10.0}
_WORD = re.compile(r"^[A-Za-z0-9 .#%+-]{0,40}$")  # enumerated values, colours, alignments
_ATTRIBUTES = {
    "display": re.compile(r"^(inline|block)$"),
    "mathvariant": _WORD,
    "displaystyle": re.compile(r"^(true|false)$"),
    "scriptlevel": re.compile(r"^[+-]?\d$"),
    "notation": _WORD,
    "stretchy": re.compile(r"^(true|false)$"),
    "fence": re.compile(r"^(true|false)$"),
    "separator": re.compile(r"^(true|false)$"),
    "largeop": re.compile(r"^(true|false)$"),
    "movablelimits": re.compile(r"^(true|false)$"),
    "symmetric": re.compile(r"^(true|false)$"),
    "accent": re.compile(r"^(true|false)$"),
    "accentunder": re.compile(r"^(true|false)$"),
    "form": re.compile(r"^(prefix|infix|postfix)$"),
    "linebreak": _WORD,
    "columnalign": _WORD,
    "rowalign": _WORD,
    "columnlines": _WORD,
    "rowlines": _WORD,
    "columnspacing": _WORD,
    "rowspacing": _WORD,
    "frame": _WORD,
    "framespacing": _WORD,
    "align": _WORD,
    "mathcolor": re.compile(r"^#?[A-Za-z0-9]{1,20}$"),
    "mathbackground": re.compile(r"^#?[A-Za-z0-9]{1,20}$"),
}
_LENGTHS = frozenset(
    "width height depth lspace rspace minsize maxsize voffset linethickness".split()  # noqa: SIM905
)


def inert_html(fragment: str) -> str:
    """`fragment` inside a div that MathJax 2 and 3 skip: no `$…$` in it is ever typeset.

    Use it for every HTML output that holds untrusted text (replies, tables, status lines).
    """
    return f'<div class="ipychat-inert {IGNORE_CLASS}">{fragment}</div>'


def _length_ok(value: str) -> bool:
    match = _LENGTH.match(value.strip())
    if not match:
        return False
    number = float(value.strip()[: match.start(1)] if match.group(1) else value.strip())
    return abs(number) <= _LENGTH_LIMIT[match.group(1)]


def _attribute_ok(name: str, value: str) -> bool:
    if name in _LENGTHS:
        return _length_ok(value)
    check = _ATTRIBUTES.get(name)
    return bool(check and check.match(value))


class _Refused(ValueError):
    """The converter made something outside the allowlist; the formula is shown as text."""


def _serialise(element: Element, out: list[str], depth: int = 0) -> None:
    tag = element.tag.rsplit("}", 1)[-1]
    if tag not in _ELEMENTS or depth > 60:
        raise _Refused(tag)
    attrs = "".join(
        f' {name}="{html.escape(value)}"'
        for name, value in element.attrib.items()
        if _attribute_ok(name, str(value))
    )
    out.append(f"<{tag}{attrs}>")
    if element.text:
        # latex2mathml writes symbols as entity text ("&#x0003C;"): decode, then escape all.
        out.append(html.escape(html.unescape(element.text), quote=False))
    for child in element:
        _serialise(child, out, depth + 1)
        if child.tail:
            out.append(html.escape(html.unescape(child.tail), quote=False))
    out.append(f"</{tag}>")


@lru_cache(maxsize=512)
def tex_to_mathml(tex: str, display: bool = False) -> str | None:
    """Sanitised MathML for `tex`, or None if it cannot be converted safely."""
    if len(tex) > MAX_TEX or not tex.strip():
        return None
    try:
        from latex2mathml.converter import convert_to_element
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    try:
        element: Any = convert_to_element(tex, display="block" if display else "inline")
        out: list[str] = []
        _serialise(element, out)
    except Exception:  # any LaTeX the converter rejects (or we refuse) is shown as written
        return None
    return "".join(out)


def math_html(tex: str, display: bool, delimiters: tuple[str, str]) -> str:
    """MathML for a formula, or the formula as written (escaped) when it cannot be converted."""
    mathml = tex_to_mathml(tex.strip(), display)
    if mathml is None:
        opening, closing = delimiters
        return f'<code class="ipychat-tex">{html.escape(opening + tex + closing)}</code>'
    return mathml


def bracket_math(state: Any, silent: bool) -> bool:
    """`\\(…\\)` (inline) and `\\[…\\]` (display) math, closed within the same paragraph.

    An opener without its closer stays as written, backslash included.
    """
    src, pos = state.src, state.pos
    if src[pos] != "\\" or pos + 1 >= state.posMax or src[pos + 1] not in "([":
        return False
    closer = "\\)" if src[pos + 1] == "(" else "\\]"
    # Where the last closer is, once per paragraph: many openers and no closer stay linear.
    key = ("ipychat_last", closer, state.posMax, src)
    last = state.env.get(key)
    if last is None:
        last = state.env[key] = src.rfind(closer, 0, state.posMax)
    end = src.find(closer, pos + 2, state.posMax) if last >= pos + 2 else -1
    if end < 0 or not src[pos + 2 : end].strip():
        # Not math: keep the backslash (CommonMark would drop it) as the model wrote it.
        if not silent:
            state.pending += src[pos : pos + 2]
        state.pos += 2
        return True
    if not silent:
        token = state.push("math_paren" if closer == "\\)" else "math_square", "math", 0)
        token.content = src[pos + 2 : end]
        token.markup = src[pos : pos + 2]
    state.pos = end + 2
    return True
