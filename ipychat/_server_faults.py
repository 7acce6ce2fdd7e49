"""Injected failures for the offline server, so a client's error paths get tested.

Each kind of fault is one row of `FAULTS`: what it does before the answer, on a plain (not
streamed) answer, and in a stream. A new kind is a new row; the handler needs no change.
"""

from __future__ import annotations

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

    In a stream, after `after_chunks` text chunks (reasoning or content):

    - `drop`: close the socket abruptly: no finish chunk, no `[DONE]`, no final HTTP chunk.
    - `stall`: pause `seconds`, then go on normally.
    - `error_event`: send `data: {"error": ...}` then `data: [DONE]` (as vLLM does).
    - `truncated_json`: send a cut-off JSON event, end the body cleanly and close the connection.
    - `bad_data`: send `data: this is not json`, then go on normally.
    - `no_done`: usage rides on the finish chunk and `[DONE]` never comes (transformers serve).

    On a non-streaming request, `drop` closes without an answer, `stall` delays the answer,
    and `error_event`, `truncated_json` and `bad_data` become a 200 body of that content.
    """

    kind: str
    status: int | None = None
    body: object | None = None
    headers: dict[str, str] = field(default_factory=dict)
    after_chunks: int = 0
    seconds: float = 0.0
    times: int = 1

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


@dataclass(frozen=True)
class FaultKind:
    """How one kind of fault acts at each point of an answer; None where it does not act.

    `before(target, fault, stream)` and `plain(target, fault)` return True when they answered
    already; `in_stream(out, fault)` returns False when it ended the stream. `done=False` ends
    a stream with usage on the finish chunk and no `[DONE]`; `closes` says in the stream's
    headers that the connection ends with it.
    """

    before: Callable[[Target, Fault, bool], bool] | None = None
    plain: Callable[[Target, Fault], bool] | None = None
    in_stream: Callable[[ChunkedWriter, Fault], bool] | None = None
    done: bool = True
    closes: bool = False


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
}
