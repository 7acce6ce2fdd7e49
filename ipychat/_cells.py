"""Which notebook cell is running: the key that ties an exchange to the cell that made it.

Front ends send the cell's id with each execute request (`metadata.cellId`: JupyterLab and
Notebook 7 send the nbformat cell id, VS Code the cell's document URI), and IPython hands it to
`pre_run_cell` handlers as `ExecutionInfo.cell_id`. JupyterLab also sends the ids of the cells
deleted since its last execute request as `metadata.deletedCells`. Recent IPython (9.x) passes
the whole request metadata as `ExecutionInfo.cell_meta`; without it, ipykernel's parent request
(`kernel.get_parent("shell")`) has the same metadata. Terminal IPython, scripts and widget
callbacks run no cell: `current` is None there, and exchanges append as they always did.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._conversation import SessionRegistry

__all__ = ["CellRun", "CellTracker"]

_runs = itertools.count(1)


@dataclass(frozen=True)
class CellRun:
    """One execution of one cell: a re-run of the same cell has the same `id`, a new `run`."""

    id: str
    run: int = 0
    execution_count: int | None = None


class CellTracker:
    """Follows `pre_run_cell`/`post_run_cell`; drops the exchanges of deleted cells."""

    def __init__(self, registry: SessionRegistry | None, shell: Any = None) -> None:
        self.registry = registry  # None: the process's `sessions`, once the module is imported
        self.shell = shell
        self.current: CellRun | None = None
        self._sent_to: set[str] = set()  # sessions this run sent to
        self.dropped = 0  # exchanges dropped because their cell was deleted (for tests, notes)

    def register(self, shell: Any) -> None:
        shell.events.register("pre_run_cell", self.pre_run_cell)
        shell.events.register("post_run_cell", self.post_run_cell)

    def unregister(self, shell: Any) -> None:
        for event, handler in (
            ("pre_run_cell", self.pre_run_cell),
            ("post_run_cell", self.post_run_cell),
        ):
            with contextlib.suppress(ValueError):  # never registered
                shell.events.unregister(event, handler)
        self.current = None

    def sending(self, session: str) -> None:
        """Note that this cell run sends in `session` (its old exchange there is its to replace)."""
        self._sent_to.add(session)

    def pre_run_cell(self, info: Any) -> None:
        self._sent_to = set()
        cell_id = getattr(info, "cell_id", None)
        deleted = _deleted_cells(info, self.shell)
        registry = self._sessions()
        if deleted and registry is not None:
            self.dropped += registry.drop_cells(deleted)
        if not isinstance(cell_id, str) or not cell_id:
            self.current = None
            return
        count = None
        if self.shell is not None and getattr(info, "store_history", False):
            count = self.shell.execution_count - 1  # IPython counted this cell before the event
        self.current = CellRun(cell_id, next(_runs), count)

    def post_run_cell(self, result: Any) -> None:
        registry = self._sessions()
        if self.current is not None and registry is not None:
            self.dropped += registry.retire_cell(self.current, keep=self._sent_to)
        self.current = None

    def _sessions(self) -> SessionRegistry | None:
        """The registry to tidy; None while `ipychat._conversation` is not imported.

        `%load_ext` does not import it: until something does, no session and no exchange
        exist, so there is nothing to drop.
        """
        if self.registry is not None:
            return self.registry
        module = sys.modules.get("ipychat._conversation")
        return None if module is None else module.sessions


def _deleted_cells(info: Any, shell: Any) -> list[str]:
    """The `deletedCells` ids of the execute request that started this cell, if any."""
    meta = getattr(info, "cell_meta", None)
    if not isinstance(meta, dict):
        meta = _parent_metadata(shell)
    ids = meta.get("deletedCells") if isinstance(meta, dict) else None
    if not isinstance(ids, list):
        return []
    return [i for i in ids if isinstance(i, str) and i]


def _parent_metadata(shell: Any) -> dict[str, Any] | None:
    """The execute request's metadata from ipykernel (IPython < 9 has no `cell_meta`)."""
    kernel = getattr(shell, "kernel", None)
    get_parent = getattr(kernel, "get_parent", None)
    if get_parent is None:
        return None
    try:
        parent = get_parent("shell")
    except Exception:  # an ipykernel without channels: nothing to read
        return None
    meta = parent.get("metadata") if isinstance(parent, dict) else None
    return meta if isinstance(meta, dict) else None
