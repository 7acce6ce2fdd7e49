"""Injected failures for the offline server, so a client's error paths get tested.

Each kind of fault is one row of `FAULTS`: what it does before the answer, on a plain (not
streamed) answer, and in a stream. A new kind is a new row; the handler needs no change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ._server_wire import DONE, Abort, ChunkedWriter, dumps

__all__ = ["FAULTS", "Fault", "FaultKind", "Target"]

_INJECTED_ERROR = {
    "error": {
        "message": "Injected error",
        "type": "server_error",
        "param": None,
        "code": "injected",
    }
}
_STREAM_ERROR = {
    "error": {"message": "Injected stream error", "type": "server_error", "code": "stream_error"}
}
_TRUNCATED = b'{"id": "x", "choi'
_NOT_JSON = b"this is not json"
# llama-cpp-python (observed): a validation error as a 500 whose message spans lines and ends in
# a fragment of the server's traceback.
_TRACEBACK_ERROR = {
    "error": {
        "message": (
            "1 validation error for CreateChatCompletionRequest\ntemperature\n"
            "  Input should be less than or equal to 2 [type=less_than_equal, input_value=5]\n"
            "Traceback (most recent call last):\n"
            '  File "/app/llama_cpp/server/errors.py", line 171, in custom_route_handler\n'
            "    response = await original_route_handler(request)\n"
            "pydantic_core._pydantic_core.ValidationError: 1 validation error"
        ),
        "type": "internal_server_error",
        "param": None,
        "code": None,
    }
}
# LiteLLM proxy (observed): a provider's error padded with lines about its model group.
_LITELLM_ERROR = {
    "error": {
        "message": (
            "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached for "
            "requests\nReceived Model Group=gpt-4o\nAvailable Model Group Fallbacks=None\n\n"
            "LiteLLM: model group 'gpt-4o' failed with the error above. " + "x" * 300
        ),
        "type": None,
        "param": None,
        "code": "429",
    }
}
# llama-cpp-python's context overflow, answered when the prompt is not streamed.
_OVERFLOW_ERROR = {
    "error": {
        "message": (
            "This model's maximum context length is 2048 tokens. However, you requested 2100 "
            "tokens (2000 in the messages, 100 in the completion). Please reduce the length of "
            "the messages or completion."
        ),
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}
# Chunk shapes servers (or proxies) get wrong; each carries text a client can still show.
ODD_CHUNKS: list[object] = [
    {"choices": [{"index": 0, "delta": {"content": [{"type": "text", "text": "parts "}]}}]},
    {"choices": [{"index": 0, "delta": "string-delta "}]},
    {"choices": [{"index": 0, "delta": {"content": 42}}]},
    {"choices": {"index": 0, "delta": {"content": " dict-choices "}}},
    {"choices": [{"index": 0, "delta": {"content": None}, "finish_reason": 7}]},
    {"choices": "not a list", "usage": "odd"},
    {"choices": [{"index": 0, "delta": {"content": {"type": "text", "text": "end"}}}]},
]
ODD_COMPLETION = {
    "choices": {
        "index": "0",
        "message": {"content": [{"type": "text", "text": "parts"}, {"type": "image_url"}, 42]},
        "finish_reason": {"type": "stop"},
    },
    "usage": [1, 2],
}


@dataclass
class Fault:
    """One injected failure, taken by the next `times` chat requests to test a client's error paths.

    Before any byte of the answer:

    - `status`: answer `status` (default 500) with `body` (default an OpenAI-shaped error; a
      str is sent as text/plain) and `headers` (e.g. `{"Retry-After": "1"}`).
    - `html`: answer `status` (default 502) with a proxy's HTML error page.
    - `empty`: answer 200 with an empty body.
    - `hang`: read the request, then send nothing for `seconds` (0: until `stop()`), then
      answer normally; a client read timeout shorter than that fires before any byte.
    - `stale`: read the request, then close the connection without a byte of answer, as a
      server does when it closes an idle keep-alive connection while the request is on its way.
    - `close_idle`: answer normally, then close the connection once it has been idle for
      `seconds` (real servers' keep-alive timeout).
    - `traceback`: answer `status` (default 500) with llama-cpp-python's several-line message
      that ends in a fragment of the server's traceback.
    - `litellm`: answer `status` (default 429) with LiteLLM's padded message and string code.
    - `overflow`: llama-cpp-python's context overflow: a streamed request gets a 200 with an
      empty body, a plain one a 400 `context_length_exceeded`.
    - `redirect`: answer `status` (default 307) with `Location` from `headers`, by default the
      same server under `/v2`.
    - `unstreamed`: answer a streamed request with a whole JSON completion.

    In a stream, after `after_chunks` text chunks (reasoning or content):

    - `drop`: close the socket abruptly: no finish chunk, no `[DONE]`, no final HTTP chunk.
    - `stall`: pause `seconds`, then go on normally.
    - `error_event`: send `data: {"error": ...}` then `data: [DONE]` (as vLLM does).
    - `truncated_json`: send a cut-off JSON event, end the body cleanly and close the connection.
    - `bad_data`: send `data: this is not json`, then go on normally.
    - `no_done`: usage rides on the finish chunk and `[DONE]` never comes (transformers serve).
    - `keepalive`: for `seconds`, send only `: ping` comments, one every `every` seconds (as
      llama-cpp-python does while it generates slowly), then go on normally.
    - `odd_chunks`: send each of `body` (default `ODD_CHUNKS`) as a data event, then go on.

    On a non-streaming request, `drop` closes without an answer, `stall` and `keepalive`
    delay the answer, `error_event`, `truncated_json` and `bad_data` become a 200 body of that
    content, and `odd_chunks` answers `body` (a dict) as the whole 200 body.
    """

    kind: str
    status: int | None = None
    body: object | None = None
    headers: dict[str, str] = field(default_factory=dict)
    after_chunks: int = 0
    seconds: float = 0.0
    times: int = 1
    every: float = 0.25

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            kinds = ", ".join(sorted(FAULTS))
            raise ValueError(f"Unknown fault kind {self.kind!r}; expected one of {kinds}.")
        if self.times < 1:
            raise ValueError(f"Fault times must be at least 1, not {self.times}.")


class Target(Protocol):
    """What a fault may do to the response: the request handler offers these."""

    responses: dict[int, tuple[str, str]]

    def send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None: ...

    def wait(self, seconds: float | None) -> None: ...

    def close_when_idle(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class FaultKind:
    """How one kind of fault acts at each point of an answer; None where it does not act.

    `before(target, fault, stream)` and `plain(target, fault)` return True when they answered
    already; `in_stream(out, fault)` returns False when it ended the stream. `done=False` ends
    a stream with usage on the finish chunk and no `[DONE]`; `closes` says in the stream's
    headers that the connection ends with it; `unstreamed` answers a stream as a whole body.
    """

    before: Callable[[Target, Fault, bool], bool] | None = None
    plain: Callable[[Target, Fault], bool] | None = None
    in_stream: Callable[[ChunkedWriter, Fault], bool] | None = None
    done: bool = True
    closes: bool = False
    unstreamed: bool = False


def _status(target: Target, fault: Fault, stream: bool) -> bool:
    status = fault.status or 500
    if isinstance(fault.body, str):
        target.send(status, fault.body.encode(), "text/plain; charset=utf-8", fault.headers)
    else:
        body = _INJECTED_ERROR if fault.body is None else fault.body
        target.send(status, dumps(body), "application/json", fault.headers)
    return True


def _html(target: Target, fault: Fault, stream: bool) -> bool:
    status = fault.status or 502
    title = f"{status} {target.responses.get(status, ('Error',))[0]}"
    page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    target.send(status, page.encode(), "text/html; charset=utf-8", fault.headers)
    return True


def _empty(target: Target, fault: Fault, stream: bool) -> bool:
    content_type = "text/event-stream" if stream else "application/json"
    target.send(200, b"", content_type, fault.headers)
    return True


def _hang(target: Target, fault: Fault, stream: bool) -> bool:
    target.wait(fault.seconds or None)
    return False


def _stale(target: Target, fault: Fault, stream: bool) -> bool:
    raise Abort


def _close_idle(target: Target, fault: Fault, stream: bool) -> bool:
    target.close_when_idle(fault.seconds)
    return False


def _error_body(body: object, status: int) -> Callable[[Target, Fault, bool], bool]:
    def answer(target: Target, fault: Fault, stream: bool) -> bool:
        target.send(fault.status or status, dumps(body), "application/json", fault.headers)
        return True

    return answer


def _overflow(target: Target, fault: Fault, stream: bool) -> bool:
    if stream:
        target.send(200, b"", "text/event-stream", fault.headers)
    else:
        target.send(400, dumps(_OVERFLOW_ERROR), "application/json", fault.headers)
    return True


def _redirect(target: Target, fault: Fault, stream: bool) -> bool:
    headers = {"Location": "/v2/chat/completions", **fault.headers}
    target.send(fault.status or 307, b"", "text/plain", headers)
    return True


def _keepalive(out: ChunkedWriter, fault: Fault) -> bool:
    left = fault.seconds
    while left > 0:
        out.send(b": ping - %.3f\n\n" % time.time())
        step = min(fault.every, left)
        out.pause(step)
        left -= step
    return True


def _odd_chunks(out: ChunkedWriter, fault: Fault) -> bool:
    chunks = ODD_CHUNKS if fault.body is None else fault.body
    for chunk in chunks if isinstance(chunks, list) else [chunks]:
        out.send(b"data: " + dumps(chunk) + b"\n\n")
    return True


def _odd_body_plain(target: Target, fault: Fault) -> bool:
    body = fault.body if fault.body is not None else ODD_COMPLETION
    target.send(200, dumps(body), "application/json")
    return True


def _drop_plain(target: Target, fault: Fault) -> bool:
    raise Abort


def _drop(out: ChunkedWriter, fault: Fault) -> bool:
    out.flush()
    raise Abort


def _stall_plain(target: Target, fault: Fault) -> bool:
    target.wait(fault.seconds)
    return False


def _stall(out: ChunkedWriter, fault: Fault) -> bool:
    out.pause(fault.seconds)
    return True


def _error_event_plain(target: Target, fault: Fault) -> bool:
    target.send(200, dumps(_STREAM_ERROR), "application/json")
    return True


def _error_event(out: ChunkedWriter, fault: Fault) -> bool:
    out.send(b"data: " + dumps(_STREAM_ERROR) + b"\n\n" + DONE)
    out.end()
    return False


def _body_plain(body: bytes) -> Callable[[Target, Fault], bool]:
    def answer(target: Target, fault: Fault) -> bool:
        target.send(200, body, "application/json")
        return True

    return answer


def _truncated(out: ChunkedWriter, fault: Fault) -> bool:
    out.send(b"data: " + _TRUNCATED + b"\n\n")
    out.end()
    return False


def _bad_data(out: ChunkedWriter, fault: Fault) -> bool:
    out.send(b"data: " + _NOT_JSON + b"\n\n")
    return True


FAULTS: dict[str, FaultKind] = {
    "status": FaultKind(before=_status),
    "html": FaultKind(before=_html),
    "empty": FaultKind(before=_empty),
    "hang": FaultKind(before=_hang),
    "drop": FaultKind(plain=_drop_plain, in_stream=_drop),
    "stall": FaultKind(plain=_stall_plain, in_stream=_stall),
    "error_event": FaultKind(plain=_error_event_plain, in_stream=_error_event),
    "truncated_json": FaultKind(
        plain=_body_plain(_TRUNCATED), in_stream=_truncated, closes=True
    ),
    "bad_data": FaultKind(plain=_body_plain(_NOT_JSON), in_stream=_bad_data),
    "no_done": FaultKind(done=False),
    "stale": FaultKind(before=_stale),
    "close_idle": FaultKind(before=_close_idle),
    "traceback": FaultKind(before=_error_body(_TRACEBACK_ERROR, 500)),
    "litellm": FaultKind(before=_error_body(_LITELLM_ERROR, 429)),
    "overflow": FaultKind(before=_overflow),
    "redirect": FaultKind(before=_redirect),
    "unstreamed": FaultKind(unstreamed=True),
    "keepalive": FaultKind(plain=_stall_plain, in_stream=_keepalive),
    "odd_chunks": FaultKind(plain=_odd_body_plain, in_stream=_odd_chunks),
}
