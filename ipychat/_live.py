"""One exchange shown live: a worker thread reads the reply, the main thread shows it.

Reading in the caller's thread would tie the display to the network: pending text would show
only when the next token arrives, and the elapsed time would stand still while nothing does.
So the client is iterated in a worker thread that only queues deltas, and the main thread
wakes on a timer to hand them to the view: at most `rate` times a second while text flows, on
the first token after a quiet spell, and a few times a second when idle (to move the elapsed
time). An idle wait blocks on an event with a timeout, so it costs no CPU to speak of.

Ctrl-C stays in the main thread (a kernel interrupt raises KeyboardInterrupt there): it aborts
the worker's stream, whose blocked read then returns at once, and the partial reply is kept
exactly as when the stream was read in the main thread.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._chunks import Delta
    from ._client import ReplyStream
    from ._display import ReplyView
    from ._reply import Reply

__all__ = ["LiveStatus", "run_exchange"]

TICK = 0.5  # seconds between elapsed-time updates while nothing arrives
PAUSE = 0.2  # no delta for this long: pending text is shown whatever the byte budget says
ABORT_WAIT = 2.0  # seconds to wait for the worker after Ctrl-C before leaving it behind


class LiveStatus:
    """What the status line shows while a reply comes: read by the view in the main thread."""

    def __init__(self, model: str | None) -> None:
        self.model = model
        self.started = time.perf_counter()
        self.first_token: float | None = None  # the client's own measure, as in the reply
        self.alive_at: float | None = None  # when the server last showed it is alive

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def text(self, *, failed: bool = False) -> str:
        """`model · first token 0.21 s · elapsed 3.4 s · streaming…` and its waiting forms."""
        from ._safetext import one_line

        parts = [one_line(self.model or "?", 80)]
        elapsed = self.elapsed
        if failed:
            parts.append(f"no reply after {elapsed:.1f} s (the error is below)")
            return " · ".join(parts)
        if self.first_token is None:
            if self.alive_at is not None:
                parts.append(f"waiting, server alive, {elapsed:.0f} s")
            else:
                parts.append(f"waiting {elapsed:.1f} s")
            return " · ".join(parts)
        parts.append(f"first token {self.first_token:.2f} s")
        parts.append(f"elapsed {elapsed:.1f} s")
        parts.append("streaming…")
        return " · ".join(parts)


class _Tap:
    """The client as `Conversation.send` sees it, keeping the stream it opens for `abort`."""

    def __init__(self, client: Any, live: _Exchange) -> None:
        self._client = client
        self._live = live
        self.settings = client.settings
        params = inspect.signature(client.stream).parameters
        self._alive_hook = "on_alive" in params

    def __getattr__(self, name: str) -> Any:  # everything but `stream` is the client's own
        return getattr(self._client, name)

    def stream(self, messages: Any, *, prompt: str = "", on_alive: Any = None, **kw: Any) -> Any:
        if self._alive_hook:
            theirs, ours = on_alive, self._live.alive
            kw["on_alive"] = ours if theirs is None else lambda: (ours(), theirs())
        stream = self._client.stream(messages, prompt=prompt, **kw)
        self._live.stream = stream
        self._live.status.started = time.perf_counter()  # the client's clock starts here too
        if self._live.aborted:
            stream.abort()
        return stream


class _Exchange:
    def __init__(self, view: ReplyView, status: LiveStatus, rate: float) -> None:
        self.view = view
        self.status = status
        self.interval = 1.0 / rate if rate > 0 else 0.05
        self.deltas: deque[Delta] = deque()
        self.wake = threading.Event()
        self.done = False
        self.idle = True  # the main thread waits for the first delta: the worker wakes it
        self.aborted = False
        self.stream: ReplyStream | None = None
        self.reply: Reply | None = None
        self.error: BaseException | None = None

    # -- the worker thread -------------------------------------------------------------------
    def on_delta(self, delta: Delta) -> None:
        if self.status.first_token is None and self.stream is not None:
            self.status.first_token = self.stream.reply.time_to_first_token
        self.deltas.append(delta)
        if self.idle:
            self.idle = False
            self.wake.set()

    def alive(self, *args: Any) -> None:
        self.status.alive_at = time.perf_counter()

    def work(self, send: Any) -> None:
        try:
            self.reply = send(self.on_delta)
        except BaseException as exc:  # handed to the main thread, which raises it
            self.error = exc
        finally:
            self.done = True
            self.wake.set()

    # -- the main thread ---------------------------------------------------------------------
    def show(self) -> None:
        """Hand deltas to the view on the timer until the worker is done.

        After each update the thread sleeps out the interval whatever arrives (deltas pile up,
        one update shows them all); only once it is due does it let the worker wake it, so the
        first token after a quiet spell shows at once but a steady stream costs `rate` wakes a
        second, not one per token.
        """
        view = self.view
        last_delta = due = time.perf_counter()
        while True:
            now = time.perf_counter()
            if not self.done:
                if now < due:
                    self.wake.wait(due - now)  # the worker does not wake us before `due`
                elif not self.deltas:
                    self.idle = True
                    if not self.deltas:  # re-checked after raising the flag the worker reads
                        self.wake.wait(self.interval if view.pending() else TICK)
            self.idle = False
            self.wake.clear()
            done = self.done  # read before draining: after it, no delta can follow
            now = time.perf_counter()
            if self.deltas:
                last_delta = now
                add = view.add
                while self.deltas:
                    add(self.deltas.popleft())
            if done:
                return
            view.refresh(paused=now - last_delta >= PAUSE)
            due = now + self.interval

    def abort(self) -> None:
        self.aborted = True
        if self.stream is not None:
            self.stream.abort()


def run_exchange(
    send: Callable[[Any, Callable[[Delta], None]], Reply],
    *,
    client: Any,
    view: ReplyView,
    status: LiveStatus,
    rate: float,
) -> Reply:
    """`send(client, on_delta)` run in a worker thread, its deltas shown by `view` from here.

    Raises what `send` raises (with `.reply` holding a partial reply), and KeyboardInterrupt
    on Ctrl-C, with `.reply` the partial reply if the worker stopped in time, else None.
    """
    live = _Exchange(view, status, rate)
    tap = _Tap(client, live)
    context = contextvars.copy_context()  # output from the worker belongs to this cell
    worker = threading.Thread(
        target=context.run,
        args=(live.work, lambda on_delta: send(tap, on_delta)),
        name="ipychat-reply",
        daemon=True,
    )
    worker.start()
    try:
        live.show()
    except KeyboardInterrupt:
        live.abort()
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: stop waiting
            worker.join(ABORT_WAIT)
        interrupt = KeyboardInterrupt()
        partial = getattr(live.error, "reply", None) if not worker.is_alive() else None
        interrupt.reply = partial  # type: ignore[attr-defined]
        raise interrupt from None
    worker.join()
    if live.error is not None:
        raise live.error
    assert live.reply is not None
    return live.reply
