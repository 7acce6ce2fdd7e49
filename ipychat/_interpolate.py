"""Fill `{name}` references in a prompt from the user's namespace, and touch nothing else.

Prompts are full of braces that are not references: code, JSON, dict literals, f-strings,
LaTeX. `str.format` would crash on them or change them, so the rules are narrow, and the
README's "Interpolation" section states them word for word (a test keeps the two in step):

- Only a plain reference to a known value is filled: `{x}`, `{x.attr}`, `{x[0]}`,
  `{x["key"]}`, `{In[3]}`, `{Out[3]}`. Nothing is evaluated: no calls, no operators, no
  attribute that starts with `_`. Anything else, including an undefined name, stays as written.
- Nothing is filled inside fenced code (``` or ~~~), inline code (`...`), or math
  (`$...$`, `$$...$$`, `\\(...\\)`, `\\[...\\]`).
- A `{` right after or before another `{` never starts a reference: `{{x}}` is sent as written.
- Looking up `.attr` runs the attribute's getter (a property's code), `[key]` runs
  `__getitem__`, and the value is sent as `str(value)`, exactly as Python would; that is what
  makes `{df.shape}` useful. A lookup that raises leaves the reference as written; a `str()`
  that raises, or text that cannot be sent (a lone surrogate), is a `FillError`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FillError", "Filled", "fill", "interpolate", "protected_spans"]

_MISSING = object()
_MAX_DEPTH = 50  # attributes and items in one reference


class FillError(ValueError):
    """A reference named a value that cannot become prompt text; the message is one line."""


@dataclass(frozen=True)
class Filled:
    """The prompt after filling, and the references that were filled, in order, once each."""

    text: str
    names: tuple[str, ...] = ()


def _resolve(node: ast.AST, namespace: Mapping[str, Any]) -> Any:
    """The value a reference names, or _MISSING for anything that is not a plain reference."""
    if isinstance(node, ast.Name):
        try:
            return namespace[node.id]
        except KeyError:
            return _MISSING
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, namespace)
        if base is _MISSING or node.attr.startswith("_"):
            return _MISSING
        try:
            return getattr(base, node.attr)
        except Exception:
            return _MISSING
    if isinstance(node, ast.Subscript):
        base = _resolve(node.value, namespace)
        key = _literal(node.slice)
        if base is _MISSING or key is _MISSING:
            return _MISSING
        try:
            return base[key]
        except Exception:
            return _MISSING
    return _MISSING


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | str):
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, int)
    ):
        return -node.operand.value
    return _MISSING


def _parse_reference(expression: str) -> ast.AST | None:
    """The expression's tree if it is a plain reference (name, .attr, [literal]), else None."""
    if not expression or expression != expression.strip() or "\n" in expression:
        return None
    try:
        node: ast.AST = ast.parse(expression, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # deep nesting, NUL bytes
        return None
    tree = node
    for _ in range(_MAX_DEPTH):  # bounded, so `_resolve` cannot exhaust the stack
        if isinstance(node, ast.Name):
            return tree
        attribute = isinstance(node, ast.Attribute) and not node.attr.startswith("_")
        item = isinstance(node, ast.Subscript) and _literal(node.slice) is not _MISSING
        if not (attribute or item):
            return None
        node = node.value  # type: ignore[attr-defined]
    return None


# -- code and math: the spans that are never filled ---------------------------------------------
# A backtick fence's info string holds no backtick (else the line is inline code), as in CommonMark.
_FENCE = re.compile(r"^ {0,3}(`{3,}(?=[^`\n]*$)|~{3,})", re.MULTILINE)
_INLINE = re.compile(r"`+|\$\$|\$|\\\(|\\\[")
_CLOSERS = {"$$": "$$", "\\(": "\\)", "\\[": "\\]"}


def _fences(text: str) -> list[tuple[int, int]]:
    """Fenced code blocks as (start, end); an unclosed fence runs to the end, as in Markdown."""
    spans = []
    pos = 0
    while (opening := _FENCE.search(text, pos)) is not None:
        fence = opening.group(1)
        closing = re.compile(
            rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE
        )
        line_end = text.find("\n", opening.end())
        found = closing.search(text, line_end + 1) if line_end != -1 else None
        end = found.end() if found else len(text)
        spans.append((opening.start(), end))
        pos = end
    return spans


def _inline_end(text: str, match: re.Match[str], limit: int) -> int:
    """Where the code or math span opened by `match` ends, or -1 if it is not an opening."""
    token, start = match.group(), match.end()
    if token[0] == "`":  # closed by a run of exactly as many backticks
        for run in re.finditer(r"`+", text[start:limit]):
            if len(run.group()) == len(token):
                return start + run.end()
        return -1
    if token == "$":  # `$x$`: no space inside either dollar, no digit right after the closer
        if start >= limit or text[start].isspace() or (start >= 2 and text[start - 2] == "\\"):
            return -1
        for closer in re.finditer(r"(?<!\\)\$", text[start:limit]):
            at = start + closer.start()
            after = text[at + 1 : at + 2]
            if not text[at - 1].isspace() and not after.isdigit():
                return at + 1
        return -1
    end = text.find(_CLOSERS[token], start, limit)
    return -1 if end == -1 else end + len(_CLOSERS[token])


def protected_spans(text: str) -> list[tuple[int, int]]:
    """Code and math spans as sorted (start, end) pairs: the parts that are never filled."""
    spans = []
    pos = 0
    for fence_start, fence_end in [*_fences(text), (len(text), len(text))]:
        while (match := _INLINE.search(text, pos, fence_start)) is not None:
            end = _inline_end(text, match, fence_start)
            if end == -1:
                pos = match.end()
                continue
            spans.append((match.start(), end))
            pos = end
        if fence_end > fence_start:
            spans.append((fence_start, fence_end))
        pos = max(pos, fence_end)
    return spans


# -- filling --------------------------------------------------------------------------------------
def _as_text(expression: str, value: Any) -> str:
    try:
        text = str(value)
    except Exception as exc:
        raise FillError(
            f"Could not fill {{{expression}}}: str() raised {type(exc).__name__}; fix the value, "
            "or send the braces as written with --no-interpolate."
        ) from None
    if not isinstance(text, str):  # a str subclass whose __str__ misbehaves
        raise FillError(f"Could not fill {{{expression}}}: str() did not return text.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ord(text[exc.start])
        raise FillError(
            f"Could not fill {{{expression}}}: its text holds a lone surrogate (U+{bad:04X}) "
            "that cannot be sent; clean the value (e.g. .encode('utf-8', 'replace').decode()) "
            "or use --no-interpolate."
        ) from None
    return text


def _fill_segment(text: str, namespace: Mapping[str, Any], names: list[str]) -> str:
    out: list[str] = []
    i = 0
    while (start := text.find("{", i)) != -1:
        if text.startswith("{", start + 1) or (start > 0 and text[start - 1] == "{"):
            run_end = start
            while run_end < len(text) and text[run_end] == "{":
                run_end += 1
            out.append(text[i:run_end])
            i = run_end
            continue
        out.append(text[i:start])
        end = text.find("}", start + 1)
        expression = text[start + 1 : end] if end != -1 else ""
        node = _parse_reference(expression)
        value = _resolve(node, namespace) if node is not None else _MISSING
        if value is _MISSING:
            out.append("{")
            i = start + 1
            continue
        out.append(_as_text(expression, value))
        if expression not in names:
            names.append(expression)
        i = end + 1
    out.append(text[i:])
    return "".join(out)


def fill(text: str, namespace: Mapping[str, Any]) -> Filled:
    """`text` with every known `{reference}` outside code and math replaced by `str(value)`."""
    names: list[str] = []
    out: list[str] = []
    pos = 0
    for start, end in protected_spans(text):
        out.append(_fill_segment(text[pos:start], namespace, names))
        out.append(text[start:end])
        pos = end
    out.append(_fill_segment(text[pos:], namespace, names))
    return Filled("".join(out), tuple(names))


def interpolate(text: str, namespace: Mapping[str, Any]) -> str:
    """The text of `fill(text, namespace)`.

    >>> interpolate("x is {x}, d is {'a': {'b': 1}}, {{x}}, `{x}` and {y}", {"x": 3})
    "x is 3, d is {'a': {'b': 1}}, {{x}}, `{x}` and {y}"
    """
    return fill(text, namespace).text
