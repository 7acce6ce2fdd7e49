"""Chat completion chunks -> reply deltas, and the state that turns them into a `Reply`.

Tolerates the ways servers differ: usage on a final chunk whose `choices` is empty (OpenAI,
vLLM) or not (LiteLLM) or on the finish chunk (transformers serve); reasoning as
`reasoning_content` (Qwen, DashScope) or `reasoning` (vLLM, Ollama); no `[DONE]` after the
finish chunk; error objects inside the stream; stray non-JSON data lines.
"""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple

from ._config import Secret, redact
from ._errors import StreamError
from ._reply import Reply, Usage
from ._sse import ServerSentEvent

__all__ = ["Delta", "ReplyBuilder", "error_details"]

_new_tuple = tuple.__new__
_decode_json = json.JSONDecoder().decode  # json.loads minus its per-call argument checks


class Delta(NamedTuple):
    """New text from one chunk: answer `content` and, apart from it, `reasoning`.

    A named tuple, not a dataclass: one is made per chunk, and this is the cheapest value type.
    """

    content: str = ""
    reasoning: str = ""


def error_details(body: object) -> tuple[str | None, str | None, str | None]:
    """(message, code, request_id) from any error body shape servers use.

    OpenAI `{"error": {"message", "code", "type"}}`, the reference service's flat
    `{"code", "message", "request_id"}`, FastAPI `{"detail": ...}`, vLLM's integer codes.
    """
    if not isinstance(body, dict):
        return None, None, None
    request_id = body.get("request_id") or body.get("requestId") or body.get("id")
    inner = body.get("error", body)
    if isinstance(inner, str):
        return inner, None, _str_or_none(request_id)
    if not isinstance(inner, dict):
        return None, None, _str_or_none(request_id)
    message = inner.get("message") or inner.get("msg")
    if message is None and "detail" in inner:
        detail = inner["detail"]
        message = detail if isinstance(detail, str) else json.dumps(detail)[:300]
    code = inner.get("code") or inner.get("type")
    request_id = request_id or inner.get("request_id")
    return _str_or_none(message), _str_or_none(code), _str_or_none(request_id)


def _str_or_none(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


class ReplyBuilder:
    """Accumulates one reply from streamed events or a whole completion body."""

    def __init__(
        self,
        *,
        prompt: str = "",
        params: dict[str, Any] | None = None,
        secret: Secret | None = None,
    ) -> None:
        self.secret = secret  # masked in any server text kept in warnings or errors
        self.started = time.perf_counter()
        self.first_token_at: float | None = None
        self.text_parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.id: str | None = None
        self.model: str | None = None
        self.created: int | None = None
        self.done = False  # saw `[DONE]`
        self.warnings: list[str] = []
        self.prompt = prompt
        self.params = params or {}

    @property
    def has_content(self) -> bool:
        return self.first_token_at is not None

    def add_event(self, event: ServerSentEvent, url: str = "") -> Delta | None:
        """Apply one SSE event; returns the new text it carried, if any."""
        data = event.data
        if data == "[DONE]":
            self.done = True
            return None
        try:
            chunk = _decode_json(data)
        except ValueError:
            if event.event == "error":
                self._raise_stream_error({"error": {"message": data}}, url)
            self._warn(f"Skipped a data line that is not JSON: {data[:80]!r}")
            return None
        if not isinstance(chunk, dict):
            if event.event == "error":  # e.g. `error: "context overflow"`
                self._raise_stream_error({"error": {"message": str(chunk)}}, url)
            self._warn(f"Skipped a data line that is not a JSON object: {data[:80]!r}")
            return None
        if event.event == "error" or "error" in chunk:
            self._raise_stream_error(chunk, url)
        return self.add_chunk(chunk)

    def add_chunk(self, chunk: dict[str, Any]) -> Delta | None:
        # The hot path of streaming: one call per chunk, so it reads each field once.
        if self.id is None:
            self._take_metadata(chunk)
        if chunk.get("usage"):
            self.usage = Usage.from_json(chunk["usage"]) or self.usage
        content = reasoning = ""
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content") or ""
            if "reasoning_content" in delta or "reasoning" in delta:
                reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        if not (content or reasoning):
            return None
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if content:
            self.text_parts.append(content)
        if reasoning:
            self.reasoning_parts.append(reasoning)
        return _new_tuple(Delta, (content, reasoning))  # once per chunk: skip NamedTuple.__new__

    def add_completion(self, body: dict[str, Any], url: str = "") -> None:
        """Apply a whole non-streaming `chat.completion` body (or raise the error it holds)."""
        if "error" in body:
            self._raise_stream_error(body, url)
        self._take_metadata(body)
        self.usage = Usage.from_json(body.get("usage")) or self.usage
        choices = body.get("choices") or [{}]
        choice = choices[0] if isinstance(choices[0], dict) else {}
        message = choice.get("message") or {}
        content = message.get("content") or ""
        reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
        if content or reasoning:
            self.first_token_at = time.perf_counter()
        self.text_parts = [content] if content else []
        self.reasoning_parts = [reasoning] if reasoning else []
        self.finish_reason = choice.get("finish_reason") or self.finish_reason
        self.done = True

    def _take_metadata(self, chunk: dict[str, Any]) -> None:
        if self.id is None and chunk.get("id"):
            self.id = str(chunk["id"])
        if self.model is None and chunk.get("model"):
            self.model = str(chunk["model"])
        if self.created is None and isinstance(chunk.get("created"), int):
            self.created = chunk["created"]

    def _warn(self, text: str) -> None:
        self.warnings.append(redact(text, self.secret))

    def _raise_stream_error(self, chunk: dict[str, Any], url: str) -> None:
        # Servers may echo the request's headers, so every field is masked, not just the text.
        message, code, request_id = (
            None if part is None else redact(part, self.secret) for part in error_details(chunk)
        )
        message = (message or "no message").rstrip().rstrip(".")
        text = f"The server sent an error in the stream from {url}: {message}"
        if code:
            text += f" ({code})"
        raise StreamError(
            text + ".",
            url=url,
            code=code,
            request_id=request_id,
            reply=self.build(complete=False, error=text),
        )

    def build(self, *, complete: bool | None = None, error: str | None = None) -> Reply:
        """The reply so far. Complete unless told otherwise once the server said why it stopped."""
        now = time.perf_counter()
        if complete is None:
            complete = self.finish_reason is not None
        return Reply(
            text="".join(self.text_parts),
            reasoning="".join(self.reasoning_parts),
            finish_reason=self.finish_reason,
            usage=self.usage,
            id=self.id,
            model=self.model or self.params.get("model"),
            created=self.created,
            time_to_first_token=(
                None if self.first_token_at is None else self.first_token_at - self.started
            ),
            elapsed=now - self.started,
            params=dict(self.params),
            prompt=self.prompt,
            complete=complete,
            error=error,
            warnings=list(self.warnings),
        )
