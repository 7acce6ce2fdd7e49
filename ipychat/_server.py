"""A deterministic, offline OpenAI-compatible chat server for demos, lessons, tests and benchmarks.

It needs no network and no key, and answers the same way every time, so a classroom, a notebook
or a test can rely on it. It follows the reference service's contract (the
`/compatible-mode/v1/chat/completions` path, its parameter ranges and its flat 400 body) and
can inject the failures real servers show (see `Fault`), so the client's error paths get tested.

    with LocalServer(script="lesson.toml") as server:
        httpx.post(server.base_url + "/chat/completions", json={"model": "m", "messages": ...})

The reply to the last user message is, in order of precedence:

- `/repeat N WORD`: WORD repeated N times, space-separated (long output without a script);
- the `reply` of the first script turn whose `prompt` regex matches (case-insensitive search);
- `"Echo: " + message`.

Replies are cut into one chunk per word (with its following whitespace), or `chunk_chars`
characters each. `stop` cuts the reply before the first stop sequence; `max_tokens` caps its
content chunks (finish_reason "length"). Usage counts the words of all messages as prompt
tokens and the reasoning and content chunks as completion tokens. Stdlib only.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["Fault", "LocalServer", "ReceivedRequest", "load_script", "serve"]

FAULT_KINDS = frozenset(
    {
        "status",
        "drop",
        "stall",
        "hang",
        "error_event",
        "truncated_json",
        "bad_data",
        "html",
        "empty",
        "no_done",
    }
)

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
_DONE = b"data: [DONE]\n\n"
_REPEAT = re.compile(r"/repeat (\d+) (.+)")
_WORD = re.compile(r"\s*\S+\s*")
_TURN_KEYS = ("prompt", "reply", "reasoning", "finish_reason")
_ROLES = ("system", "user", "assistant")
_RANGES = {
    "temperature": (lambda x: 0 <= x < 2, "in [0, 2)"),
    "top_p": (lambda x: 0 < x <= 1, "in (0, 1]"),
    "presence_penalty": (lambda x: -2 <= x <= 2, "in [-2, 2]"),
    "frequency_penalty": (lambda x: -2 <= x <= 2, "in [-2, 2]"),
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
        if self.kind not in FAULT_KINDS:
            kinds = ", ".join(sorted(FAULT_KINDS))
            raise ValueError(f"Unknown fault kind {self.kind!r}; expected one of {kinds}.")
        if self.times < 1:
            raise ValueError(f"Fault times must be at least 1, not {self.times}.")


@dataclass(frozen=True)
class ReceivedRequest:
    """A chat request as the server saw it, so tests can check what the client really sent."""

    path: str
    headers: dict[str, str]  # lowercase names
    body: Any  # the parsed JSON, or None when the body was not JSON


@dataclass(frozen=True)
class _Turn:
    prompt: re.Pattern[str]
    reply: str
    reasoning: str = ""
    finish_reason: str = "stop"


def load_script(script: str | Path | list[dict[str, Any]] | None) -> list[_Turn]:
    """Parse and check a lesson script up front, so a typo fails at start and not mid-lesson.

    `script` is a TOML file of `[[turn]]` tables, or the list of those tables already parsed.
    """
    if script is None:
        return []
    if isinstance(script, (str, Path)):
        name = str(script)
        try:
            data = tomllib.loads(Path(script).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{name}: not valid TOML: {error}") from error
        unknown = sorted(set(data) - {"turn"})
        if unknown:
            raise ValueError(f"{name}: unknown top-level key {unknown[0]!r}; use [[turn]] tables.")
        turns = data.get("turn", [])
    else:
        name, turns = "<script>", script
    if not isinstance(turns, list):
        raise ValueError(f"{name}: turns must be a list of [[turn]] tables.")
    return [_parse_turn(name, number, turn) for number, turn in enumerate(turns, 1)]


def _parse_turn(name: str, number: int, turn: object) -> _Turn:
    where = f"{name}: turn {number}"
    if not isinstance(turn, dict):
        raise ValueError(f"{where} must be a table with a prompt and a reply.")
    for key in ("prompt", "reply"):
        if key not in turn:
            raise ValueError(f"{where} is missing {key!r}.")
    for key, value in turn.items():
        if key not in _TURN_KEYS:
            raise ValueError(f"{where} has unknown key {key!r}; allowed: {', '.join(_TURN_KEYS)}.")
        if not isinstance(value, str):
            raise ValueError(f"{where}: {key!r} must be a string.")
    try:
        pattern = re.compile(turn["prompt"], re.IGNORECASE)
    except re.error as error:
        message = f"{where}: prompt {turn['prompt']!r} is not a valid regex: {error}."
        raise ValueError(message) from None
    reasoning, finish_reason = turn.get("reasoning", ""), turn.get("finish_reason", "stop")
    return _Turn(pattern, turn["reply"], reasoning, finish_reason)


def _invalid(body: object) -> str | None:
    """Why the reference service would refuse this body (HTTP 400), or None if it is fine."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model is required and must be a non-empty string."
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list."
    previous = None
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            return f"{where} must be an object with role and content."
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES:
            return f"{where}.role must be one of system, user, assistant, not {role!r}."
        if not isinstance(content, str) or not content:
            return f"{where}.content must be a non-empty string."
        if role == "system" and index:
            return f"{where}: a system message is only allowed as messages[0]."
        if role == previous:
            return f"{where}: user and assistant messages must alternate."
        previous = role
    if previous != "user":
        return "The last message must have role user."
    for name, (ok, span) in _RANGES.items():
        value = body.get(name)
        if value is not None and (not _is_number(value) or not ok(value)):
            return f"{name} must be a number {span}, not {value!r}."
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
        return f"max_tokens must be a positive integer, not {max_tokens!r}."
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        return f"stop must be a string or a list of strings, not {stop!r}."
    if not isinstance(body.get("stream", False), bool):
        return f"stream must be a boolean, not {body['stream']!r}."
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class _Reply:
    """One answer, already cut into chunks, so streaming and non-streaming agree on it."""

    reasoning: list[str]
    content: list[str]
    finish_reason: str
    prompt_tokens: int

    @property
    def usage(self) -> dict[str, int]:
        completion = len(self.reasoning) + len(self.content)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }


def _plan(body: dict[str, Any], turns: list[_Turn], chunk_chars: int | None) -> _Reply:
    """Choose the reply to a valid request, then apply `stop` and `max_tokens` to it."""
    messages = body["messages"]
    prompt = messages[-1]["content"]
    reasoning, finish_reason = "", "stop"
    if repeat := _REPEAT.fullmatch(prompt.strip()):
        text = " ".join([repeat[2]] * int(repeat[1]))
    elif turn := next((t for t in turns if t.prompt.search(prompt)), None):
        text, reasoning, finish_reason = turn.reply, turn.reasoning, turn.finish_reason
    else:
        text = "Echo: " + prompt
    stops = body.get("stop") or []
    hits = [text.find(s) for s in ([stops] if isinstance(stops, str) else stops) if s and s in text]
    if hits:
        text, finish_reason = text[: min(hits)], "stop"
    content = _split(text, chunk_chars)
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and len(content) > max_tokens:
        content, finish_reason = content[:max_tokens], "length"
    prompt_tokens = sum(len(m["content"].split()) for m in messages)
    return _Reply(_split(reasoning, chunk_chars), content, finish_reason, prompt_tokens)


def _split(text: str, chunk_chars: int | None) -> list[str]:
    """Cut text into tokens: a word with its following whitespace, or fixed-size slices."""
    if chunk_chars:
        return [text[i : i + chunk_chars] for i in range(0, len(text), chunk_chars)]
    return _WORD.findall(text) or ([text] if text else [])


class _Completion:
    """Shapes one reply as the service's JSON objects, all sharing one id and timestamp."""

    def __init__(self, number: int, model: str, reply: _Reply, include_usage: bool) -> None:
        self.id = f"chatcmpl-local-{number:06d}"
        self.created = int(time.time())
        self.model = model
        self.reply = reply
        self.include_usage = include_usage

    def message(self) -> dict[str, Any]:
        message = {"role": "assistant", "content": "".join(self.reply.content)}
        if self.reply.reasoning:
            message["reasoning_content"] = "".join(self.reply.reasoning)
        choice = {"index": 0, "message": message, "finish_reason": self.reply.finish_reason}
        return {**self._head("chat.completion"), "choices": [choice], "usage": self.reply.usage}

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
        return b"data: " + _dumps(chunk) + b"\n\n"

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class _Abort(Exception):
    """End the response by closing the socket mid-way: an injected drop, or `stop()`."""


