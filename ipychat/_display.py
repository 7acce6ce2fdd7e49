"""Showing a reply while it streams, then leaving a static, safe output behind.

Three views, one interface (`update` per delta, `finish` with the final reply, `discard`):

- `WidgetView` (a kernel with a widget front end): an `ipywidgets.HTML` whose value is replaced,
  shown through a display id whose bundle also carries `text/html`, so front ends without
  widgets still show something. At the end the display id is updated to a plain `text/html` +
  `text/plain` output, so the saved notebook needs no widget state.
- `HTMLView`: the same without widgets, by updating the display id itself.
- `TextView` (terminal IPython, scripts): text printed as it arrives, then a newline.

Updates are coalesced by time (`rate` per second at most, and never more than a tenth of the
time spent rendering), because the kernel drops iopub messages past 1,000 queued and the
Jupyter server drops traffic above 1,000 messages a second. The final content is always exact.
All HTML comes from `_render`, which never lets model text through as markup.
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any, Protocol

from ._chunks import Delta
from ._render import StreamingMarkdown, render_reply_html, status_line
from ._reply import Reply

__all__ = ["HTMLView", "ReplyView", "TextView", "WidgetView", "make_view"]


class ReplyView(Protocol):
    updates: int

    def update(self, delta: Delta) -> None: ...

    def finish(
        self, reply: Reply, *, keep: bool = True, exchange: dict[str, Any] | None = None
    ) -> None: ...

    def discard(self) -> None: ...


class _Coalescing:
    """Accumulates deltas and renders at most `rate` times a second."""

    def __init__(self, model: str, rate: float) -> None:
        self.model = model
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.started = time.perf_counter()
        self.first_token: float | None = None
        self.next_render = 0.0
        self.updates = 0
        self.markdown = StreamingMarkdown()  # re-renders only the last block per update

    def update(self, delta: Delta) -> None:
        if delta.content:
            self.text.append(delta.content)
        if delta.reasoning:
            self.reasoning.append(delta.reasoning)
        now = time.perf_counter()
        if self.first_token is None:
            self.first_token = now - self.started
        if now >= self.next_render:
            self._render_partial()
            spent = time.perf_counter() - now
            self.next_render = now + max(self.interval, 9 * spent)

    def partial(self) -> Reply:
        return Reply(
            text="".join(self.text),
            reasoning="".join(self.reasoning),
            model=self.model,
            time_to_first_token=self.first_token,
            elapsed=time.perf_counter() - self.started,
            complete=False,
        )

    def _render_partial(self) -> None:
        raise NotImplementedError


def _static_bundle(
    reply: Reply, keep: bool = True, exchange: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What stays in the notebook: safe HTML, and the text with its status for plain viewers.

    `exchange` (the recorded turn, see `_exchange`) rides along under its own MIME type, which
    front ends and nbconvert ignore; a `%chat` line that returns its reply shows nothing here.
    """
    bundle: dict[str, Any] = {"text/plain": ""}
    if keep:
        bundle = {
            "text/html": render_reply_html(reply),
            "text/plain": f"{reply.text}\n\n[{status_line(reply)}]",
        }
    if exchange is not None:
        from ._exchange import MIME_TYPE

        bundle[MIME_TYPE] = exchange
    return bundle


class HTMLView(_Coalescing):
    """Streams by updating a display id with safe HTML; works in every Jupyter front end."""

    def __init__(self, model: str, rate: float = 20.0) -> None:
        super().__init__(model, rate)
        from IPython.display import display

        self.display_id = uuid.uuid4().hex
        display(self._bundle(self.partial()), raw=True, display_id=self.display_id)

    def _bundle(self, reply: Reply) -> dict[str, Any]:
        return {
            "text/html": render_reply_html(reply, streaming=True, markdown=self.markdown),
            "text/plain": reply.text or "…",
        }

    def _render_partial(self) -> None:
        self._replace(self._bundle(self.partial()))

    def _replace(self, bundle: dict[str, Any]) -> None:
        from IPython.display import update_display

        update_display(bundle, raw=True, display_id=self.display_id)
        self.updates += 1

    def finish(
        self, reply: Reply, *, keep: bool = True, exchange: dict[str, Any] | None = None
    ) -> None:
        self._replace(_static_bundle(reply, keep, exchange))

    def discard(self) -> None:
        self._replace({"text/plain": ""})


