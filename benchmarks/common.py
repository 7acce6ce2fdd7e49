"""What every benchmark shares: the server process, a stopwatch, spreads, goals and sections."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

__all__ = [
    "API_KEY",
    "HEADERS",
    "MODEL",
    "CountingTransport",
    "Goal",
    "Section",
    "ServerProcess",
    "Spread",
    "Stopwatch",
    "machine",
    "stream_body",
    "user_message",
]

MODEL = "ipychat-local"
# Every client sends a key, as against a real service (ipychat redacts it from what it reads);
# the bundled server ignores it.
API_KEY = "sk-bench-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {API_KEY}"}

# Run in the child: the server stops when stdin closes, which also happens when the parent dies,
# so an interrupted benchmark never leaves a server behind.
_SERVER_CHILD = """
import json, sys
from ipychat._server import LocalServer
server = LocalServer(**json.loads(sys.argv[1])).start()
print(server.base_url, flush=True)
sys.stdin.read()
server.stop()
"""


class ServerProcess:
    """The bundled server in a process of its own.

    In-process, the server's thread would take the GIL from the client loop being measured and
    charge its own CPU time to the client; in its own process it runs on the other core.

    >>> with ServerProcess(token_delay=0.001) as base_url:
    ...     ...
    """

    def __init__(self, **options: Any) -> None:
        self.options = options
        self._process: subprocess.Popen[str] | None = None
        # Its stderr goes to a file: socketserver prints a traceback for every connection a
        # client resets, which would bury the report (CountingTransport counts those instead).
        self._log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> str:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SERVER_CHILD, json.dumps(self.options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self._process.stdout is not None
        base_url = self._process.stdout.readline().strip()
        if not base_url.startswith("http"):
            log = self.log()
            self.__exit__(None, None, None)
            raise RuntimeError(f"The bundled server did not start: {log[-2000:]}")
        return base_url

    def log(self) -> str:
        """What the server wrote to stderr so far."""
        self._log.seek(0)
        return self._log.read()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        self._log.close()


class CountingTransport(httpx.BaseTransport):
    """httpx's default transport, counting the connections it opens (by local address).

    A client that throws its connection away after each streamed reply pays a new TCP (and,
    against a real service, TLS) handshake in the time to first token of the next request.
    """

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self._seen: set[object] = set()

    @property
    def connections(self) -> int:
        return len(self._seen)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        stream = response.extensions.get("network_stream")
        if stream is not None:
            self._seen.add(stream.get_extra_info("client_addr"))
        return response

    def close(self) -> None:
        self._inner.close()


class Stopwatch:
    """Wall and CPU seconds of a block; CPU is this process's, all threads included."""

    wall: float = 0.0
    cpu: float = 0.0

    def __enter__(self) -> Stopwatch:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


@dataclass(frozen=True)
class Spread:
    """Median, min and max of repeated samples: the median is the result, min-max its noise."""

    median: float
    min: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Spread:
        if not samples:
            raise ValueError("A spread needs at least one sample.")
        return cls(statistics.median(samples), min(samples), max(samples))

    def format(self, digits: int = 3, scale: float = 1.0, unit: str = "") -> str:
        """`1.23 (1.10–1.40)`: the median, then the range, each with `digits` significant."""

        def show(value: float) -> str:
            value *= scale
            if abs(value) >= 10**digits:  # 36,512 reads better than 3.65e+04
                return f"{value:,.0f}{unit}"
            return f"{value:.{digits}g}{unit}"

        return f"{show(self.median)} ({show(self.min)}–{show(self.max)})"

    def to_json(self) -> dict[str, float]:
        return {"median": self.median, "min": self.min, "max": self.max}


@dataclass(frozen=True)
class Goal:
    """One goal from the issue and how this run did; informational, never an assertion."""

    text: str
    measured: str
    passed: bool

    def to_json(self) -> dict[str, Any]:
        return {"goal": self.text, "measured": self.measured, "passed": self.passed}


@dataclass
class Section:
    """One benchmark's results: a table for people, raw samples for `--json`."""

    key: str
    title: str
    method: str
    header: list[str]
    rows: list[list[str]]
    goals: list[Goal] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**self.data, "goals": [goal.to_json() for goal in self.goals]}


def user_message(text: str) -> list[dict[str, str]]:
    """A one-message conversation, as every client here sends it."""
    return [{"role": "user", "content": text}]


def stream_body(messages: list[dict[str, str]]) -> dict[str, Any]:
    """The body ipychat sends by default, so the server sends every client the same bytes."""
    return {
        "model": MODEL,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _source() -> str:
    """The commit measured, and whether ipychat/ had uncommitted changes on top of it."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown (not a git checkout)"
    dirty = git("status", "--porcelain", "--", "ipychat")
    return commit + (" with uncommitted changes to ipychat/" if dirty else "")


def machine() -> dict[str, Any]:
    """Where the numbers came from: they only compare within one machine and one run.

    The load average says how busy the machine was with other work; a high one widens the
    ranges, wall times most.
    """
    packages = ("ipychat", "httpx", "openai", "ipykernel", "jupyter_client", "ipywidgets")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    return {
        "source": _source(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "usable_cores": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": {name: _version(name) for name in ("ipython", *packages)},
    }
