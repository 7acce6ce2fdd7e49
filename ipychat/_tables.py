"""Small tables for `%chat_config`: escaped HTML in notebooks, aligned text in terminals."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["HistoryTable", "SessionsTable", "SettingsTable", "Table"]


class Table:
    """A small table with escaped cells: HTML in notebooks, aligned text in terminals."""

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
        table = [self.header, *[list(r) for r in self.rows]]
        widths = [min(60, max(len(r[i]) for r in table)) for i in range(len(self.header))]
        lines = [
            "  ".join(c[:60].ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in table
        ]
        return "\n".join(lines)


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
