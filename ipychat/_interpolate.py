"""Fill `{name}` references in a prompt from the user's namespace, and touch nothing else.

Prompts are full of braces that are not references: code, JSON, dict literals, f-strings,
LaTeX. `str.format` would crash on them or change them, so only a brace expression that is a
plain reference to a known value is filled: `{x}`, `{x.attr}`, `{x[0]}`, `{x["key"]}`,
`{In[3]}`, `{Out[3]}`. Nothing is evaluated: no calls, no operators. Anything else, including a
name that is not defined, is left exactly as written. `{{x}}` is a literal `{x}`; other
doubled braces (nested JSON's `}}`, Jinja's `{{ x }}`) are text like any other.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

__all__ = ["interpolate"]

_MISSING = object()
_MAX_DEPTH = 50  # attributes and items in one reference


def _resolve(node: ast.AST, namespace: Mapping[str, Any]) -> Any:
    """The value a reference names, or _MISSING for anything that is not a plain reference."""
    if isinstance(node, ast.Name):
        return namespace.get(node.id, _MISSING)
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


def interpolate(text: str, namespace: Mapping[str, Any]) -> str:
    """`text` with every known `{reference}` replaced by `str(value)`.

    >>> interpolate("x is {x}, d is {'a': {'b': 1}}, {{x}} and {y}", {"x": 3})
    "x is 3, d is {'a': {'b': 1}}, {x} and {y}"
    """
    out: list[str] = []
    i = 0
    while (start := text.find("{", i)) != -1:
        out.append(text[i:start])
        if text.startswith("{{", start):
            end = text.find("}}", start + 2)
            inner = text[start + 2 : end]
            if end != -1 and _parse_reference(inner) is not None:
                out.append("{" + inner + "}")
                i = end + 2
                continue
        end = text.find("}", start + 1)
        node = _parse_reference(text[start + 1 : end]) if end != -1 else None
        value = _resolve(node, namespace) if node is not None else _MISSING
        if value is _MISSING:
            out.append("{")
            i = start + 1
        else:
            out.append(str(value))
            i = end + 1
    out.append(text[i:])
    return "".join(out)
