"""The Jupyter view of a streaming reply, whose wire cost grows with the reply, not its square.

Every update is a message through the kernel, the Jupyter server and the browser, and each
costs about 600 bytes of headers besides what it carries. Re-sending the whole reply at each
update made a long reply cost tens of times its size. Here:

- Short replies (under `SWITCH` bytes of HTML) are one display, updated whole: cheap while small.
- Longer ones switch to widgets: an `ipywidgets.VBox` of `HTML` children. Finished Markdown
  blocks are frozen into a child, sent once and never again; only the tail being written is
  updated, and the status line is a child of its own, so moving the elapsed time is cheap.
- A byte budget paces updates: what the front end has received stays within `WIRE_BUDGET` times
  the final output (the final output grows with the text, and so does the budget). Pending
  text is shown whatever the budget when the stream pauses; the first text shows at once.

The display is made at the first update (the first text, or "waiting" after `WAIT_SHOW`
seconds), so a request that fails at once leaves no output. At the end the display is updated
to one static bundle (`text/html` + `text/plain`) and every widget is closed: the saved
notebook holds one output per reply and no widget state. All HTML of model text comes from
`_render`, which never lets it through as markup.
"""

from __future__ import annotations

import html
import time
import uuid
from typing import TYPE_CHECKING, Any

from ._render import (
    _FENCE,  # the same fence rule as split_blocks
    STYLE_BODY,
    STYLE_REASONING,
    STYLE_STATUS,
    StreamingMarkdown,
    markdown_to_html,
    split_blocks,
)

if TYPE_CHECKING:
    from ._chunks import Delta
    from ._live import LiveStatus
    from ._reply import Reply

__all__ = ["NotebookView", "static_bundle"]

WIRE_BUDGET = 3.0  # bytes sent per byte of the final output, at most
SWITCH = 6_000  # bytes of HTML from which the widget form is cheaper than re-sending it all
FREEZE = 3_000  # characters of finished blocks that are frozen into a child of their own
TAIL_MAX = 6_000  # characters: a longer unfinished block is cut at a line (or a space)
WAIT_SHOW = 1.0  # seconds without text before "waiting" is shown (a quick failure shows none)
TICK_SHOW = 1.0  # seconds between status-only updates while nothing new is shown
# Bytes a message costs besides its payload (headers, ids), as measured in a kernel.
UPDATE_COST = 600
OPEN_COST = {"HTML": 1_100, "VBox": 1_100, "Layout": 1_650, "HTMLStyle": 950}
CLOSE_COST = 520
CHILD_COST = 45  # one more model id in a children list


def _wire_len(text: str) -> int:
    """What a string costs inside a JSON message (quotes, backslashes and newlines escaped)."""
    return len(text.encode()) + text.count('"') + text.count("\\") + text.count("\n")


def static_bundle(reply: Reply, exchange: dict[str, Any] | None = None) -> dict[str, Any]:
    """What stays in the notebook: safe HTML, and the text with its status for plain viewers.

    `exchange` (the recorded turn, see `_exchange`) rides along under its own MIME type, which
    front ends and nbconvert ignore.
    """
    from ._render import render_reply_html, status_line

    bundle: dict[str, Any] = {
        "text/html": render_reply_html(reply),
        "text/plain": f"{reply.text}\n\n[{status_line(reply)}]",
    }
    if exchange is not None:
        from ._exchange import MIME_TYPE

        bundle[MIME_TYPE] = exchange
    return bundle


def _open_fence(text: str) -> str:
    """The opening line of the code block `text` ends inside, or "" (as `split_blocks` reads)."""
    fence = opener_line = ""
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if fence:
            if match and match[1][0] == fence[0] and len(match[1]) >= len(fence):
                fence = "" if not line[match.end() :].strip() else fence
        elif match:
            fence, opener_line = match[1], line
    return opener_line + "\n" if fence else ""


def _status_html(text: str) -> str:
    """The status line holds the server's model name: inert, so MathJax typesets none of it."""
    from ._math import IGNORE_CLASS

    escaped = html.escape(text)
    return f'<div class="ipychat-status {IGNORE_CLASS}" style="{STYLE_STATUS}">{escaped}</div>'


def _reasoning_html(body: str) -> str:
    return f'<div style="{STYLE_REASONING}">{body}</div>'


