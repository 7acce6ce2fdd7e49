"""How the offline server writes an answer: JSON bodies and SSE events as HTTP/1.1 chunks.

A class of 200 streams at 20 tokens a second is 4,000 events a second on a small machine, so an
event is built from pre-encoded bytes around the one JSON-encoded text, and written once.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, BinaryIO

from ._server_reply import Reply

__all__ = ["DONE", "Abort", "ChunkedWriter", "Completion", "dumps"]

DONE = b"data: [DONE]\n\n"


def dumps(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class Abort(Exception):
    """End the response by closing the socket mid-way: an injected drop, or `stop()`."""


class Completion:
    """Shapes one reply as the service's JSON objects, all sharing one id and timestamp."""

    def __init__(self, number: int, model: str, reply: Reply, include_usage: bool) -> None:
        self.id = f"chatcmpl-local-{number:06d}"
        self.created = int(time.time())
        self.model = model
        self.reply = reply
        self.include_usage = include_usage
        head = dumps(self._head("chat.completion.chunk"))[:-1]
        self._open = b"data: " + head + b',"choices":[{"index":0,"delta":'
        self._close = b',"finish_reason":null}]' + (b',"usage":null' if include_usage else b"")
        self._close += b"}\n\n"

    def message(self) -> dict[str, Any]:
        message = {"role": "assistant", "content": "".join(self.reply.content)}
        if self.reply.reasoning:
            message["reasoning_content"] = "".join(self.reply.reasoning)
        choice = {"index": 0, "message": message, "finish_reason": self.reply.finish_reason}
        return {**self._head("chat.completion"), "choices": [choice], "usage": self.reply.usage}

    def role(self) -> bytes:
        """The first event: the assistant role with empty content."""
        return b'%s{"role":"assistant","content":""}%s' % (self._open, self._close)

    def content(self, text: str) -> bytes:
        """One content token's event, cheap: only the text is JSON-encoded."""
        return b'%s{"content":%s}%s' % (self._open, dumps(text), self._close)

    def reasoning(self, text: str) -> bytes:
        event = b'%s{"reasoning_content":%s,"content":null}%s'
        return event % (self._open, dumps(text), self._close)

    def delta(
        self, delta: dict[str, Any], finish_reason: str | None = None, usage: object = None
    ) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return self._event([choice], usage)

    def usage_event(self) -> bytes:
        return self._event([], self.reply.usage)

    def _event(self, choices: list[dict[str, Any]], usage: object) -> bytes:
        chunk = {**self._head("chat.completion.chunk"), "choices": choices}
        if self.include_usage or usage is not None:
            chunk["usage"] = usage
        return b"data: " + dumps(chunk) + b"\n\n"

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


class ChunkedWriter:
    """Writes SSE events as HTTP/1.1 chunks, batched when there is no delay between them.

    A socket write per event would make a 20,000-token stream take seconds; batching keeps it
    fast, and every pause flushes first so the client sees each token when it is due.
    """

    limit = 32768

    def __init__(self, wfile: BinaryIO, stopping: threading.Event) -> None:
        self._wfile = wfile
        self._stopping = stopping
        self._parts: list[bytes] = []
        self._size = 0

    def send(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)
        if self._size >= self.limit:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            payload = b"".join(self._parts)
            self._parts, self._size = [], 0
            self._wfile.write(b"%X\r\n%s\r\n" % (len(payload), payload))

    def pause(self, seconds: float) -> None:
        if seconds > 0:
            self.flush()
            if self._stopping.wait(seconds):
                raise Abort

    def end(self) -> None:
        self.flush()
        self._wfile.write(b"0\r\n\r\n")
