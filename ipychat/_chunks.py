"""Chat completion chunks -> reply deltas, and the state that turns them into a `Reply`.

Tolerates the ways servers differ: usage on a final chunk whose `choices` is empty (OpenAI,
vLLM) or not (LiteLLM) or on the finish chunk (transformers serve); reasoning as
`reasoning_content` (Qwen, DashScope) or `reasoning` (vLLM, Ollama); no `[DONE]` after the
finish chunk; error objects inside the stream; stray non-JSON data lines; and chunks of odd
shapes (content as a list of parts, a string `delta`, numbers, objects where lists belong),
which `_shapes` reads as text or skips with a warning: never a TypeError.
"""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple

from ._errors import APIStatusError, StreamError
from ._reply import Reply, Usage
from ._secrets import Redactor, Secret
from ._shapes import choice_text, finish_text, first_choice
from ._sse import ServerSentEvent
from ._status import OVERFLOW_ADVICE, clean_message, error_details, is_context_overflow

__all__ = ["Delta", "ReplyBuilder"]

_new_tuple = tuple.__new__
_decode_json = json.JSONDecoder().decode
# The C scanner itself: json.loads minus its argument checks and its two whitespace regexes.
# A chunk with surrounding whitespace or trailing data takes the careful path instead.
_scan_json = json.JSONDecoder().scan_once
_JSON_ERRORS = (ValueError, StopIteration, RecursionError)


class Delta(NamedTuple):
    """New text from one chunk: answer `content` and, apart from it, `reasoning`.

    A named tuple, not a dataclass: one is made per chunk, and this is the cheapest value type.
    """

    content: str = ""
    reasoning: str = ""


