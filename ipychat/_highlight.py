"""Code highlighting that always finishes, readable in light and dark themes.

A fence names its lexer, and the reply is untrusted: some Pygments lexers backtrack without
end on a few hundred bytes (```` ```scala ```` with `"` and 64 backslashes never finishes,
`fish` hangs on `"` and 50), inside one regular-expression match that neither a time check nor
Kernel > Interrupt can stop. So only lexers on `LEXERS` are used, each proven by
`tests/test_highlight_lexers.py` to lex adversarial input of `MAX_CODE` characters quickly in a
subprocess; any other language, a longer block, or a block that runs past `BUDGET` between
tokens is shown as escaped plain text.

Colours are JupyterLab's CSS variables (the editor's own, so light, dark and high-contrast
themes all read well), each with a fallback of middle lightness for viewers without them
(nbconvert HTML, VS Code), which reads on white and on dark backgrounds. Text with no token
colour inherits the theme's. Inline styles only: no style sheet to scope or to trust.
"""

from __future__ import annotations

import html
import time
from functools import lru_cache
from typing import Any

__all__ = ["BUDGET", "LEXERS", "MAX_CODE", "highlight_code", "lexer_for"]

MAX_CODE = 10_000  # characters of one block; longer blocks are shown plain
BUDGET = 0.25  # CPU seconds one block may take (checked between tokens) before it is plain

# The canonical name (Pygments' first alias) of every lexer a fence may use. Each is driven
# with adversarial input by tests/test_highlight_lexers.py; add one only with that test.
# Left out: lexers that pick a lexer for embedded code by name (markdown, rst), and those
# whose single tokens take seconds on 5,000 characters (console, pycon, ini, matlab, make, json5).
LEXERS = frozenset(
    """
    python pytb ipython javascript typescript jsx json bash powershell
    c cpp csharp java kotlin go rust swift ruby php perl splus julia lua sql postgresql mysql
    html xml css scss yaml toml docker cmake diff tex haskell ocaml elixir
    erlang clojure scheme dart objective-c fortran nimrod zig vim nginx protobuf graphql
    terraform text
    """.split()  # noqa: SIM905
)


def _c(var: str, fallback: str, extra: str = "") -> str:
    return f"color: var(--jp-mirror-editor-{var}-color, {fallback}){extra}"


_BOLD, _ITALIC = "; font-weight: bold", "; font-style: italic"
# Pygments token type (dotted name) -> inline style; the nearest listed parent type wins.
_STYLES = {
    "Keyword": _c("keyword", "#3a9b3a", _BOLD),
    "Keyword.Type": _c("variable-3", "#2f9a8a"),
    "Operator": _c("operator", "#a35fd0"),
    "Operator.Word": _c("keyword", "#3a9b3a", _BOLD),
    "Name.Builtin": _c("builtin", "#3a9b3a"),
    "Name.Builtin.Pseudo": _c("atom", "#7b7be0"),
    "Name.Function": _c("def", "#4a82d9"),
    "Name.Class": _c("def", "#4a82d9", _BOLD),
    "Name.Namespace": _c("def", "#4a82d9"),
    "Name.Decorator": _c("meta", "#a35fd0"),
    "Name.Exception": _c("error", "#e05252"),
    "Name.Tag": _c("tag", "#3a9b3a", _BOLD),
    "Name.Attribute": _c("attribute", "#4a82d9"),
    "Name.Variable": _c("variable-2", "#3f87c8"),
    "Name.Constant": _c("atom", "#7b7be0"),
    "Name.Entity": _c("atom", "#7b7be0"),
    "Name.Label": _c("qualifier", "#8a8a8a"),
    "Literal": _c("atom", "#7b7be0"),
    "Literal.String": _c("string", "#d0564a"),
    "Literal.String.Doc": _c("comment", "#5f9e9e", _ITALIC),
    "Literal.String.Escape": _c("string-2", "#b45ec4"),
    "Literal.String.Interpol": _c("string-2", "#b45ec4"),
    "Literal.String.Regex": _c("string-2", "#b45ec4"),
    "Literal.Number": _c("number", "#3a9b3a"),
    "Comment": _c("comment", "#5f9e9e", _ITALIC),
    "Comment.Preproc": _c("meta", "#a35fd0"),
    "Comment.PreprocFile": _c("string", "#d0564a"),
    "Generic.Heading": _c("header", "#4a82d9", _BOLD),
    "Generic.Subheading": _c("header", "#4a82d9", _BOLD),
    "Generic.Deleted": "color: var(--jp-error-color1, #e05252)",
    "Generic.Inserted": "color: var(--jp-success-color1, #3a9b3a)",
    "Generic.Error": _c("error", "#e05252"),
    "Generic.Emph": "font-style: italic",
    "Generic.Strong": "font-weight: bold",
    "Generic.Prompt": _c("meta", "#a35fd0", _BOLD),
    "Generic.Output": _c("comment", "#5f9e9e"),
    "Generic.Traceback": _c("error", "#e05252"),
    "Error": _c("error", "#e05252"),
}


@lru_cache(maxsize=256)
def _style(ttype: Any) -> str:
    while ttype is not None:
        name = ".".join(ttype)
        if name in _STYLES:
            return _STYLES[name]
        ttype = ttype.parent
    return ""


@lru_cache(maxsize=128)
def lexer_for(lang: str) -> Any:
    """The allowlisted Pygments lexer a fence's language names, or None."""
    if not lang or len(lang) > 40:
        return None
    try:
        from pygments.lexers import find_lexer_class_by_name
        from pygments.util import ClassNotFound
    except ImportError:  # pragma: no cover - Pygments comes with IPython
        return None
    try:
        cls = find_lexer_class_by_name(lang.lower())
    except ClassNotFound:
        return None
    if not cls.aliases or cls.aliases[0] not in LEXERS:
        return None
    return cls(stripnl=False, ensurenl=False)


def highlight_code(code: str, lang: str, *, budget: float = BUDGET) -> str | None:
    """Escaped code with inline-styled spans, or None (show it plain) if not safe or too slow."""
    if len(code) > MAX_CODE:
        return None
    lexer = lexer_for(lang)
    if lexer is None:
        return None
    deadline = time.thread_time() + budget  # CPU time, as the renderer's allowance
    out: list[str] = []
    style, run = "", []
    for count, (ttype, value) in enumerate(lexer.get_tokens(code)):
        if count % 64 == 0 and time.thread_time() > deadline:
            return None
        token_style = _style(ttype)
        if token_style != style:
            _emit(out, style, run)
            style, run = token_style, []
        run.append(value)
    _emit(out, style, run)
    return "".join(out)


def _emit(out: list[str], style: str, run: list[str]) -> None:
    text = html.escape("".join(run), quote=False)
    if not text:
        return
    out.append(f'<span style="{style}">{text}</span>' if style else text)