class _Widgets:
    """The widget form: a VBox of frozen pieces, the live tail and the status line."""

    def __init__(self, status: str) -> None:
        import ipywidgets
        from ipywidgets.widgets.widget_string import HTMLStyle

        self._html = ipywidgets.HTML
        self.layout = ipywidgets.Layout()
        self.style = HTMLStyle()  # one layout and style for every child: each is a message
        self.live = self._child("")
        self.status = self._child(_status_html(status))
        self.frozen: list[Any] = []
        self.box = ipywidgets.VBox([self.live, self.status], layout=self.layout)

    def _child(self, value: str) -> Any:
        return self._html(value, layout=self.layout, style=self.style)

    @property
    def count(self) -> int:
        return 5 + len(self.frozen)

    def freeze(self, value: str) -> None:
        self.frozen.append(self._child(value))
        self.box.children = (*self.frozen, self.live, self.status)

    def bundle(self) -> dict[str, Any]:
        view = {"version_major": 2, "version_minor": 0, "model_id": self.box.model_id}
        return {
            "application/vnd.jupyter.widget-view+json": view,
            "text/plain": "(the reply is streaming; it shows here when it is done)",
        }

    def close(self) -> None:
        for widget in (self.box, *self.frozen, self.live, self.status, self.layout, self.style):
            widget.close()


