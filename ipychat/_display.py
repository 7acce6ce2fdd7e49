"""Showing a reply while it streams, then leaving a static, safe output behind.

Views share one interface, driven from the main thread by `_live`: `add` each delta (cheap:
it only keeps it), `refresh` when the timer says (the view decides what, if anything, to
send), then `finish` with the final reply or `discard` when there is none.

- `NotebookView` (`_notebook_view`): a Jupyter front end, with widgets or without.
- `TextView`: terminal IPython and scripts: text printed as it arrives, made terminal-safe.
- `NullView`: `--quiet`, and the line magic, whose reply is returned rather than shown.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._chunks import Delta
    from ._live import LiveStatus
    from ._reply import Reply

__all__ = ["NullView", "ReplyView", "TextView", "make_view"]


class ReplyView(Protocol):
    updates: int

    def add(self, delta: Delta) -> None: ...

    def pending(self) -> bool: ...

    def refresh(self, *, paused: bool = False) -> None: ...

    def finish(
        self, reply: Reply, *, keep: bool = True, exchange: dict[str, Any] | None = None
    ) -> None: ...

    def discard(self) -> None: ...


class TextView:
    """Prints text as it arrives: for terminal IPython, `ipython -c` and scripts.

    Model text never reaches the terminal raw: `terminal_safe` shows escapes and controls as
    `\\x1b`-style text. A reply ends with its status line (dimmed on a terminal).
    """

    DIM, RESET = "\x1b[2m", "\x1b[0m"

    def __init__(self, stream: Any = None) -> None:
        self.out = stream or sys.stdout
        self.color = bool(getattr(self.out, "isatty", lambda: False)())
        self.in_reasoning = False
        self.wrote = False
        self.updates = 0
        self.held = ""  # a trailing CR, kept until we know whether a LF follows it
        self.queued: list[tuple[str, str]] = []

    def add(self, delta: Delta) -> None:
        self.queued.append(delta)

    def pending(self) -> bool:
        return bool(self.queued)

    def refresh(self, *, paused: bool = False) -> None:
        if not self.queued:
            return
        from ._safetext import terminal_safe

        write = self.out.write
        for content, reasoning in self.queued:
            if reasoning:
                if not self.in_reasoning:
                    write(self.DIM if self.color else "[reasoning] ")
                    self.in_reasoning = True
                write(terminal_safe(reasoning))
            if content:
                if self.in_reasoning:
                    write((self.RESET if self.color else "") + "\n\n")
                    self.in_reasoning = False
                text = self.held + content
                self.held = "\r" if text.endswith("\r") else ""
                write(terminal_safe(text[:-1] if self.held else text))
                self.wrote = True
        self.queued.clear()
        self.out.flush()
        self.updates += 1

    def finish(
        self, reply: Reply, *, keep: bool = True, exchange: dict[str, Any] | None = None
    ) -> None:
        from ._render import status_line
        from ._safetext import one_line, terminal_safe

        self.refresh()
        if self.held:
            self.out.write(terminal_safe(self.held))
        if self.in_reasoning and self.color:
            self.out.write(self.RESET)
        if not self.wrote and reply.text and keep:  # a non-streamed reply
            self.out.write(terminal_safe(reply.text))
        if self.wrote or (reply.text and keep):
            self.out.write("\n")
        if keep or not reply.complete:
            status = f"[{one_line(status_line(reply))}]"
            self.out.write(f"{self.DIM}{status}{self.RESET}\n" if self.color else status + "\n")
        self.out.flush()

    def discard(self) -> None:
        self.refresh()
        if self.wrote:
            self.out.write("\n")
            self.out.flush()


class NullView:
    """`--quiet`, and the line magic, whose reply is returned rather than shown.

    For the line magic (`exchange_only`), a recorded exchange is still saved, with no visible
    text, so `%chat_config --restore` finds the turn in the notebook.
    """

    updates = 0

    def __init__(self, *, exchange_only: bool = False) -> None:
        self.exchange_only = exchange_only

    def add(self, delta: Delta) -> None:
        pass

    def pending(self) -> bool:
        return False

    def refresh(self, *, paused: bool = False) -> None:
        pass

    def finish(
        self, reply: Reply, *, keep: bool = True, exchange: dict[str, Any] | None = None
    ) -> None:
        if self.exchange_only and exchange is not None and in_kernel():
            from IPython.display import display

            from ._exchange import MIME_TYPE

            display({"text/plain": "", MIME_TYPE: exchange}, raw=True)

    def discard(self) -> None:
        pass


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where rich display reaches a front end)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def make_view(mode: str, status: LiveStatus) -> ReplyView:
    """`mode` is auto, widget, html, text, quiet or returned (the line magic's reply).

    auto picks widget in a kernel and text elsewhere.
    """
    if mode == "auto":
        mode = "widget" if in_kernel() else "text"
    if mode in ("widget", "html"):
        from ._notebook_view import NotebookView

        return NotebookView(status, widgets=mode == "widget")
    if mode == "text":
        return TextView()
    return NullView(exchange_only=mode == "returned")
