"""The offline server's request handler: routes, faults, then the planned reply, plain or streamed.

Settings and records live on the `LocalServer` (`self.server.owner`); what to answer is planned
in `_server_reply`, how it is written in `_server_wire`, and faults come from `_server_faults`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._server_faults import FAULTS, Fault
from ._server_reply import invalid, plan
from ._server_structured import refused_format
from ._server_wire import DONE, Abort, ChunkedWriter, Completion, dumps

if TYPE_CHECKING:
    from ._server import HTTPServer

__all__ = ["Handler", "ReceivedRequest"]


@dataclass(frozen=True)
class ReceivedRequest:
    """A chat request as the server saw it, so tests can check what the client really sent."""

    path: str
    headers: dict[str, str]  # lowercase names
    body: Any  # the parsed JSON, or None when the body was not JSON
    in_flight: int = 0  # other requests being answered when this one arrived


class Handler(BaseHTTPRequestHandler):
    """Answers one connection's requests; the settings and records live on the LocalServer."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small writes (headers, then body, then events) go out now
    server: HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the server runs inside notebooks and test runs."""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path.rstrip("/").endswith("/models"):
            owner = self.server.owner
            model = {"id": owner.model, "object": "model", "created": 0, "owned_by": "ipychat"}
            self.send_json(200, {"object": "list", "data": [model]})
        else:
            self._not_found(path)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        length = self.headers.get("Content-Length", "0")
        raw = self.rfile.read(int(length)) if length.isdigit() else b""
        if not path.rstrip("/").endswith("/chat/completions"):
            self._not_found(path)
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        owner = self.server.owner
        headers = {name.lower(): value for name, value in self.headers.items()}
        admitted, in_flight = owner._admit()
        fault = owner._record(ReceivedRequest(path, headers, body, in_flight))
        stream = isinstance(body, dict) and body.get("stream") is True
        try:
            if not admitted:
                self._rate_limited()
            elif fault is None or not self._answer_fault(fault, stream):
                self._chat(body, stream, fault)
        except Abort:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:  # the client went away
            self.close_connection = True
        finally:
            if admitted:
                owner._leave()

    def _rate_limited(self) -> None:
        """429 with Retry-After (and retry-after-ms), as a provider over its limit answers."""
        owner = self.server.owner
        seconds = owner.retry_after
        error = {
            "message": f"Rate limit reached: at most {owner.max_concurrent} requests at a time.",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
        headers = {
            "Retry-After": f"{max(1, round(seconds))}",
            "retry-after-ms": f"{seconds * 1000:.0f}",
        }
        self.send(429, dumps({"error": error}), "application/json", headers)

    def _answer_fault(self, fault: Fault, stream: bool) -> bool:
        """Apply the faults that act before the answer; True when they answered already."""
        kind = FAULTS[fault.kind]
        if kind.before is not None:
            return kind.before(self, fault, stream)
        if not stream and kind.plain is not None:
            return kind.plain(self, fault)
        return False

    def _chat(self, body: Any, stream: bool, fault: Fault | None) -> None:
        owner = self.server.owner
        error = invalid(body) or refused_format(body, owner.response_formats)
        if error is not None:
            flat = {"request_id": str(uuid.uuid4()), "latency": 0, "code": "InvalidParameter"}
            self.send_json(400, {**flat, "message": error})
            return
        reply = plan(body, owner._turns, owner.chunk_chars)
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        completion = Completion(owner._next_number(), body["model"], reply, include_usage)
        if stream:
            self._stream(completion, fault)
            return
        tokens = len(reply.reasoning) + len(reply.content)
        delay = owner.first_token_delay + owner.token_delay * max(tokens - 1, 0)
        if delay > 0:  # a plain answer takes as long as the stream would have
            self.wait(delay)
        self.send_json(200, completion.message())

    def _stream(self, completion: Completion, fault: Fault | None) -> None:
        kind = FAULTS[fault.kind] if fault is not None else None
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        if kind is not None and kind.closes:
            self.send_header("Connection", "close")
        self.end_headers()
        owner, reply = self.server.owner, completion.reply
        out = ChunkedWriter(self.wfile, self.server.stopping)
        out.send(completion.delta({"role": "assistant", "content": ""}))
        events = [completion.reasoning(text) for text in reply.reasoning]
        events += [completion.content(text) for text in reply.content]
        inject = fault.after_chunks if kind is not None and kind.in_stream is not None else -1
        delay = owner.first_token_delay
        for number, event in enumerate(events):
            if number == inject and not self._inject(out, fault):
                return
            out.pause(delay)
            delay = owner.token_delay
            out.send(event)
        if inject >= len(events) and not self._inject(out, fault):
            return
        done = kind is None or kind.done
        out.send(completion.delta({}, reply.finish_reason, None if done else reply.usage))
        if completion.include_usage and done:
            out.send(completion.usage_event())
        if done:
            out.send(DONE)
        out.end()

    def _inject(self, out: ChunkedWriter, fault: Fault | None) -> bool:
        """Apply a mid-stream fault; False when it ended the stream."""
        assert fault is not None
        in_stream = FAULTS[fault.kind].in_stream
        return in_stream is None or in_stream(out, fault)

    def wait(self, seconds: float | None) -> None:
        """Wait, unless the server stops first: then end this response at once."""
        if self.server.stopping.wait(seconds):
            raise Abort

    def _not_found(self, path: str) -> None:
        error = {
            "message": f"No route for {self.command} {path}; try POST /v1/chat/completions.",
            "type": "invalid_request_error",
            "param": None,
            "code": "not_found",
        }
        self.send_json(404, {"error": error})

    def send_json(self, status: int, body: object) -> None:
        self.send(status, dumps(body), "application/json")

    def send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        """Send a whole answer with its length, so the connection can be kept alive."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

