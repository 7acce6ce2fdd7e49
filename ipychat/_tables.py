"""Small tables for `%chat_config`: escaped HTML in notebooks, aligned text in terminals.

Cells hold untrusted text (model replies in `--history`, server model names in `--models`).
In HTML every cell is escaped, so nothing in it becomes markup. In a terminal, control and
invisible characters are shown as escapes (`_safetext.visible`), and long values wrap within
their column instead of being cut: a history is for reading.
"""

from __future__ import annotations

import html
import shutil
import textwrap
from typing import Any

from ._safetext import visible

__all__ = ["HistoryTable", "SessionsTable", "SettingsTable", "Table"]

_MIN_WIDTH = 8


class Table:
    """A small table with escaped cells: HTML in notebooks, aligned, wrapped text in terminals."""

    def __init__(self, header: list[str], rows: list[tuple[str, ...]]) -> None:
        self.header = header
        self.rows = rows

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in self.header)
        body = "".join(
            "<tr>"
            + "".join(
                f"<td style='text-align:left; white-space:pre-wrap'>{html.escape(c)}</td>"
                for c in row
            )
            + "</tr>"
            for row in self.rows
        )
        from ._math import inert_html  # MathJax must not typeset `$…$` in any cell

        return inert_html(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def __repr__(self) -> str:
        return self.text(shutil.get_terminal_size((100, 24)).columns)

    def text(self, width: int) -> str:
        """The table in lines of at most `width` characters (each column at least 8 wide)."""
        table = [
            [visible(cell).expandtabs(4).split("\n") for cell in row]
            for row in [self.header, *self.rows]
        ]
        columns = range(len(self.header))
        natural = [max(len(line) for row in table for line in row[i]) for i in columns]
        widths = _fit(natural, width - 2 * (len(natural) - 1))
        lines = []
        for row in table:
            wrapped = [_wrap(cell, w) for cell, w in zip(row, widths, strict=True)]
            height = max(len(cell) for cell in wrapped)
            for i in range(height):
                parts = [cell[i] if i < len(cell) else "" for cell in wrapped]
                lines.append("  ".join(p.ljust(w) for p, w in zip(parts, widths, strict=True)))
        return "\n".join(line.rstrip() for line in lines)


def _fit(natural: list[int], available: int) -> list[int]:
    """Column widths: narrow columns keep their width, the wide ones share what is left."""
    widths = [0] * len(natural)
    left = max(available, _MIN_WIDTH * len(natural))
    for count, i in enumerate(sorted(range(len(natural)), key=natural.__getitem__)):
        share = left // (len(natural) - count)
        widths[i] = max(1, min(natural[i], max(share, _MIN_WIDTH)))
        left -= widths[i]
    return widths


def _wrap(lines: list[str], width: int) -> list[str]:
    """A cell's lines wrapped at `width`, long words broken; an empty cell is one empty line."""
    out: list[str] = []
    for line in lines:
        out += textwrap.wrap(line, width, break_on_hyphens=False) or [""]
    return out or [""]


class SettingsTable(Table):
    """Every setting with its value and where the value came from."""

    def __init__(self, settings: Any, session: str) -> None:
        rows = [(k, v, s) for k, v, s in settings.describe()]
        rows.append(("(session)", session, "%chat_config --use -s NAME"))
        super().__init__(["setting", "value", "from"], rows)


class HistoryTable(Table):
    """A session's messages, oldest first, with the cell each came from (`In [n]`).

    An interrupted reply is marked incomplete.
    """

    def __init__(self, conversation: Any) -> None:
        rows = [
            (str(i), _cell_label(m), m.role + (" (incomplete)" if m.incomplete else ""), m.content)
            for i, m in enumerate(conversation.all_messages())
        ]
        super().__init__(["#", "cell", "role", "content"], rows)


def _cell_label(message: Any) -> str:
    """`In [5]` for a cell run with a count, the id's start for one without, else nothing."""
    if message.execution_count is not None:
        return f"In [{message.execution_count}]"
    if message.cell_id:
        return f"cell {message.cell_id[:8]}"
    return ""


class SessionsTable(Table):
    """The sessions of this kernel, with their length and which one `%%chat` uses."""

    def __init__(self, sessions: Any) -> None:
        rows = [
            (name, str(len(sessions.get(name))), "yes" if name == sessions.current else "")
            for name in sessions.names()
        ]
        super().__init__(["session", "exchanges", "current"], rows)
