"""Incremental server-sent events decoding: bytes from the network -> `ServerSentEvent`s.

Follows the SSE standard rather than "split on newlines", because real servers use every
form it allows: LF, CR or CRLF line ends (also split across reads), `data:` with or without a
space, multi-line data, comment lines (`: ping`), events that carry only `id:` or `retry:`
(not dispatched), and a last event that is not followed by a blank line before the connection
closes (`flush()` dispatches it). Each read is decoded at once by an incremental UTF-8
decoder, so a multi-byte character split across reads is never broken, and lines are split
on LF only, so U+2028 inside content is not a line end (unlike `str.splitlines`). As an
extension, llama.cpp's non-standard `error: {...}` line becomes an event named `error`.
"""

from __future__ import annotations

import codecs
from typing import NamedTuple

__all__ = ["SSEDecoder", "ServerSentEvent"]


class ServerSentEvent(NamedTuple):
    """One dispatched event: its type (`message` unless named), its data and last event id."""

    event: str
    data: str
    id: str = ""


_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the events completed so far.

    >>> d = SSEDecoder()
    >>> d.decode(b'data: {"a"')
    []
    >>> d.decode(b': 1}\\n\\ndata: [DONE]')
    [ServerSentEvent(event='message', data='{"a": 1}', id='')]
    >>> d.flush()
    [ServerSentEvent(event='message', data='[DONE]', id='')]

    `feed()` is the streaming hot path: the same events, but a plain `message` event without an
    id comes out as its data string alone (no tuple made per chunk).
    """

    def __init__(self) -> None:
        self._utf8 = _Utf8Decoder("replace")  # holds back a character split across reads
        self._pending = ""  # an incomplete line
        self._after_cr = False  # the previous read ended in CR: a leading LF belongs to it
        self._data: list[str] = []
        self._event = ""
        self._last_id = ""

    def decode(self, data: bytes) -> list[ServerSentEvent]:
        """The events completed by `data`."""
        return [self._full(event) for event in self.feed(data)]

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: finish the last line and dispatch an event left without a blank line."""
        return [self._full(event) for event in self.feed_end()]

    def feed(self, data: bytes) -> list[str | ServerSentEvent]:
        """Like `decode`, with each plain `message` event (no name, no id) as its data string."""
        text = self._utf8.decode(data)
        if self._after_cr and text[:1] == "\n":
            text = text[1:]
            self._after_cr = False  # that LF is used up: a second one is a line end of its own
        if not text:
            return []
        self._after_cr = text[-1] == "\r"
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if self._pending:
            text = self._pending + text
        lines = text.split("\n")  # not splitlines(): U+2028 and friends are content, not ends
        self._pending = lines.pop()
        events: list[str | ServerSentEvent] = []
        buffered = self._data
        plain = not (self._event or self._last_id)  # events go out as their data alone
        for line in lines:
            if line[:5] == "data:":  # the hot path: one data line, then a blank line
                buffered.append(line[6:] if line[5:6] == " " else line[5:])
            elif not line and buffered:
                if plain and len(buffered) == 1:
                    events.append(buffered.pop())
                else:
                    self._dispatch(events)
            else:
                self._process_line(line, events)
                plain = not (self._event or self._last_id)
        return events

    def feed_end(self) -> list[str | ServerSentEvent]:
        """`flush` in the form `feed` returns."""
        events: list[str | ServerSentEvent] = []
        text = self._pending + self._utf8.decode(b"", final=True)
        self._pending = ""
        for line in text.split("\n") if text else ():
            self._process_line(line, events)
        self._process_line("", events)
        return events

    def _dispatch(self, events: list[str | ServerSentEvent]) -> None:
        buffered = self._data
        data = buffered[0] if len(buffered) == 1 else "\n".join(buffered)
        buffered.clear()
        if self._event or self._last_id:
            events.append(ServerSentEvent(self._event or "message", data, self._last_id))
            self._event = ""
        else:
            events.append(data)

    def _full(self, event: str | ServerSentEvent) -> ServerSentEvent:
        return ServerSentEvent("message", event) if isinstance(event, str) else event

    def _process_line(self, line: str, events: list[str | ServerSentEvent]) -> None:
        if not line:
            if self._data:
                self._dispatch(events)
            self._event = ""  # the name of an event without data is dropped with it
            return
        if line[:1] == ":":
            return  # a comment, e.g. a keep-alive ping
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":  # `data` with no colon is an empty data line
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "error":  # llama.cpp's non-standard error line
            self._event = "error"
            self._data.append(value)
        # `retry` and unknown fields are ignored, as the standard says.