class _ChunkedWriter:
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
                raise _Abort

    def end(self) -> None:
        self.flush()
        self._wfile.write(b"0\r\n\r\n")


class _Handler(BaseHTTPRequestHandler):
    """Answers one connection's requests; the settings and records live on the LocalServer."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small writes (headers, then body, then events) go out now
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the server runs inside notebooks and test runs."""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path.rstrip("/").endswith("/models"):
            owner = self.server.owner
            model = {"id": owner.model, "object": "model", "created": 0, "owned_by": "ipychat"}
            self._send_json(200, {"object": "list", "data": [model]})
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
        fault = owner._record(ReceivedRequest(path, headers, body))
        stream = isinstance(body, dict) and body.get("stream") is True
        try:
            if fault is None or not self._answer_fault(fault, stream):
                self._chat(body, stream, fault)
        except _Abort:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:  # the client went away
            self.close_connection = True

    def _answer_fault(self, fault: Fault, stream: bool) -> bool:
        """Apply the faults that act before the answer; True when they answered already."""
        kind = fault.kind
        if kind == "status":
            status = fault.status or 500
            if isinstance(fault.body, str):
                self._send(status, fault.body.encode(), "text/plain; charset=utf-8", fault.headers)
            else:
                body = _INJECTED_ERROR if fault.body is None else fault.body
                self._send(status, _dumps(body), "application/json", fault.headers)
        elif kind == "html":
            status = fault.status or 502
            title = f"{status} {self.responses.get(status, ('Error',))[0]}"
            page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
            self._send(status, page.encode(), "text/html; charset=utf-8", fault.headers)
        elif kind == "empty":
            content_type = "text/event-stream" if stream else "application/json"
            self._send(200, b"", content_type, fault.headers)
        elif kind == "hang":
            self._wait(fault.seconds or None)
            return False
        elif stream or kind == "no_done":
            return False
        elif kind == "drop":
            raise _Abort
        elif kind == "stall":
            self._wait(fault.seconds)
            return False
        elif kind == "error_event":
            self._send_json(200, _STREAM_ERROR)
        else:
            broken = _TRUNCATED if kind == "truncated_json" else _NOT_JSON
            self._send(200, broken, "application/json")
        return True

    def _chat(self, body: Any, stream: bool, fault: Fault | None) -> None:
        error = _invalid(body)
        if error is not None:
            flat = {"request_id": str(uuid.uuid4()), "latency": 0, "code": "InvalidParameter"}
            self._send_json(400, {**flat, "message": error})
            return
        owner = self.server.owner
        reply = _plan(body, owner._turns, owner.chunk_chars)
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        completion = _Completion(owner._next_number(), body["model"], reply, include_usage)
        if stream:
            self._stream(completion, fault)
            return
        tokens = len(reply.reasoning) + len(reply.content)
        delay = owner.first_token_delay + owner.token_delay * max(tokens - 1, 0)
        if delay > 0:  # a plain answer takes as long as the stream would have
            self._wait(delay)
        self._send_json(200, completion.message())

    def _stream(self, completion: _Completion, fault: Fault | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        if fault is not None and fault.kind == "truncated_json":
            self.send_header("Connection", "close")  # the cut-off event ends the connection too
        self.end_headers()
        owner, reply = self.server.owner, completion.reply
        out = _ChunkedWriter(self.wfile, self.server.stopping)
        out.send(completion.delta({"role": "assistant", "content": ""}))
        steps: list[dict[str, Any] | Fault] = [
            {"reasoning_content": text, "content": None} for text in reply.reasoning
        ]
        steps += [{"content": text} for text in reply.content]
        if fault is not None:
            steps.insert(min(fault.after_chunks, len(steps)), fault)
        delay = owner.first_token_delay
        for step in steps:
            if isinstance(step, Fault):
                if not self._inject(out, step):
                    return
                continue
            out.pause(delay)
            delay = owner.token_delay
            out.send(completion.delta(step))
        no_done = fault is not None and fault.kind == "no_done"
        out.send(completion.delta({}, reply.finish_reason, reply.usage if no_done else None))
        if completion.include_usage and not no_done:
            out.send(completion.usage_event())
        if not no_done:
            out.send(_DONE)
        out.end()

    def _inject(self, out: _ChunkedWriter, fault: Fault) -> bool:
        """Apply a mid-stream fault; False when it ended the stream."""
        if fault.kind == "drop":
            out.flush()
            raise _Abort
        if fault.kind == "stall":
            out.pause(fault.seconds)
        elif fault.kind == "bad_data":
            out.send(b"data: " + _NOT_JSON + b"\n\n")
        elif fault.kind == "error_event":
            out.send(b"data: " + _dumps(_STREAM_ERROR) + b"\n\n" + _DONE)
            out.end()
            return False
        elif fault.kind == "truncated_json":
            out.send(b"data: " + _TRUNCATED + b"\n\n")
            out.end()
            return False
        return True

    def _wait(self, seconds: float | None) -> None:
        if self.server.stopping.wait(seconds):
            raise _Abort

    def _not_found(self, path: str) -> None:
        error = {
            "message": f"No route for {self.command} {path}; try POST /v1/chat/completions.",
            "type": "invalid_request_error",
            "param": None,
            "code": "not_found",
        }
        self._send_json(404, {"error": error})

    def _send_json(self, status: int, body: object) -> None:
        self._send(status, _dumps(body), "application/json")

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class _HTTPServer(ThreadingHTTPServer):
    """Tracks open connections, so `stop()` can end streams and idle keep-alives at once."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: LocalServer) -> None:
        self.owner = owner
        self.stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (Ctrl-C, a dropped stream) is normal here, not worth a trace."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError | OSError):
            super().handle_error(request, client_address)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up (getfqdn), which can stall offline.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class LocalServer:
    """The offline server: deterministic replies, recorded requests and injectable faults.

    `first_token_delay` comes before the first text chunk (reasoning or content) and
    `token_delay` before each later one; a non-streaming answer waits as long in total.
    `token_delay`, `first_token_delay`, `chunk_chars` and `script` may be changed while it runs.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        script: str | Path | list[dict[str, Any]] | None = None,
        token_delay: float = 0.0,
        first_token_delay: float = 0.0,
        chunk_chars: int | None = None,
        model: str = "ipychat-local",
    ) -> None:
        self.host = host
        self.port = port  # the real port once started
        self.script = script
        self.token_delay = token_delay
        self.first_token_delay = first_token_delay
        self.chunk_chars = chunk_chars
        self.model = model
        self.requests: list[ReceivedRequest] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._count = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def script(self) -> str | Path | list[dict[str, Any]] | None:
        return self._script

    @script.setter
    def script(self, script: str | Path | list[dict[str, Any]] | None) -> None:
        self._turns = load_script(script)  # validate before replacing the running script
        self._script = script

    @property
    def url(self) -> str:
        """The root URL, e.g. `http://127.0.0.1:8765`."""
        if not self.port:
            raise RuntimeError("The port is chosen by start(); start the server first.")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, e.g. `http://127.0.0.1:8765/v1`."""
        return self.url + "/v1"

    def start(self) -> LocalServer:
        """Serve in a daemon thread (no-op if running); port 0 picks a free port."""
        if self._httpd is None:
            httpd = _HTTPServer((self.host, self.port), self)
            self.port = httpd.server_address[1]
            self._thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"ipychat-server-{self.port}",
                daemon=True,
            )
            self._httpd = httpd
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop at once, ending streams, hangs and idle connections; safe to call twice."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def push_fault(self, fault: Fault) -> None:
        """Queue a fault; each chat request takes the one at the head until its times run out."""
        with self._lock:
            self._faults.append(replace(fault))

    def clear(self) -> None:
        """Forget recorded requests and queued faults."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()

    def _record(self, request: ReceivedRequest) -> Fault | None:
        """Record a chat request and hand it the fault at the head of the queue, if any."""
        with self._lock:
            self.requests.append(request)
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.times -= 1
            if fault.times == 0:
                self._faults.popleft()
            return fault

    def _next_number(self) -> int:
        with self._lock:
            self._count += 1
            return self._count


def serve(**kwargs: Any) -> LocalServer:
    """Start a `LocalServer(**kwargs)` and return it."""
    return LocalServer(**kwargs).start()