class NotebookView:
    """Shows a streaming reply in a Jupyter front end; `widgets=False` never uses widgets."""

    def __init__(self, status: LiveStatus, *, widgets: bool = True) -> None:
        self.status = status
        self.use_widgets = widgets
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.text_chars = self.reasoning_chars = 0  # characters so far
        self.dirty = False  # text not shown yet
        self.shown = False  # some text was shown
        self.display_id: str | None = None
        self.widgets: _Widgets | None = None
        self.spent = 0  # bytes sent so far
        self.updates = 0
        self.last_update = 0.0
        self.status_at = 0.0  # when the widget form's status line was last sent
        self.tick_wait = TICK_SHOW
        self.ratio = 1.3  # HTML bytes per text character, learnt from each render
        self.markdown = StreamingMarkdown()
        self.reasoning_markdown = StreamingMarkdown()
        self.live_kind = "reasoning"  # which text the widget form's live tail belongs to
        self.live_from = 0  # where that tail starts in it
        self.fence = ""  # the opening line of a code block the last freeze cut in two

    # -- the interface `_live` drives ----------------------------------------------------------
    def add(self, delta: Delta) -> None:
        content, reasoning = delta
        if content:
            self.text.append(content)
            self.text_chars += len(content)
        if reasoning:
            self.reasoning.append(reasoning)
            self.reasoning_chars += len(reasoning)
        self.dirty = True

    def pending(self) -> bool:
        return self.dirty

    def refresh(self, *, paused: bool = False) -> None:
        now = time.perf_counter()
        if self.dirty:
            force = paused or not self.shown  # the first text shows at once, whatever the budget
            if force or self._affordable(self._update_cost()):
                self._show(force=force)
        elif now - self.last_update >= self.tick_wait:
            self._tick(now)

    def finish(
        self, reply: Reply, *, keep: bool = True, exchange: dict[str, Any] | None = None
    ) -> None:
        """Leave the static output (or none, if nothing was ever shown and `keep` is False)."""
        if self.display_id is None and not keep:
            return
        self._send(static_bundle(reply, exchange))
        self._close()

    def discard(self) -> None:
        """The request failed before any text: no output if none was shown yet, else the
        waiting line turned into what happened (an output can be changed, not removed).
        """
        if self.display_id is not None:
            text = self.status.text(failed=True)
            self._send({"text/html": _status_html(text), "text/plain": f"[{text}]"})
        self._close()

    # -- the byte budget ---------------------------------------------------------------------
    def _final_estimate(self) -> int:
        """The final output's size so far: its HTML and its plain text, with the status."""
        return int(self.chars * (self.ratio + 1)) + 600

    def _affordable(self, cost: int) -> bool:
        closes = CLOSE_COST * (self.widgets.count if self.widgets else 0)
        allowance = (WIRE_BUDGET - 1) * 0.85 * self._final_estimate() - UPDATE_COST - closes
        return self.spent + cost <= allowance

    def _update_cost(self) -> int:
        if self.widgets is None:
            return UPDATE_COST + int(self.chars * self.ratio) + 500
        return UPDATE_COST + int(self._live_chars() * self.ratio)

    @property
    def chars(self) -> int:
        return self.text_chars + self.reasoning_chars

    def _live_chars(self) -> int:
        done = self.reasoning_chars if self.live_kind == "reasoning" else self.text_chars
        return done - self.live_from

    # -- sending -----------------------------------------------------------------------------
    def _send(self, bundle: dict[str, Any]) -> None:
        from IPython.display import display, update_display

        cost = UPDATE_COST + sum(_wire_len(v) for v in bundle.values() if isinstance(v, str))
        if self.display_id is None:
            self.display_id = uuid.uuid4().hex
            display(bundle, raw=True, display_id=self.display_id)
        else:
            update_display(bundle, raw=True, display_id=self.display_id)
        self.spent += cost
        self.updates += 1
        self.last_update = time.perf_counter()

    def _show(self, *, force: bool = False) -> None:
        self.dirty = False
        self.shown = True
        self.tick_wait = TICK_SHOW
        if self.widgets is not None:
            self._show_tail()
            return
        if self.use_widgets and self.chars * self.ratio >= SWITCH:
            if self._switch():
                return
            if not force:  # wait until the text has paid for the widgets
                self.dirty = True
                return
        self._send({"text/html": self._whole_html()})

    def _tick(self, now: float) -> None:
        """Move the elapsed time: cheap in the widget form, backed off in the whole form."""
        if self.widgets is not None:
            self._set(self.widgets.status, _status_html(self.status.text()))
            self.status_at = self.last_update
            return
        if self.display_id is None:
            if self.status.elapsed < WAIT_SHOW:
                return
        elif self.chars and not self._affordable(self._update_cost()):
            self.tick_wait *= 2  # each tick re-sends the text: fewer of them the longer it waits
        self._send({"text/html": self._whole_html()})

    def _set(self, widget: Any, value: str) -> None:
        widget.value = value
        self.spent += UPDATE_COST + _wire_len(value)
        self.updates += 1
        self.last_update = time.perf_counter()

    # -- the whole form ----------------------------------------------------------------------
    def _whole_html(self) -> str:
        parts = ['<div class="ipychat-reply">']
        text = "".join(self.text)
        if self.reasoning:
            body = self.reasoning_markdown("".join(self.reasoning))
            opened = "" if text else " open"
            parts.append(
                f'<details{opened} style="{STYLE_REASONING}"><summary>Reasoning</summary>'
                f"{body}</details>"
            )
        body = self.markdown(text)
        parts.append(f'<div style="{STYLE_BODY}">{body}</div>')
        parts.append(_status_html(self.status.text()) + "</div>")
        whole = "".join(parts)
        if self.chars:
            self.ratio = max(1.0, (len(whole) - 500) / self.chars)
        return whole

    def _switch(self) -> bool:
        """To the widget form, once the budget can pay for its widgets."""
        setup = sum(OPEN_COST.values()) + OPEN_COST["HTML"] + UPDATE_COST + 5 * CLOSE_COST
        if not self._affordable(setup):
            return False
        self.widgets = _Widgets(self.status.text())
        self.spent += setup - 5 * CLOSE_COST
        self.live_kind = "answer" if self.text else "reasoning"
        self.live_from = 0
        self._send(self.widgets.bundle())
        self._show_tail()
        return True

    def _show_tail(self) -> None:
        widgets = self.widgets
        assert widgets is not None
        if self.live_kind == "reasoning" and self.text:  # the answer began: reasoning is done
            self._freeze(self.fence + "".join(self.reasoning)[self.live_from :], reasoning=True)
            self.live_kind, self.live_from, self.fence = "answer", 0, ""
        reasoning = self.live_kind == "reasoning"
        tail = "".join(self.reasoning if reasoning else self.text)[self.live_from :]
        source = self.fence + tail  # a code block cut in two goes on as code
        blocks = split_blocks(source)
        cut = source.rindex(blocks[-1]) if len(blocks) > 1 else 0
        if cut < FREEZE and len(source) > TAIL_MAX:  # one long block: cut it at a line or space
            at = max(source.rfind("\n", 0, len(source) - 1_000), 0)
            at = at or max(source.rfind(" ", 0, len(source) - 1_000), 0)
            cut = at if at > len(self.fence) else 0
        if cut >= FREEZE or (cut and len(source) > TAIL_MAX):
            self._freeze(source[:cut], reasoning=reasoning)
            self.live_from += cut - len(self.fence)
            self.fence = _open_fence(source[:cut])
            source = self.fence + source[cut:].lstrip("\n")
        body = markdown_to_html(source)
        if reasoning:
            body = _reasoning_html(body)
        self._set(widgets.live, body)
        if time.perf_counter() - self.status_at >= TICK_SHOW:  # the elapsed time, now and then
            self._set(widgets.status, _status_html(self.status.text()))
            self.status_at = self.last_update
        if source:
            self.ratio = max(1.0, len(body) / len(source))

    def _freeze(self, text: str, *, reasoning: bool) -> None:
        if not text.strip():
            return
        body = markdown_to_html(text)
        value = _reasoning_html(body) if reasoning else body
        assert self.widgets is not None
        self.widgets.freeze(value)
        n = len(self.widgets.frozen)
        self.spent += OPEN_COST["HTML"] + _wire_len(value) + UPDATE_COST + CHILD_COST * (n + 2)
        self.updates += 2

    def _close(self) -> None:
        if self.widgets is not None:
            self.widgets.close()
            self.widgets = None