class ReplyBuilder:
    """Accumulates one reply from streamed events or a whole completion body."""

    def __init__(
        self,
        *,
        prompt: str = "",
        params: dict[str, Any] | None = None,
        secret: Secret | Redactor | None = None,
    ) -> None:
        # Masks secrets in every server string kept: text, metadata, warnings, errors.
        self.redactor = secret if isinstance(secret, Redactor) else Redactor([secret])
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
        self._metadata_left = 3  # chunks still read for id, model and created

    @property
    def has_content(self) -> bool:
        return self.first_token_at is not None

    # -- streams -------------------------------------------------------------------------------
    def add_events(self, events: list[str | ServerSentEvent], url: str = "") -> list[Delta]:
        """Apply events as `SSEDecoder.feed` returns them; returns the new text they carried.

        The streaming hot path: a plain event's data goes straight to the JSON scanner and
        `add_chunk`; `[DONE]`, errors, named events and anything odd go through `add_event`.
        """
        deltas: list[Delta] = []
        add_chunk = self.add_chunk
        for event in events:
            if event.__class__ is str:
                try:
                    chunk, end = _scan_json(event, 0)
                except _JSON_ERRORS:
                    chunk, end = None, -1
                if end == len(event) and chunk.__class__ is dict and "error" not in chunk:
                    delta = add_chunk(chunk)
                else:
                    delta = self.add_event(ServerSentEvent("message", event), url)  # type: ignore[arg-type]
            else:
                delta = self.add_event(event, url)  # type: ignore[arg-type]
            if delta is not None:
                deltas.append(delta)
        return deltas

    def add_event(self, event: ServerSentEvent, url: str = "") -> Delta | None:
        """Apply one SSE event; returns the new text it carried, if any."""
        data = event.data
        if data == "[DONE]":
            self.done = True
            return None
        try:
            chunk = _decode_json(data)
        except (ValueError, RecursionError):
            if event.event == "error":
                self._raise_error({"error": {"message": data}}, url)
            self._warn(f"Skipped a data line that is not JSON: {self._excerpt(data)!r}")
            return None
        if not isinstance(chunk, dict):
            if event.event == "error":  # e.g. `error: "context overflow"`
                self._raise_error({"error": {"message": str(chunk)}}, url)
            line = self._excerpt(data)
            self._warn(f"Skipped a data line that is not a JSON object: {line!r}")
            return None
        if event.event == "error" or chunk.get("error"):
            self._raise_error(chunk, url)
        return self.add_chunk(chunk)

    def add_chunk(self, chunk: dict[str, Any]) -> Delta | None:
        # The hot path of streaming: one call per chunk, so it reads each field once. Any shape
        # but the usual one fails a check or raises here and goes to `_odd_chunk`.
        if self._metadata_left:
            self._take_metadata(chunk)
        usage = chunk.get("usage")
        if usage:
            self.usage = Usage.from_json(usage) or self.usage
        content = reasoning = ""
        choices = chunk.get("choices")
        if choices:
            try:
                for choice in choices:
                    if choice.get("index", 0) != 0 and choice.get("index") not in ("0", None):
                        continue  # another choice (n > 1)
                    delta = choice.get("delta")
                    if not delta:  # the finish chunk, or a shape without one: `_odd_chunk`
                        raise TypeError
                    content = delta.get("content") or ""
                    if "reasoning_content" in delta or "reasoning" in delta:
                        reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
                    finish = choice.get("finish_reason")
                    if finish:
                        self.finish_reason = finish_text(finish)
                if content.__class__ is not str or reasoning.__class__ is not str:
                    raise TypeError
            except (AttributeError, TypeError):
                content, reasoning = self._odd_chunk(choices)
        if not (content or reasoning):
            return None
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if content:
            self.text_parts.append(content)
        if reasoning:
            self.reasoning_parts.append(reasoning)
        return _new_tuple(Delta, (content, reasoning))  # once per chunk: skip NamedTuple.__new__

    def _odd_chunk(self, choices: object) -> tuple[str, str]:
        choice = first_choice(choices, self._warn)
        if choice is None:
            return "", ""
        finish = finish_text(choice.get("finish_reason"))
        if finish is not None:
            self.finish_reason = finish
        return choice_text(choice, "delta", self._warn)

    # -- whole answers -------------------------------------------------------------------------
    def add_completion(self, body: object, url: str = "") -> None:
        """Apply a whole non-streaming `chat.completion` body (or raise the error it holds)."""
        body = self.redactor.json(body)  # after decoding: escaped echoes are plain here
        if not isinstance(body, dict):
            self._no_reply(url, f"the body is a JSON {type(body).__name__}, not an object")
        if body.get("error"):
            self._raise_error(body, url, where="answer")
        self._take_metadata(body)
        self.usage = Usage.from_json(body.get("usage")) or self.usage
        choice = first_choice(body.get("choices"), self._warn)
        if choice is None:
            self._no_reply(url, "it holds no choices")
        content, reasoning = choice_text(choice, "message", self._warn)
        if content or reasoning:
            self.first_token_at = time.perf_counter()
        self.text_parts = [content] if content else []
        self.reasoning_parts = [reasoning] if reasoning else []
        self.finish_reason = finish_text(choice.get("finish_reason")) or self.finish_reason
        self.done = True

    def _no_reply(self, url: str, why: str) -> Any:
        skipped = f" ({self.warnings[0].rstrip('.')})" if self.warnings else ""
        raise APIStatusError(
            f"200 from {url}, but {why}{skipped}: no reply to show. Check that base_url is an "
            "OpenAI-compatible chat completions endpoint.",
            url=url,
            status=200,
            setting="base_url",
        )

    # -- shared --------------------------------------------------------------------------------
    def _take_metadata(self, chunk: dict[str, Any]) -> None:
        self._metadata_left -= 1
        if self.id is None and chunk.get("id"):
            self.id = str(chunk["id"])[:200]
        if self.model is None and isinstance(chunk.get("model"), str) and chunk["model"]:
            self.model = chunk["model"][:200]
        if self.created is None and isinstance(chunk.get("created"), int):
            self.created = chunk["created"]
        if self.id is not None and self.model is not None:
            self._metadata_left = 0

    def _redact(self, text: str) -> str:
        return self.redactor.text(text)

    def _excerpt(self, data: str) -> str:
        """A raw data line to quote: redacted (escapes undone) before it is cut short."""
        return self.redactor.text(data, raw=True)[:80]

    def _clean(self, text: str | None) -> str | None:
        return None if text is None else self.redactor.text(text)

    def _warn(self, text: str) -> None:
        text = self._redact(text)
        if text not in self.warnings:  # one note per kind of oddity, not one per chunk
            self.warnings.append(text)

    def _raise_error(self, chunk: dict[str, Any], url: str, where: str = "stream") -> None:
        # Servers may echo the request's headers, so every field is masked, not just the text,
        # and before error_details cuts anything short.
        message, code, request_id = error_details(self.redactor.json(chunk))
        overflow = is_context_overflow(message, code)
        text = f"The server sent an error in the {where} from {url}: "
        text += clean_message(message or "no message")
        if code:
            text += f" ({clean_message(code, 60)})"
        text += "."
        if overflow:
            text += " " + OVERFLOW_ADVICE
        raise StreamError(
            text,
            url=url,
            code=code,
            request_id=request_id,
            reply=self.build(complete=False, error=text),
            setting="history_limit" if overflow else None,
            overflow=overflow,
        )

    def build(self, *, complete: bool | None = None, error: str | None = None) -> Reply:
        """The reply so far. Complete unless told otherwise once the server said why it stopped."""
        now = time.perf_counter()
        if complete is None:
            complete = self.finish_reason is not None
        return Reply(
            # Streamed parts are already masked (StreamGuard); this pass is for any other path.
            text=self.redactor.text("".join(self.text_parts)),
            reasoning=self.redactor.text("".join(self.reasoning_parts)),
            finish_reason=self._clean(self.finish_reason),
            usage=self.usage,
            id=self._clean(self.id),
            model=self._clean(self.model or self.params.get("model")),
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
