"""Does a JSON value match a JSON Schema? One sentence saying where and why when it does not.

A small validator for the keywords ipychat emits and the ones models are usually given: type,
enum, const, properties, required, additionalProperties, items, anyOf/oneOf/allOf, numeric and
length bounds, and local `$ref`s (never a remote one). Unknown keywords are ignored, as the
specification says. Not `jsonschema`: it is no runtime dependency, and importing it takes
seconds (its format checkers build grammars at import), longer than a whole small batch.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check"]

_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def check(value: Any, schema: dict[str, Any]) -> str | None:
    """None when `value` matches `schema`, else why not (one line)."""
    return _check(value, schema, schema, "", 0)


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#"):
        return {}  # a remote reference: never fetched
    node: Any = root
    for part in filter(None, ref[1:].split("/")):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, dict) else {}


def _fail(path: str, why: str) -> str:
    return f"at {path or 'the top'}: {why}"


def _check(value: Any, schema: Any, root: dict[str, Any], path: str, depth: int) -> str | None:
    if schema is True or schema == {} or depth > 50:
        return None
    if schema is False:
        return _fail(path, "no value is allowed here")
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        problem = _check(value, _resolve(schema["$ref"], root), root, path, depth + 1)
        if problem:
            return problem
    expected = schema.get("type")
    if expected is not None:
        kinds = expected if isinstance(expected, list) else [expected]
        if not any(_TYPES.get(kind, lambda v: True)(value) for kind in kinds):
            return _fail(path, f"{value!r:.60} is not of type {' or '.join(map(str, kinds))}")
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        return _fail(path, f"{value!r:.60} is not one of {schema['enum']!r:.120}")
    if "const" in schema and not _same(value, schema["const"]):
        return _fail(path, f"{value!r:.60} is not {schema['const']!r:.60}")
    for keyword in ("anyOf", "oneOf"):
        options = schema.get(keyword)
        if isinstance(options, list):
            fits = sum(_check(value, o, root, path, depth + 1) is None for o in options)
            if fits == 0 or (keyword == "oneOf" and fits > 1):
                return _fail(path, f"{value!r:.60} matches {fits} of the {keyword} choices")
    for option in schema.get("allOf") or []:
        if problem := _check(value, option, root, path, depth + 1):
            return problem
    if isinstance(value, dict):
        return _check_object(value, schema, root, path, depth)
    if isinstance(value, list):
        return _check_array(value, schema, root, path, depth)
    return _check_bounds(value, schema, path)


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True is not 1."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _check_object(
    value: dict[str, Any], schema: dict[str, Any], root: dict[str, Any], path: str, depth: int
) -> str | None:
    for name in schema.get("required") or []:
        if name not in value:
            return _fail(path, f"{name!r} is a required property")
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        where = f"{path}/{name}" if path else str(name)
        if name in props:
            problem = _check(item, props[name], root, where, depth + 1)
        elif extra is False:
            problem = _fail(path, f"additional property {name!r} is not allowed")
        else:
            problem = _check(item, extra, root, where, depth + 1)
        if problem:
            return problem
    return None


def _check_array(
    value: list[Any], schema: dict[str, Any], root: dict[str, Any], path: str, depth: int
) -> str | None:
    if len(value) < schema.get("minItems", 0):
        return _fail(path, f"fewer than {schema['minItems']} items")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return _fail(path, f"more than {schema['maxItems']} items")
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            where = f"{path}/{index}" if path else str(index)
            if problem := _check(item, items, root, where, depth + 1):
                return problem
    return None


def _check_bounds(value: Any, schema: dict[str, Any], path: str) -> str | None:
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return _fail(path, f"{value!r:.60} is shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return _fail(path, f"{value!r:.60} is longer than {schema['maxLength']}")
    elif _TYPES["number"](value):
        for keyword, ok in (
            ("minimum", lambda limit: value >= limit),
            ("maximum", lambda limit: value <= limit),
            ("exclusiveMinimum", lambda limit: value > limit),
            ("exclusiveMaximum", lambda limit: value < limit),
        ):
            limit = schema.get(keyword)
            if _TYPES["number"](limit) and not ok(limit):
                return _fail(path, f"{value!r} breaks {keyword} {limit!r}")
    return None
