"""Text from chunk and message shapes that are not the usual one.

The streaming hot path reads the usual shape (`choices[0].delta.content` a string) directly and
comes here only when that fails, so none of this costs anything on a normal stream. What a
server can mean is taken as text (`content` as a list of parts, `[{"type": "text", "text":
...}]`, is OpenAI's format for multi-part content; a bare string `delta`; a number); what it
cannot mean is skipped with a note for the reply's warnings, never raised as a TypeError.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ._safetext import one_line

__all__ = ["choice_text", "finish_text", "first_choice", "text_of"]

Warn = Callable[[str], None]


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def text_of(value: object, field: str, warn: Warn) -> str:
    """`content` (or reasoning) of any shape as text: parts joined, numbers written out."""
    if isinstance(value, str):
        return value
    if value is None or value is False or value == []:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, list):
        texts = []
        for part in value:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])  # {"type": "text", "text": ...} and its kin
            elif part is not None:
                kind = part.get("type") if isinstance(part, dict) else None
                label = one_line(str(kind), 40) if kind else _kind(part)
                warn(f"Skipped a part of {field} that is not text ({label}).")
        return "".join(texts)
    warn(f"Skipped {field} that is not text ({_kind(value)}).")
    return ""


def finish_text(value: object) -> str | None:
    """A finish reason of any type as a short string (None for none)."""
    if value is None or value == "" or value is False:
        return None
    if isinstance(value, str):
        return value if len(value) <= 40 and value.isprintable() else one_line(value, 40)
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return one_line(value["type"], 40)
    return one_line(json.dumps(value, default=str), 40)


def first_choice(choices: object, warn: Warn) -> dict[str, Any] | None:
    """The choice with index 0 from `choices` of any shape, or None when there is none."""
    if isinstance(choices, dict):
        if not any(key in choices for key in ("delta", "message", "finish_reason", "text")):
            warn("Skipped a chunk whose choices is an object, not a list.")
            return None
        choices = [choices]
    if not isinstance(choices, list):
        if choices not in (None, "", 0, False):
            warn(f"Skipped a chunk whose choices is not a list ({_kind(choices)}).")
        return None
    for choice in choices:
        if not isinstance(choice, dict):
            warn(f"Skipped a choice that is not an object ({_kind(choice)}).")
            continue
        if choice.get("index", 0) in (0, "0", None):
            return choice
    return None


def choice_text(choice: dict[str, Any], key: str, warn: Warn) -> tuple[str, str]:
    """(content, reasoning) of one choice's `delta` or `message`, whatever their shape."""
    message = choice.get(key)
    if message is None and key == "delta":
        message = choice.get("message")  # some servers stream whole messages
    if message is None or message == {}:
        text = choice.get("text")  # the legacy completions shape
        return (text if isinstance(text, str) else "", "")
    if isinstance(message, str):
        return message, ""
    if not isinstance(message, dict):
        warn(f"Skipped a {key} that is not an object ({_kind(message)}).")
        return "", ""
    content = text_of(message.get("content"), "content", warn)
    reasoning = message.get("reasoning_content")
    if reasoning is None:
        reasoning = message.get("reasoning")
    return content, text_of(reasoning, "reasoning", warn)
