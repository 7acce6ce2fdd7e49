"""A reply as it streams: bytes -> events -> deltas, watched for text, and the iterators.

Keep-alive comments, role-only and empty chunks prove the server is alive (`on_alive` is
called for them) but not that a reply is coming, so `Feed` ends a stream after `idle_timeout`
seconds without text, however many keep-alives arrive.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx

from ._chunks import Delta, ReplyBuilder
from ._errors import ChatError, StreamError
from ._reply import Reply
from ._request import Prepared
from ._secrets import StreamGuard
from ._sse import SSEDecoder

__all__ = ["AsyncReplyStream", "Feed", "ReplyStream", "incomplete_error", "whole"]

_monotonic = time.monotonic


def incomplete_error(
    builder: ReplyBuilder,
    prepared: Prepared,
    why: str,
    *,
    setting: str | None = None,
    suggested: str | None = None,
    then: str = "",
) -> StreamError:
    got = "after part of the reply" if builder.has_content else "before any reply"
    message = f"The stream from {prepared.url} {why} {got}{then}"
    if not builder.has_content and builder.warnings:
        message += f" ({builder.warnings[0].rstrip('.')})"
    message += "."
    return StreamError(
        message,
        url=prepared.url,
        reply=builder.build(complete=False, error=message),
        setting=setting,
        suggested=suggested,
    )



class Feed:
    """bytes -> SSE events -> deltas, watching for text: the streaming loop's one helper."""

    def __init__(
        self, builder: ReplyBuilder, prepared: Prepared, on_alive: Callable[[], None] | None
    ) -> None:
        decoder = SSEDecoder()
        self.decode = decoder.feed
        self.decode_end = decoder.feed_end
        self.add_events = builder.add_events
        self.builder = builder
        self.prepared = prepared
        self.url = prepared.url
        self.on_alive = on_alive
        self.idle_timeout = prepared.settings.idle_timeout
        self.last_text = _monotonic()
        self.received = False  # any byte of the body
        self.guard = StreamGuard(prepared.redactor) if prepared.redactor else None

    def feed(self, data: bytes) -> list[Delta]:
        self.received = True
        deltas = self.add_events(self.decode(data), self.url)
        if deltas:
            self.last_text = _monotonic()
            if self.guard is not None:  # secrets echoed in text: masked before shown
                return self._screen(deltas)
        else:
            self.alive()
        return deltas

    def end(self) -> list[Delta]:
        deltas = self.add_events(self.decode_end(), self.url)
        if deltas and self.guard is not None:
            return self._screen(deltas)
        return deltas

    def _screen(self, deltas: list[Delta]) -> list[Delta]:
        builder = self.builder
        return self.guard.screen(deltas, builder.text_parts, builder.reasoning_parts)  # type: ignore[union-attr]

    def alive(self) -> None:
        """Bytes without text: the server is alive; end the stream once that is all for long."""
        if _monotonic() - self.last_text > self.idle_timeout:
            seconds = self.idle_timeout
            raise incomplete_error(
                self.builder,
                self.prepared,
                f"sent only keep-alives and no text for {seconds:g} s",
                setting="idle_timeout",
                suggested=f"{seconds * 2:g}",
                then=f": stopped waiting (idle_timeout={seconds:g})",
            )
        if self.on_alive is not None:
            self.on_alive()

    def broken(self, exc: httpx.TransportError) -> StreamError:
        if isinstance(exc, httpx.TimeoutException):
            seconds, setting = self.prepared.read_timeout
            return incomplete_error(
                self.builder,
                self.prepared,
                f"stalled (no data for {seconds:g} s)",
                setting=setting,
                suggested=f"{max(seconds * 2, 120):g}",
                then=f"; if the server pauses longer, raise {setting}",
            )
        # The server had answered, so it may be generating: resending could pay for it twice.
        then = "" if self.builder.has_content else "; not resent, as the server may have started"
        return incomplete_error(self.builder, self.prepared, "was cut off", then=then)



def without_frames(deltas: Iterator[Delta]) -> Iterator[Delta]:
    """Our errors leave without the frames below: their locals hold the raw bytes a server sent.

    A verbose traceback (`%xmode Verbose`) prints every frame's locals, and a server that
    echoes a key puts it in those bytes before redaction sees it. The message says it all.
    """
    try:
        yield from deltas
    except ChatError as exc:
        raise exc.with_traceback(None) from None


async def without_frames_async(deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
    """The async twin of `without_frames`."""
    try:
        async for delta in deltas:
            yield delta
    except ChatError as exc:
        raise exc.with_traceback(None) from None
    finally:
        await deltas.aclose()  # type: ignore[attr-defined]  # closes the response at once


def whole(reply: Reply) -> list[Delta]:
    """A non-streamed reply as the single delta a stream consumer expects."""
    return [Delta(reply.text, reply.reasoning)] if reply.text or reply.reasoning else []



class ReplyStream:
    """Iterate it for `Delta`s as they arrive; `reply` is the final (or partial) reply."""

    def __init__(self, builder: ReplyBuilder) -> None:
        self._builder = builder
        self._reply: Reply | None = None
        self._deltas: Any = iter(())
        self._response: httpx.Response | None = None  # the one being read, for `abort`
        self.aborted = False

    def __iter__(self) -> Iterator[Delta]:
        return self._deltas

    def __enter__(self) -> ReplyStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop early: the generator's `finally` closes the HTTP response."""
        self._deltas.close()

    def abort(self) -> None:
        """Stop from another thread (Ctrl-C while a worker reads): iteration raises
        KeyboardInterrupt, at once if a response is being read, else before anything more is
        sent. Closing a socket does not wake a thread blocked reading it; shutting it down does.
        """
        self.aborted = True
        response = self._response
        stream = response.extensions.get("network_stream") if response is not None else None
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    @property
    def reply(self) -> Reply:
        """The finished reply, or what arrived so far marked incomplete."""
        if self._reply is not None:
            return self._reply
        return self._builder.build(complete=False, error="The stream was not finished.")



class AsyncReplyStream(ReplyStream):
    """The async twin of `ReplyStream`: `async for delta in stream`, then `stream.reply`."""

    def __aiter__(self) -> AsyncIterator[Delta]:
        return self._deltas

    async def __aenter__(self) -> AsyncReplyStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop early: the generator's `finally` closes the HTTP response."""
        await self._deltas.aclose()

    def close(self) -> None:
        raise TypeError("An async stream is closed with `await stream.aclose()`.")

