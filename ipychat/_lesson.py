"""Lesson scripts: the TOML `[[turn]]` tables the offline server answers from.

A turn's `prompt` is a regex searched case-insensitively in the student's last message. Checked
up front, so a typo fails when the server starts and not in the middle of a lesson. Stdlib only:
the server runs in classrooms without IPython.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["Turn", "find_turn", "load_script"]

_TURN_KEYS = ("prompt", "reply", "reasoning", "finish_reason")

Script = str | Path | list[dict[str, Any]] | None


@dataclass(frozen=True)
class Turn:
    """One scripted answer: the prompt it answers, and what to send back."""

    prompt: re.Pattern[str]
    reply: str
    reasoning: str = ""
    finish_reason: str = "stop"


def load_script(script: Script) -> list[Turn]:
    """Parse and check a lesson script up front, so a typo fails at start and not mid-lesson.

    `script` is a TOML file of `[[turn]]` tables, or the list of those tables already parsed.
    """
    if script is None:
        return []
    if isinstance(script, (str, Path)):
        name = str(script)
        try:
            data = tomllib.loads(Path(script).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{name}: not valid TOML: {error}") from error
        unknown = sorted(set(data) - {"turn"})
        if unknown:
            raise ValueError(f"{name}: unknown top-level key {unknown[0]!r}; use [[turn]] tables.")
        turns = data.get("turn", [])
    else:
        name, turns = "<script>", script
    if not isinstance(turns, list):
        raise ValueError(f"{name}: turns must be a list of [[turn]] tables.")
    return [_parse_turn(name, number, turn) for number, turn in enumerate(turns, 1)]


def find_turn(turns: list[Turn], prompt: str) -> Turn | None:
    """The first turn whose prompt matches the student's message, or None."""
    return next((turn for turn in turns if turn.prompt.search(prompt)), None)


def _parse_turn(name: str, number: int, turn: object) -> Turn:
    where = f"{name}: turn {number}"
    if not isinstance(turn, dict):
        raise ValueError(f"{where} must be a table with a prompt and a reply.")
    for key in ("prompt", "reply"):
        if key not in turn:
            raise ValueError(f"{where} is missing {key!r}.")
    for key, value in turn.items():
        if key not in _TURN_KEYS:
            raise ValueError(f"{where} has unknown key {key!r}; allowed: {', '.join(_TURN_KEYS)}.")
        if not isinstance(value, str):
            raise ValueError(f"{where}: {key!r} must be a string.")
    try:
        pattern = re.compile(turn["prompt"], re.IGNORECASE)
    except re.error as error:
        message = f"{where}: prompt {turn['prompt']!r} is not a valid regex: {error}."
        raise ValueError(message) from None
    reasoning, finish_reason = turn.get("reasoning", ""), turn.get("finish_reason", "stop")
    return Turn(pattern, turn["reply"], reasoning, finish_reason)
