"""Lesson scripts: the TOML `[[turn]]` tables the offline server answers from.

A turn's `prompt` is a regex searched case-insensitively in the student's last message, or,
with `match = "text"` (what recording writes), the whole message compared with whitespace runs
and case ignored. A recorded turn also keeps the model's `usage` and the stream's `timing`, so
a replay reports the same counts and streams at the recorded pace. Checked up front, so a typo
fails when the server starts and not in the middle of a lesson. Stdlib only: the server runs in
classrooms without IPython.
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

__all__ = [
    "BUNDLED",
    "Timing",
    "Turn",
    "bundled_lessons",
    "find_turn",
    "load_script",
    "normalize",
    "resolve_script",
]

BUNDLED = Path(__file__).parent / "lessons"
_TEXT_KEYS = ("prompt", "reply", "reasoning", "finish_reason", "match")
_TABLE_KEYS = {
    "usage": ("prompt_tokens", "completion_tokens", "total_tokens"),
    "timing": ("time_to_first_token", "tokens_per_second", "tokens"),
}
_MATCHES = ("regex", "text")

Script = str | Path | list[dict[str, Any]] | None


@dataclass(frozen=True)
class Timing:
    """How a recorded stream went: seconds to the first token, then tokens (chunks) a second."""

    time_to_first_token: float
    tokens_per_second: float
    tokens: int

    def delays(self, chunks: int) -> tuple[float, float]:
        """(first, each later) delay to send `chunks` chunks over the recorded stream's length.

        The recorded length is kept even when the replay cuts the text into a different number
        of chunks than the live model did, so the class sees the pace the teacher saw.
        """
        if self.tokens_per_second <= 0 or chunks < 2:
            return self.time_to_first_token, 0.0
        seconds = max(self.tokens - 1, 1) / self.tokens_per_second
        return self.time_to_first_token, seconds / (chunks - 1)


@dataclass(frozen=True)
class Turn:
    """One scripted answer: the prompt it answers, and what to send back."""

    prompt: re.Pattern[str] | str  # a regex, or a normalized text for match = "text"
    reply: str
    reasoning: str = ""
    finish_reason: str = "stop"
    usage: dict[str, int] | None = None
    timing: Timing | None = None

    def matches(self, prompt: str, normalized: str) -> bool:
        if isinstance(self.prompt, str):
            return self.prompt == normalized
        return self.prompt.search(prompt) is not None


def normalize(text: str) -> str:
    """A prompt as text matching sees it: whitespace runs made one space, case folded."""
    return " ".join(text.split()).casefold()


def bundled_lessons() -> dict[str, Path]:
    """The lesson scripts shipped with ipychat, by name (file name without `.toml`)."""
    return {path.stem: path for path in sorted(BUNDLED.glob("*.toml"))}


def resolve_script(script: str) -> Path:
    """A script given by path, or by a bundled lesson's name (`intro`)."""
    path = Path(script)
    if path.exists():
        return path
    bundled = bundled_lessons()
    if script in bundled:
        return bundled[script]
    names = ", ".join(bundled) or "none"
    raise ValueError(f"{script}: no such file, nor a bundled lesson (bundled: {names}).")


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
    normalized = normalize(prompt)
    return next((turn for turn in turns if turn.matches(prompt, normalized)), None)


def _parse_turn(name: str, number: int, turn: object) -> Turn:
    where = f"{name}: turn {number}"
    if not isinstance(turn, dict):
        raise ValueError(f"{where} must be a table with a prompt and a reply.")
    for key in ("prompt", "reply"):
        if key not in turn:
            raise ValueError(f"{where} is missing {key!r}.")
    tables: dict[str, dict[str, Any]] = {}
    for key, value in turn.items():
        if key in _TABLE_KEYS:
            tables[key] = _table(where, key, value)
        elif key not in _TEXT_KEYS:
            allowed = ", ".join((*_TEXT_KEYS, *_TABLE_KEYS))
            raise ValueError(f"{where} has unknown key {key!r}; allowed: {allowed}.")
        elif not isinstance(value, str):
            raise ValueError(f"{where}: {key!r} must be a string.")
    match = turn.get("match", "regex")
    if match not in _MATCHES:
        raise ValueError(f"{where}: match must be 'regex' or 'text', not {match!r}.")
    prompt: re.Pattern[str] | str
    if match == "text":
        prompt = normalize(turn["prompt"])
    else:
        try:
            prompt = re.compile(turn["prompt"], re.IGNORECASE)
        except re.error as error:
            message = f"{where}: prompt {turn['prompt']!r} is not a valid regex: {error}."
            raise ValueError(message) from None
    timing = Timing(**tables["timing"]) if "timing" in tables else None
    reasoning, finish_reason = turn.get("reasoning", ""), turn.get("finish_reason", "stop")
    return Turn(prompt, turn["reply"], reasoning, finish_reason, tables.get("usage"), timing)


def _table(where: str, key: str, value: object) -> dict[str, Any]:
    """Check a turn's `usage` or `timing` table: all its keys, each a non-negative number."""
    keys = _TABLE_KEYS[key]
    if not isinstance(value, dict) or set(value) != set(keys):
        raise ValueError(f"{where}: {key!r} must be a table of {', '.join(keys)}.")
    for name, number in value.items():
        whole = key == "usage" or name == "tokens"
        kinds = (int,) if whole else (int, float)
        if isinstance(number, bool) or not isinstance(number, kinds) or number < 0:
            kind = "a whole number" if whole else "a number"
            raise ValueError(f"{where}: {key}.{name} must be {kind} >= 0, not {number!r}.")
    return value
