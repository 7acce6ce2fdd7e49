"""Incremental server-sent events decoding: bytes from the network -> `ServerSentEvent`s.

Follows the SSE standard rather than "split on newlines", because real servers use every
form it allows: LF, CR or CRLF line ends (also split across reads), `data:` with or without a
space, multi-line data, comment lines (`: ping`), events that carry only `id:` or `retry:`
(not dispatched), and a last event that is not followed by a blank line before the connection
closes (`flush()` dispatches it). Lines are split as bytes and decoded whole, so a multi-byte
UTF-8 character split across reads is never broken, and U+2028 inside content is not a line
end (unlike `str.splitlines`). As an extension, llama.cpp's non-standard `error: {...}` line
becomes an event named `error`.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SSEDecoder", "ServerSentEvent"]


class ServerSentEvent(NamedTuple):
    """One dispatched event: its type (`message` unless named), its data and last event id."""

    event: str
    data: str
    id: str = ""


_new_tuple = tuple.__new__  # builds a named tuple without its Python-level __new__: per event


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the events completed so far.

    >>> d = SSEDecoder()
    >>> d.decode(b'data: {"a"')
    []
    >>> d.decode(b': 1}\\n\\ndata: [DONE]')
    [ServerSentEvent(event='message', data='{"a": 1}', id='')]
    >>> d.flush()
    [ServerSentEvent(event='message', data='[DONE]', id='')]
    """

    def __init__(self) -> None:
        self._pending = b""  # an incomplete line
        self._after_cr = False  # the previous read ended in CR: a leading LF belongs to it
        self._data: list[str] = []
        self._event = ""
        self._last_id = ""

    def decode(self, data: bytes) -> list[ServerSentEvent]:
        if self._after_cr and data[:1] == b"\n":
            data = data[1:]
            self._after_cr = False  # that LF is used up: a second one is a line end of its own
        if not data:
            return []
        self._after_cr = data[-1:] == b"\r"
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._pending:
            data = self._pending + data
        lines = data.split(b"\n")
        self._pending = lines.pop()
        events: list[ServerSentEvent] = []
        buffered = self._data
        for line in lines:
            if line[:5] == b"data:":  # the hot path: one data line, then a blank line
                value = line[6:] if line[5:6] == b" " else line[5:]
                buffered.append(value.decode("utf-8", "replace"))
            elif not line and buffered:
                fields = (self._event or "message", "\n".join(buffered), self._last_id)
                events.append(_new_tuple(ServerSentEvent, fields))  # skips NamedTuple's __new__
                buffered.clear()
                self._event = ""
            else:
                self._process_line(line, events)
        return events

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: finish the last line and dispatch an event left without a blank line."""
        events: list[ServerSentEvent] = []
        if self._pending:
            self._process_line(self._pending, events)
            self._pending = b""
        self._process_line(b"", events)
        return events

    def _process_line(self, line: bytes, events: list[ServerSentEvent]) -> None:
        if line.startswith(b"data:"):  # the hot path: one data line per chunk
            value = line[6:] if line[5:6] == b" " else line[5:]
            self._data.append(value.decode("utf-8", "replace"))
            return
        if not line:
            if self._data:
                events.append(
                    ServerSentEvent(self._event or "message", "\n".join(self._data), self._last_id)
                )
            self._data.clear()
            self._event = ""
            return
        if line[:1] == b":":
            return  # a comment, e.g. a keep-alive ping
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        text = value.decode("utf-8", "replace")
        if name == b"data":  # `data` with no colon: an empty data line
            self._data.append(text)
        elif name == b"event":
            self._event = text
        elif name == b"id":
            if "\0" not in text:
                self._last_id = text
        elif name == b"error":  # llama.cpp's non-standard error line
            self._event = "error"
            self._data.append(text)
        # `retry` and unknown fields are ignored, as the standard says.
