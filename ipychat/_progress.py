"""A batch's progress while it runs, and the static summary it leaves behind.

The batch thread only counts; the calling thread draws, a few times a second at most (`tick`
is called every 0.1 s and draws when 0.25 s have passed), so a thousand fast replies cost a
handful of display messages. In a notebook a progress bar widget is shown through a display
id, which is replaced at the end by plain HTML and text, so the saved notebook shows the
summary without widget state. In a terminal it is one line rewritten in place; with -q
(`progress=False`) nothing is shown.
"""

from __future__ import annotations

import collections
import html
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

from ._safetext import one_line

if TYPE_CHECKING:
    from ._batch import Batch
    from ._batchrun import Limiter

__all__ = ["make_progress", "summary_html"]

_INTERVAL = 0.25
_SHOWN_FAILURES = 5


class _Progress:
    def __init__(self, batch: Batch, limiter: Limiter, counter: collections.Counter[str]) -> None:
        self.batch = batch
        self.limiter = limiter
        self.counter = counter
        self.started = time.perf_counter()
        self.next_draw = 0.0
        self.draws = 0

    def line(self) -> str:
        """done / failed / in flight, tokens, rate and time left, on one line."""
        batch, now = self.batch, time.perf_counter()
        total, done, failed = len(batch), batch.done, len(batch.failed)
        elapsed = now - self.started
        finished = self.counter["done"] + self.counter["failed"]
        rate = finished / elapsed if elapsed > 0 else 0.0
        left = total - done - failed
        parts = [f"{done}/{total} done"]
        if failed:
            parts.append(f"{failed} failed")
        parts.append(f"{self.limiter.in_flight} in flight")
        parts.append(f"{self.counter['tokens']:,} tokens")
        if rate > 0:
            parts.append(f"{rate:.1f}/s")
            parts.append(f"{left / rate:.0f} s left")
        return " · ".join(parts)

    def update(self) -> None:
        now = time.perf_counter()
        if now >= self.next_draw:
            self.next_draw = now + _INTERVAL
            self.draws += 1
            self.draw()

    def draw(self) -> None:
        pass

    def finish(self) -> None:
        pass


class _TextProgress(_Progress):
    """One line, rewritten in place with a carriage return; the summary stays at the end."""

    def __init__(self, *args: Any, stream: Any = None) -> None:
        super().__init__(*args)
        self.out = stream or sys.stderr

    def draw(self) -> None:
        self.out.write("\r" + self.line() + "\x1b[K")
        self.out.flush()

    def finish(self) -> None:
        end = "\x1b[K\n" if self.draws else "\n"
        self.out.write("\r" + one_line(self.batch.summary()) + end)
        self.out.flush()


class _WidgetProgress(_Progress):
    """A progress bar widget, replaced by the static summary when the batch ends."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        import ipywidgets
        from IPython.display import display

        self.bar = ipywidgets.IntProgress(value=0, min=0, max=max(1, len(self.batch)))
        self.label = ipywidgets.HTML()
        self.box = ipywidgets.HBox([self.bar, self.label])
        self.display_id = uuid.uuid4().hex
        bundle = {
            "text/plain": "ipychat.map: starting",
            "application/vnd.jupyter.widget-view+json": {
                "version_major": 2,
                "version_minor": 0,
                "model_id": self.box.model_id,
            },
        }
        display(bundle, raw=True, display_id=self.display_id)

    def draw(self) -> None:
        self.bar.value = self.batch.done + len(self.batch.failed)
        self.label.value = html.escape(self.line())

    def finish(self) -> None:
        from IPython.display import update_display

        bundle = {"text/html": summary_html(self.batch), "text/plain": self.batch.summary()}
        update_display(bundle, raw=True, display_id=self.display_id)
        for widget in (self.bar, self.label, self.box):
            for part in (widget, widget.layout, getattr(widget, "style", None)):
                if part is not None:
                    part.close()


def summary_html(batch: Batch) -> str:
    """The static summary: one line, then the first failures folded below it."""
    from ._math import IGNORE_CLASS  # server errors and inputs must not be typeset by MathJax

    head = f"<b>ipychat.map</b>: {html.escape(batch.summary())}"
    failed = list(batch.failed.items())
    if not failed:
        return f'<div class="ipychat-batch {IGNORE_CLASS}">{head}</div>'
    rows = "".join(
        f"<li><code>{html.escape(one_line(repr(label), 60))}</code>: "
        f"{html.escape(one_line(error, 200))}</li>"
        for label, error in failed[:_SHOWN_FAILURES]
    )
    more = len(failed) - _SHOWN_FAILURES
    if more > 0:
        rows += f"<li>and {more} more (see <code>.failed</code>)</li>"
    return (
        f'<div class="ipychat-batch {IGNORE_CLASS}">{head}<details><summary>failures</summary>'
        f"<ul>{rows}</ul></details></div>"
    )


def make_progress(
    mode: str | bool, batch: Batch, limiter: Limiter, counter: collections.Counter[str]
) -> _Progress:
    """`mode`: "auto" (widget in a kernel, a line on a terminal), "widget", "text" or False."""
    from ._display import in_kernel

    if mode == "auto":
        if in_kernel():
            mode = "widget"
        elif sys.stderr is not None and sys.stderr.isatty():
            mode = "text"
        else:
            mode = False
    if mode == "widget":
        return _WidgetProgress(batch, limiter, counter)
    if mode == "text":
        return _TextProgress(batch, limiter, counter)
    if mode in (False, None, "quiet"):
        return _Progress(batch, limiter, counter)
    raise ValueError(f"progress must be 'auto', 'widget', 'text' or False, not {mode!r}.")
