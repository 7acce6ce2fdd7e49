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

The parts: `_lesson` (scripts), `_server_reply` (checks and reply planning), `_server_wire`
(encoding), `_server_faults` (injected failures), `_server_handler` (the HTTP handler).
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ._lesson import load_script
from ._lesson_write import Recorder
from ._server_budget import Students
from ._server_faults import Fault
from ._server_handler import Handler, ReceivedRequest
from ._server_reply import Reply
from ._server_structured import FORMAT_TYPES
from ._server_upstream import Upstream

__all__ = ["Fault", "LocalServer", "ReceivedRequest", "load_script", "serve"]


class HTTPServer(ThreadingHTTPServer):
    """Tracks open connections, so `stop()` can end streams and idle keep-alives at once.

    A whole class connects at once: the listen backlog holds 1024 waiting connections (with
    the default of 5, 200 students at once waited up to 52 s for a first token while their
    handshakes were retried; elsewhere they are refused); one daemon thread serves each.
    """

    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], owner: LocalServer) -> None:
        self.owner = owner
        self.stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, Handler)

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

    For lessons: `pace` is "recorded" (a recorded turn streams at its recorded timing, other
    replies use the delays above), "fast" (no delays) or a number of tokens a second; `strict`
    refuses a prompt the script does not know instead of echoing it. `upstream` (a base URL,
    with `api_key`) makes the server a pass-through to a real model, and `record` (a file)
    appends each relayed exchange to a lesson script. `students` (a `Students` list) refuses
    requests without a known bearer token or over budget. `log` receives one line per request.

    `response_formats` are the `response_format` types it accepts (others get a 400, to test
    fallbacks). With `max_concurrent`, a request arriving while that many are being answered
    gets 429 with a `Retry-After` of `retry_after` seconds; `max_in_flight` is the most
    answered at once, and each `ReceivedRequest` says how many were in flight when it came.
    `keep_requests=False` keeps no record in `requests` (a classroom server runs for hours).
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
        pace: str | float = "recorded",
        strict: bool = False,
        upstream: str | None = None,
        api_key: str = "",
        record: str | Path | None = None,
        students: Students | None = None,
        log: Callable[[str], None] | None = None,
        response_formats: tuple[str, ...] = FORMAT_TYPES,
        max_concurrent: int | None = None,
        retry_after: float = 1.0,
        keep_requests: bool = True,
    ) -> None:
        self.host = host
        self.port = port  # the real port once started
        self.script = script
        self.token_delay = token_delay
        self.first_token_delay = first_token_delay
        self.chunk_chars = chunk_chars
        self.model = model
        self.pace = _check_pace(pace)
        self.strict = strict
        self.upstream = None if upstream is None else Upstream(upstream, api_key)
        self.recorder = None if record is None else Recorder(record)
        if self.recorder is not None and self.upstream is None:
            raise ValueError("record needs an upstream to record from.")
        self.students = students
        self.log = log
        unknown = set(response_formats) - set(FORMAT_TYPES)
        if unknown:
            raise ValueError(f"Unknown response_format type {sorted(unknown)[0]!r}.")
        self.response_formats = tuple(response_formats)
        self.max_concurrent = max_concurrent
        self.retry_after = retry_after
        self.in_flight = 0
        self.max_in_flight = 0
        self.keep_requests = keep_requests
        self.requests: list[ReceivedRequest] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._count = 0
        self._httpd: HTTPServer | None = None
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

    def delays(self, reply: Reply) -> tuple[float, float]:
        """(before the first chunk, before each later one) for this reply at the server's pace."""
        if self.pace == "fast":
            return 0.0, 0.0
        if isinstance(self.pace, float):
            return 1 / self.pace, 1 / self.pace
        if reply.timing is not None:
            return reply.timing.delays(reply.chunks)
        return self.first_token_delay, self.token_delay

    def start(self) -> LocalServer:
        """Serve in a daemon thread (no-op if running); port 0 picks a free port."""
        if self._httpd is None:
            if self.upstream is not None:
                self.upstream.client()  # its setup (TLS context) is not the first student's wait
            httpd = HTTPServer((self.host, self.port), self)
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
        if self.upstream is not None:
            self.upstream.close()

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
            self.max_in_flight = self.in_flight

    def _record(self, request: ReceivedRequest) -> Fault | None:
        """Record a chat request and hand it the fault at the head of the queue, if any."""
        with self._lock:
            if self.keep_requests:
                self.requests.append(request)
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.times -= 1
            if fault.times == 0:
                self._faults.popleft()
            return fault

    def _enter(self) -> tuple[bool, int]:
        """Count a request in, unless `max_concurrent` are already in; (admitted, in flight)."""
        with self._lock:
            before = self.in_flight
            if self.max_concurrent is not None and before >= self.max_concurrent:
                return False, before
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return True, before

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _next_number(self) -> int:
        with self._lock:
            self._count += 1
            return self._count


def _check_pace(pace: str | float) -> str | float:
    if pace in ("recorded", "fast"):
        return pace
    try:
        rate = float(pace)
    except (TypeError, ValueError):
        rate = 0.0
    if not rate > 0 or rate == float("inf"):
        raise ValueError(f"pace must be 'recorded', 'fast' or tokens a second > 0, not {pace!r}.")
    return rate


def serve(**kwargs: Any) -> LocalServer:
    """Start a `LocalServer(**kwargs)` and return it."""
    return LocalServer(**kwargs).start()
