"""The offline server's request handler: routes, faults, then the planned reply, plain or streamed.

Settings and records live on the `LocalServer` (`self.server.owner`); what to answer is planned
in `_server_reply`, how it is written in `_server_wire`, and faults come from `_server_faults`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._safetext import one_line
from ._server_budget import Student
from ._server_faults import FAULTS, Fault
from ._server_reply import Refused, invalid, plan
from ._server_structured import refused_format
from ._server_wire import DONE, Abort, ChunkedWriter, Completion, dumps

if TYPE_CHECKING:
    from ._server import HTTPServer

__all__ = ["Handler", "LogEntry", "ReceivedRequest"]


@dataclass(frozen=True)
class ReceivedRequest:
    """A chat request as the server saw it, so tests can check what the client really sent."""

    path: str
    headers: dict[str, str]  # lowercase names
    body: Any  # the parsed JSON, or None when the body was not JSON
    in_flight: int = 0  # other requests being answered when this one arrived


class LogEntry:
    """One request log line: time, client, student, model, tokens and outcome."""

    def __init__(self, client: str, body: object) -> None:
        self.started = time.perf_counter()
        self.at = time.time()  # formatted only if a line is written
        self.client = client
        self.body = body
        self.student: int | None = None
        self.status = 200
        self.usage: dict[str, int] | None = None
        self.outcome = "ok"

    def line(self) -> str:
        who = self.client if self.student is None else f"{self.client} student#{self.student}"
        tokens = "-"
        if self.usage:
            tokens = f"{self.usage['prompt_tokens']}+{self.usage['completion_tokens']} tokens"
        seconds = time.perf_counter() - self.started
        model = self.body.get("model") if isinstance(self.body, dict) else None
        model = one_line(model, 40) if isinstance(model, str) and model else "-"
        clock = time.strftime("%H:%M:%S", time.localtime(self.at))
        return (
            f"{clock} {who} {model} {tokens} "
            f"{self.status} {self.outcome} {seconds:.2f}s"
        )


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
        admitted, in_flight = owner._enter()
        fault = owner._record(ReceivedRequest(path, headers, body, in_flight))
        stream = isinstance(body, dict) and body.get("stream") is True
        entry = LogEntry(self.client_address[0], body)
        try:
            if not admitted:
                self._rate_limited(entry)
            elif fault is None or not self._answer_fault(fault, stream):
                unstreamed = fault is not None and FAULTS[fault.kind].unstreamed
                self._chat(body, stream and not unstreamed, fault, entry)
            else:
                entry.outcome = f"fault {fault.kind}"
        except Abort:
            entry.outcome = "dropped"
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:  # the client went away
            entry.outcome = "client went away"
            self.close_connection = True
        finally:
            if admitted:
                owner._leave()
            if owner.log is not None:
                owner.log(entry.line())

    def _rate_limited(self, entry: LogEntry) -> None:
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
        entry.status, entry.outcome = 429, "rate limited"

    def _answer_fault(self, fault: Fault, stream: bool) -> bool:
        """Apply the faults that act before the answer; True when they answered already."""
        kind = FAULTS[fault.kind]
        if kind.before is not None:
            return kind.before(self, fault, stream)
        if not stream and kind.plain is not None:
            return kind.plain(self, fault)
        return False

    def _chat(self, body: Any, stream: bool, fault: Fault | None, entry: LogEntry) -> None:
        owner = self.server.owner
        error = invalid(body) or refused_format(body, owner.response_formats)
        if error is not None:
            flat = {"request_id": str(uuid.uuid4()), "latency": 0, "code": "InvalidParameter"}
            self.send_json(400, {**flat, "message": error})
            entry.status, entry.outcome = 400, "invalid request"
            return
        try:
            if owner.upstream is not None:
                self._relay(body, stream, entry)
                return
            reply = plan(body, owner)
            student = self._admit(reply.usage["total_tokens"], entry)
        except Refused as refusal:
            self.send_json(refusal.status, refusal.body())
            entry.status, entry.outcome = refusal.status, refusal.code
            entry.student = refusal.student or entry.student
            return
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        completion = Completion(owner._next_number(), body["model"], reply, include_usage)
        entry.usage = reply.usage
        if student is not None and owner.students is not None:
            owner.students.charge(student, reply.usage["total_tokens"])
        if stream:
            self._stream(completion, fault)
            return
        first, each = owner.delays(reply)
        delay = first + each * max(reply.chunks - 1, 0)
        if delay > 0:  # a plain answer takes as long as the stream would have
            self.wait(delay)
        self.send_json(200, completion.message())

    def _admit(self, tokens: int | None, entry: LogEntry) -> Student | None:
        students = self.server.owner.students
        if students is None:
            return None
        student = students.admit(self.headers.get("Authorization"), tokens)
        entry.student = student.number
        return student

    def _relay(self, body: dict[str, Any], stream: bool, entry: LogEntry) -> None:
        """Pass the request on to the upstream model, then record the exchange."""
        owner = self.server.owner
        assert owner.upstream is not None
        student = self._admit(None, entry)
        if student is not None and owner.students is not None:
            left = owner.students.remaining_tokens(student)
            if left is not None:  # the upstream cannot spend more than is left
                body = {**body, "max_tokens": min(body.get("max_tokens") or left, left)}
        outcome = owner.upstream.relay(self, body, stream)
        entry.status, entry.usage = outcome.status, outcome.usage
        entry.outcome = "relayed" if outcome.status == 200 else "upstream error"
        if student is not None and owner.students is not None and outcome.usage:
            owner.students.charge(student, outcome.usage["total_tokens"])
        if owner.recorder is not None and outcome.status == 200 and outcome.chunks:
            from ._lesson_write import turn_table

            turn = turn_table(
                body["messages"][-1]["content"],
                "".join(outcome.text),
                reasoning="".join(outcome.reasoning),
                finish_reason=outcome.finish_reason,
                usage=outcome.usage,
                timing=outcome.timing() if stream else None,
            )
            owner.recorder.append(turn)
            entry.outcome = "recorded"

    def start_stream(self, close: bool = False) -> None:
        """Send a stream's headers; the body follows as HTTP/1.1 chunks."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        if close:
            self.send_header("Connection", "close")
        self.end_headers()

    def _stream(self, completion: Completion, fault: Fault | None) -> None:
        kind = FAULTS[fault.kind] if fault is not None else None
        self.start_stream(close=kind is not None and kind.closes)
        owner, reply = self.server.owner, completion.reply
        out = ChunkedWriter(self.wfile, self.server.stopping)
        out.send(completion.role())
        events = [completion.reasoning(text) for text in reply.reasoning]
        events += [completion.content(text) for text in reply.content]
        inject = fault.after_chunks if kind is not None and kind.in_stream is not None else -1
        delay, each = owner.delays(reply)
        # Each token is due at a time on a schedule, not a pause after the last one, so the
        # time a write and a wake-up take does not add up: a replay keeps the recorded pace.
        due = time.perf_counter()
        for number, event in enumerate(events):
            if number == inject:
                if not self._inject(out, fault):
                    return
                due = time.perf_counter()  # a stall moves the rest of the schedule
            due += delay
            if delay > 0:
                out.flush()  # even when already due: a late token still goes out now
                out.pause(due - time.perf_counter())
            delay = each
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

    def close_when_idle(self, seconds: float) -> None:
        """Close this keep-alive connection once no request came for `seconds` (a read timeout
        in `handle_one_request` ends the connection)."""
        self.connection.settimeout(seconds)

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

