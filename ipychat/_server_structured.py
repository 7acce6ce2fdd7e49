"""The offline server's structured answers: `response_format` JSON derived from the schema.

With `{"type": "json_schema", ...}` the answer is a JSON value valid under the given schema;
with `{"type": "json_object"}` it follows the JSON Schema found in the instructions (as
ipychat's fallback writes it), or is `{"reply": "Echo: ..."}` when there is none. Values are
deterministic: the same request gets the same answer. An `enum` takes the option named most
often in the last user message (ties broken by a checksum), so a classification of texts that
mention their class comes out plausible offline. A server may be told which `response_format`
types it accepts, to test a client's fallbacks. Stdlib only.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

__all__ = ["FORMAT_TYPES", "refused_format", "sample", "structured"]

FORMAT_TYPES = ("text", "json_object", "json_schema")
_DECODER = json.JSONDecoder()


def refused_format(body: dict[str, Any], accepted: tuple[str, ...] | frozenset[str]) -> str | None:
    """Why a request's `response_format` is refused (HTTP 400), or None when it is fine."""
    fmt = body.get("response_format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in FORMAT_TYPES:
        return f"response_format.type must be one of {', '.join(FORMAT_TYPES)}, not {kind!r}."
    if kind not in accepted:
        allowed = ", ".join(t for t in FORMAT_TYPES if t in accepted)
        return f"response_format.type {kind} is not supported by this model; use one of {allowed}."
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            return "response_format.json_schema must be an object with a schema object."
        if not isinstance(spec.get("name"), str) or not spec["name"]:
            return "response_format.json_schema.name is required."
    return None


def structured(body: dict[str, Any], prompt: str) -> str | None:
    """The JSON text to answer a `response_format` request with, or None for plain text."""
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_schema":
        schema = fmt["json_schema"].get("schema") or {}
    elif kind == "json_object":
        schema = _schema_in(body["messages"])
        if schema is None:
            return json.dumps({"reply": "Echo: " + prompt}, ensure_ascii=False)
    else:
        return None
    return json.dumps(sample(schema, schema, prompt, ""), ensure_ascii=False)


def _schema_in(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first JSON object in the instructions that looks like a JSON Schema."""
    for message in messages:
        text = message.get("content") or ""
        for match in re.finditer(r"\{", text):
            try:
                value, _ = _DECODER.raw_decode(text, match.start())
            except ValueError:
                continue
            if isinstance(value, dict) and ("type" in value or "properties" in value):
                return value
    return None


def _pick(options: list[Any], prompt: str, path: str) -> Any:
    lowered = prompt.lower()
    counts = [
        len(re.findall(r"\b" + re.escape(str(o).lower()) + r"\b", lowered)) if str(o) else 0
        for o in options
    ]
    best = max(counts)
    tied = [o for o, c in zip(options, counts, strict=True) if c == best]
    return tied[zlib.crc32(f"{path}\0{prompt}".encode()) % len(tied)]


def _number(schema: dict[str, Any], prompt: str, path: str, whole: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
    high = schema.get("maximum", schema.get("exclusiveMaximum", low + 10))
    low = int(low) + ("exclusiveMinimum" in schema)
    high = int(high) - ("exclusiveMaximum" in schema)
    if high < low:
        high = low
    value = low + zlib.crc32(f"{path}\0{prompt}".encode()) % (high - low + 1)
    return value if whole else float(value)


def _string(schema: dict[str, Any], prompt: str, path: str) -> str:
    words = prompt.split()[-6:]
    text = " ".join(words) or path or "text"
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if high is not None:
        text = text[:high]
    return text + "x" * max(0, low - len(text))


def sample(schema: Any, root: dict[str, Any], prompt: str, path: str, depth: int = 0) -> Any:
    """A deterministic value valid under `schema` (the usual keywords; `pattern` is ignored)."""
    if not isinstance(schema, dict) or depth > 20:
        return None
    if isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#"):
        node: Any = root
        for part in filter(None, schema["$ref"][1:].split("/")):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return sample(node, root, prompt, path, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return _pick(schema["enum"], prompt, path)
    for keyword in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(keyword) or [] if isinstance(o, dict)]
        if options:
            useful = [o for o in options if o.get("type") != "null"] or options
            return sample(useful[0], root, prompt, path, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties") or {}
        return {
            name: sample(sub, root, prompt, f"{path}/{name}", depth + 1)
            for name, sub in props.items()
        }
    if kind == "array":
        count = max(1, schema.get("minItems", 1))
        if "maxItems" in schema:
            count = min(count, schema["maxItems"])
        items = schema.get("items", {})
        return [sample(items, root, prompt, f"{path}/{i}", depth + 1) for i in range(count)]
    if kind in ("integer", "number"):
        return _number(schema, prompt, path, kind == "integer")
    if kind == "boolean":
        return zlib.crc32(f"{path}\0{prompt}".encode()) % 2 == 0
    if kind == "null":
        return None
    return _string(schema, prompt, path)
