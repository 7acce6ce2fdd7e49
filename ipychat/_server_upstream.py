"""The pass-through: relay a chat request to a real OpenAI-compatible endpoint, and record it.

`python -m ipychat serve --record LESSON.toml --upstream URL` answers every chat request by
asking the upstream with the teacher's key, streams its answer on as it comes, and appends the
exchange (prompt, reply, reasoning, usage, timing) to the lesson script. The key goes only into
the upstream request's Authorization header: never into the lesson, the log or an error. httpx
is imported here, lazily, so plain serving stays stdlib-only.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._server_reply import Refused

if TYPE_CHECKING:
    import httpx

    from ._server_handler import Handler

__all__ = ["Outcome", "Upstream"]

# Headers of an upstream answer a client needs too: when to retry.
_PASSED_HEADERS = frozenset({"retry-after", "retry-after-ms"})


class Outcome:
    """What one relayed exchange came to, for the request log and the lesson."""

    def __init__(self) -> None:
        self.status = 0
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.finish_reason: str | None = None
        self.usage: dict[str, int] | None = None
        self.started = time.perf_counter()
        self.first: float | None = None
        self.last: float | None = None
        self.chunks = 0

    def add(self, content: str, reasoning: str) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now
        self.chunks += 1
        if content:
            self.text.append(content)
        if reasoning:
            self.reasoning.append(reasoning)

    def timing(self) -> dict[str, Any]:
        first = (self.first or time.perf_counter()) - self.started
        span = (self.last or 0.0) - (self.first or 0.0)
        rate = (self.chunks - 1) / span if self.chunks > 1 and span > 0 else 0.0
        return {
            "time_to_first_token": round(first, 4),
            "tokens_per_second": round(rate, 3),
            "tokens": self.chunks,
        }


class Upstream:
    """One upstream endpoint and its key, shared by all the server's request threads."""

    def __init__(self, base_url: str, api_key: str = "") -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--upstream must be an http(s) base URL, not {base_url!r}.")
        if parts.username or parts.password:
            raise ValueError("--upstream must not hold credentials; use IPYCHAT_API_KEY.")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.where = f"{parts.scheme}://{parts.netloc}"  # for messages: no path, no query
        self._key = api_key
        self._key_bytes = api_key.encode() if len(api_key) >= 4 else b""
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Upstream({self.where!r})"  # never the key

    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                import httpx

                limits = httpx.Limits(max_connections=400, max_keepalive_connections=50)
                timeout = httpx.Timeout(300.0, connect=10.0)
                self._client = httpx.Client(limits=limits, timeout=timeout)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def relay(self, handler: Handler, body: dict[str, Any], stream: bool) -> Outcome:
        """Ask the upstream and pass its answer on; the outcome says what came of it."""
        import httpx

        outcome = Outcome()
        sent = dict(body)
        added_usage = False
        if stream:
            options = sent.get("stream_options")
            options = dict(options) if isinstance(options, dict) else {}
            added_usage = options.get("include_usage") is not True
            sent["stream_options"] = {**options, "include_usage": True}  # to record usage
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        http = self.client()
        outcome.started = time.perf_counter()  # after the client's first-use setup
        try:
            with http.stream("POST", self.url, json=sent, headers=headers) as response:
                outcome.status = response.status_code
                if response.status_code != 200 or not stream:
                    raw = response.read()
                    kind = response.headers.get("content-type", "application/json")
                    raw = self.mask(raw)  # an upstream may echo the request's headers
                    if response.status_code == 200:
                        _take_completion(outcome, raw)
                    kept = {k: v for k, v in response.headers.items() if k in _PASSED_HEADERS}
                    handler.send(response.status_code, raw, kind, kept)
                    return outcome
                self._relay_stream(handler, response, outcome, added_usage)
        except httpx.HTTPError as error:
            if outcome.status == 200:  # the stream had started: end it as the upstream did
                raise ConnectionError("the upstream stream broke") from None
            message = f"The upstream {self.where} did not answer: {type(error).__name__}."
            raise Refused(502, "upstream_unreachable", message) from None
        return outcome

    def mask(self, data: bytes) -> bytes:
        """`data` without the teacher's key: students must never see it, whole or in part."""
        if self._key_bytes and self._key_bytes in data:
            return data.replace(self._key_bytes, b"****")
        return data

    def _relay_stream(
        self, handler: Handler, response: httpx.Response, outcome: Outcome, added_usage: bool
    ) -> None:
        from ._server_wire import ChunkedWriter
        from ._sse import SSEDecoder

        handler.start_stream()
        out = ChunkedWriter(handler.wfile, handler.server.stopping)
        decoder = SSEDecoder()
        for data in response.iter_bytes():
            for event in decoder.decode(data):
                text = self.mask(event.data.encode())  # masked for the lesson file too
                if _take_event(outcome, text.decode()) and added_usage:
                    continue  # the usage chunk this relay asked for, not the client
                name = b"" if event.event == "message" else b"event: %s\n" % event.event.encode()
                out.send(name + b"data: " + text + b"\n\n")
            out.flush()
        out.end()


def _take_event(outcome: Outcome, data: str) -> bool:
    """Note one event's text, finish and usage; True for a usage-only chunk."""
    try:
        chunk = json.loads(data)
    except ValueError:
        return False
    if not isinstance(chunk, dict):
        return False
    if isinstance(chunk.get("usage"), dict):
        outcome.usage = _usage(chunk["usage"])
    choices = chunk.get("choices")
    if not choices:
        return "usage" in chunk
    choice = choices[0] if isinstance(choices[0], dict) else {}
    delta = choice.get("delta") or {}
    content = delta.get("content") or ""
    reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
    if content or reasoning:
        outcome.add(str(content), str(reasoning))
    if choice.get("finish_reason"):
        outcome.finish_reason = str(choice["finish_reason"])
    return False


def _take_completion(outcome: Outcome, raw: bytes) -> None:
    try:
        body = json.loads(raw)
        choice = body["choices"][0]
        message = choice["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        return
    content = message.get("content") or ""
    reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
    outcome.add(str(content), str(reasoning))
    outcome.finish_reason = choice.get("finish_reason") or "stop"
    if isinstance(body.get("usage"), dict):
        outcome.usage = _usage(body["usage"])


def _usage(data: dict[str, Any]) -> dict[str, int] | None:
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    counts = {k: data.get(k) for k in keys}
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in counts.values()):
        return None
    return counts  # type: ignore[return-value]