class WidgetView(HTMLView):
    """Streams into an `ipywidgets.HTML` (comm messages only), then leaves static HTML."""

    def __init__(self, model: str, rate: float = 20.0) -> None:
        import ipywidgets

        self.widget = ipywidgets.HTML(layout=ipywidgets.Layout(width="100%"))
        super().__init__(model, rate)

    def _bundle(self, reply: Reply) -> dict[str, Any]:
        bundle = super()._bundle(reply)
        self.widget.value = bundle["text/html"]
        bundle["application/vnd.jupyter.widget-view+json"] = {
            "version_major": 2,
            "version_minor": 0,
            "model_id": self.widget.model_id,
        }
        return bundle

    def _render_partial(self) -> None:
        self.widget.value = render_reply_html(
            self.partial(), streaming=True, markdown=self.markdown
        )
        self.updates += 1

    def finish(
        self, reply: Reply, *, keep: bool = True, exchange: dict[str, Any] | None = None
    ) -> None:
        super().finish(reply, keep=keep, exchange=exchange)
        self._close()

    def discard(self) -> None:
        super().discard()
        self._close()

    def _close(self) -> None:
        """Close the widget and the layout and style it made, so none is left in the kernel."""
        for widget in (self.widget, self.widget.layout, self.widget.style):
            widget.close()


class TextView:
    """Prints text as it arrives: for terminal IPython, `ipython -c` and scripts."""

    DIM, RESET = "\x1b[2m", "\x1b[0m"

    def __init__(self, model: str, rate: float = 20.0, stream: Any = None) -> None:
        self.out = stream or sys.stdout
        self.color = bool(getattr(self.out, "isatty", lambda: False)())
        self.in_reasoning = False
        self.wrote = False
        self.updates = 0

    def update(self, delta: Delta) -> None:
        if delta.reasoning:
            if not self.in_reasoning:
                self.out.write(self.DIM if self.color else "[reasoning] ")
                self.in_reasoning = True
            self.out.write(delta.reasoning)
        if delta.content:
            if self.in_reasoning:
                self.out.write((self.RESET if self.color else "") + "\n\n")
                self.in_reasoning = False
            self.out.write(delta.content)
            self.wrote = True
        self.out.flush()
        self.updates += 1

    def finish(
        self, reply: Reply, *, keep: bool = True, exchange: dict[str, Any] | None = None
    ) -> None:
        if self.in_reasoning and self.color:
            self.out.write(self.RESET)
        if not self.wrote and reply.text and keep:  # a non-streamed reply
            self.out.write(reply.text)
        if self.wrote or (reply.text and keep):
            self.out.write("\n")
        if reply.truncated or reply.filtered or not reply.complete:
            self.out.write(f"[{status_line(reply)}]\n")
        self.out.flush()

    def discard(self) -> None:
        if self.wrote:
            self.out.write("\n")
            self.out.flush()


class NullView:
    """`--quiet`: nothing is shown; the reply only goes to variables."""

    updates = 0

    def update(self, delta: Delta) -> None:
        pass

    def finish(
        self, reply: Reply, *, keep: bool = True, exchange: dict[str, Any] | None = None
    ) -> None:
        pass

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


def make_view(mode: str, model: str, rate: float) -> ReplyView:
    """`mode` is auto, widget, html, text or quiet; auto picks widget in a kernel."""
    if mode == "auto":
        mode = "widget" if in_kernel() else "text"
    views: dict[str, Any] = {
        "widget": WidgetView,
        "html": HTMLView,
        "text": TextView,
        "quiet": lambda model, rate: NullView(),
    }
    return views[mode](model, rate)
