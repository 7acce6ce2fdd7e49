"""Rebuild sessions from a saved notebook: its reply outputs are the conversation's record.

Each recorded reply leaves its exchange in the notebook under `_exchange.MIME_TYPE`. Reading
the notebook in cell order gives every session back, with no request: exchanges keep the id of
the cell they sit in (the id JupyterLab will send when that cell runs again, so a re-run after
a restore replaces its turn). What cannot be read is skipped and named; the rest restores.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._conversation import Conversation, SessionRegistry
from ._errors import ConversationError
from ._exchange import MIME_TYPE, SavedExchange, read_exchange
from ._messages import Message

__all__ = ["Restored", "notebook_path", "read_notebook", "restore"]

_SHOWN_SKIPS = 5


@dataclass
class Restored:
    """What a restore found: sessions with their conversations, and what it skipped."""

    path: Path
    conversations: dict[str, Conversation] = field(default_factory=dict)
    cells: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def exchanges(self) -> int:
        return sum(len(c) for c in self.conversations.values())

    def summary(self) -> str:
        """One line: what was restored and what was skipped, and why."""
        n, m, k = len(self.conversations), self.exchanges, self.cells
        line = (
            f"Restored {n} session{'s' * (n != 1)}, {m} exchange{'s' * (m != 1)} "
            f"from {k} cell{'s' * (k != 1)} of {self.path.name}"
        )
        if self.conversations:
            line += f" ({', '.join(self.conversations)})"
        if self.skipped:
            shown = "; ".join(self.skipped[:_SHOWN_SKIPS])
            more = len(self.skipped) - _SHOWN_SKIPS
            line += f"; skipped {shown}" + (f"; and {more} more" if more > 0 else "")
        return line + "."


def notebook_path(user_ns: dict[str, Any] | None = None) -> Path | None:
    """The notebook this kernel belongs to, when the front end says so.

    JupyterLab and Notebook 7 start kernels with `JPY_SESSION_NAME` (the notebook's path),
    which ipykernel also puts in `__session__`; VS Code sets `__vsc_ipynb_file__`.
    """
    ns = user_ns or {}
    for candidate in (
        ns.get("__session__"),
        ns.get("__vsc_ipynb_file__"),
        os.environ.get("JPY_SESSION_NAME"),
    ):
        if isinstance(candidate, str) and candidate.endswith(".ipynb"):
            path = Path(candidate).expanduser()
            if path.is_file():
                return path
    return None


def read_notebook(path: str | Path) -> Restored:
    """Read the sessions saved in the notebook at `path` (no request, nothing changed)."""
    path = Path(path).expanduser()
    try:
        with path.open(encoding="utf-8") as file:
            notebook = json.load(file)
    except UnicodeDecodeError:
        raise ConversationError(f"{path} is not a notebook (not text).") from None
    except ValueError as exc:
        raise ConversationError(f"{path} is not a notebook (not valid JSON: {exc}).") from None
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        old = isinstance(notebook, dict) and "worksheets" in notebook
        hint = " (nbformat 3: open and save it in a current Jupyter first)" if old else ""
        raise ConversationError(f"{path} is not a notebook: it has no list of cells{hint}.")
    restored = Restored(path)
    found: dict[str, list[tuple[SavedExchange, str | None, int | None]]] = {}
    for number, cell in enumerate(cells, 1):
        saved = _cell_exchanges(cell, number, restored.skipped)
        if not saved:
            continue
        restored.cells += 1
        cell_id = cell.get("id") if isinstance(cell.get("id"), str) else None
        count = cell.get("execution_count")
        count = count if isinstance(count, int) and not isinstance(count, bool) else None
        for exchange in saved:
            found.setdefault(exchange.session, []).append(
                (exchange, cell_id or exchange.cell_id, count or exchange.execution_count)
            )
    for name, items in found.items():
        system = next((e.system for e, _, _ in reversed(items) if e.system), None)
        messages: list[Message] = []
        for exchange, cell_id, count in items:
            messages += [
                Message("user", exchange.user, cell_id=cell_id, execution_count=count),
                Message(
                    "assistant",
                    exchange.reply,
                    exchange.incomplete,
                    dict(exchange.meta or {}),
                    cell_id,
                    count,
                ),
            ]
        restored.conversations[name] = Conversation(system, messages, name=name)
    return restored


def _cell_exchanges(cell: object, number: int, skipped: list[str]) -> list[SavedExchange]:
    """The readable exchanges in one cell's outputs, in order; the unreadable named."""
    if not isinstance(cell, dict) or cell.get("cell_type") != "code":
        return []
    outputs = cell.get("outputs")
    if not isinstance(outputs, list):
        return []
    saved: list[SavedExchange] = []
    marked = False
    for output in outputs:
        data = output.get("data") if isinstance(output, dict) else None
        if not isinstance(data, dict) or MIME_TYPE not in data:
            continue
        marked = True
        try:
            saved.append(read_exchange(data[MIME_TYPE]))
        except ConversationError as exc:
            skipped.append(f"cell {number} ({exc})")
    if not marked and _shows_reply(outputs) and _chat_source(cell.get("source")):
        skipped.append(f"cell {number} (a reply without a saved exchange, from an older ipychat)")
    return saved


def _shows_reply(outputs: list[Any]) -> bool:
    return any(
        isinstance(o, dict) and isinstance(o.get("data"), dict) and "text/html" in o["data"]
        for o in outputs
    )


def _chat_source(source: object) -> bool:
    """A `%%chat` cell that records its exchange (a one-shot `--no-history` records none)."""
    text = "".join(source) if isinstance(source, list) else source
    if not isinstance(text, str):
        return False
    first = text.lstrip().split("\n", 1)[0]
    return first.startswith(("%%chat", "%%ipychat")) and "--no-history" not in first


def restore(path: str | Path, registry: SessionRegistry) -> Restored:
    """Read the notebook and put its sessions into `registry`, replacing same-named ones."""
    restored = read_notebook(path)
    for conversation in restored.conversations.values():
        registry.add(conversation)
    return restored
