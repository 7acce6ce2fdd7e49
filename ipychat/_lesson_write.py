"""Writing lesson scripts: recorded exchanges as `[[turn]]` tables that `_lesson` reads back.

Recorded turns match their prompt as text (whitespace and case ignored) rather than as a regex,
so a prompt with `(`, `?` or `*` replays as written. TOML is written by tomli-w, not by hand.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

__all__ = ["HEADER", "Recorder", "dumps_turns", "turn_table"]

HEADER = """\
# A lesson recorded by ipychat. Replay it offline with
#     python -m ipychat serve --script {name} --pace recorded
# Each [[turn]] answers a prompt matched as text (whitespace and case ignored). Edit freely:
# `prompt` may become a regex if you remove `match = "text"`.

"""


def turn_table(
    prompt: str,
    reply: str,
    *,
    reasoning: str = "",
    finish_reason: str | None = "stop",
    usage: dict[str, int] | None = None,
    timing: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One `[[turn]]` table, with only the keys that say something."""
    table: dict[str, Any] = {"prompt": prompt, "match": "text", "reply": reply}
    if reasoning:
        table["reasoning"] = reasoning
    if finish_reason and finish_reason != "stop":
        table["finish_reason"] = finish_reason
    if usage:
        table["usage"] = dict(usage)
    if timing:
        table["timing"] = dict(timing)
    return table


def dumps_turns(turns: list[dict[str, Any]]) -> str:
    """The TOML text of `[[turn]]` tables, multi-line replies kept readable.

    Each table is written under its own `[[turn]]` header (tomli-w would write a turn without
    sub-tables as an inline array, which appended after another turn's `[turn.timing]` would
    land inside it).
    """
    import tomli_w

    parts = []
    for turn in turns:
        flat = {k: v for k, v in turn.items() if not isinstance(v, dict)}
        text = "[[turn]]\n" + tomli_w.dumps(flat, multiline_strings=True)
        for key, table in turn.items():
            if isinstance(table, dict):
                text += f"\n[turn.{key}]\n" + tomli_w.dumps(table)
        parts.append(text)
    return "\n".join(parts)


class Recorder:
    """Appends turns to a lesson file as they happen, one whole table at a time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.count = 0
        if self.path.is_dir():
            raise ValueError(f"{self.path}: is a folder; give a file name such as lesson.toml.")
        if not self.path.parent.is_dir():
            raise ValueError(f"{self.path}: its folder does not exist.")

    def __repr__(self) -> str:
        return f"Recorder({str(self.path)!r})"

    def append(self, turn: dict[str, Any]) -> None:
        text = dumps_turns([turn])
        with self._lock:
            new = not self.path.exists() or self.path.stat().st_size == 0
            with self.path.open("a", encoding="utf-8") as file:
                file.write((HEADER.format(name=self.path.name) if new else "\n") + text)
            self.count += 1
