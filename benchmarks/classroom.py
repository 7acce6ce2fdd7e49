"""A whole class on one bundled server: N students streaming at once, loopback only.

    python benchmarks/classroom.py [--students 200] [--rate 20] [--tokens 100] [--json out.json]

The server runs in its own process (`common.ServerProcess`) at `--rate` tokens a second per
stream. Every student connects at the same moment (the listen backlog is what this tests),
sends one streamed request and reads it to the end. Counted: completed streams, refused
connections, errors (a status other than 200, a stream without `[DONE]`, missing tokens).
Measured: time to first token (p50/p95/p99/max) from the moment the request was sent, as a
client measures it (a connection waiting in the listen backlog counts, since the server answers
only once it accepts it), and also from the moment the student started to connect (which here
adds the one client process opening 200 connections in turn); each stream's token rate; the
server's CPU seconds. The client is asyncio on raw sockets, so that 200 streams cost
it little and the numbers are the server's. Bounded: one request per student, 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import ServerProcess

__all__ = ["Result", "run"]

_TOKEN = b'{"content":'  # each content chunk's delta starts so; the role chunk's does not
_DONE = b"data: [DONE]"


@dataclass
class Result:
    """Counts and percentiles for one class-sized run."""

    students: int
    rate: float
    tokens: int
    completed: int = 0
    refused: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    ttft: list[float] = field(default_factory=list)
    ttft_from_connect: list[float] = field(default_factory=list)
    stream_rates: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        ttft, from_connect = sorted(self.ttft), sorted(self.ttft_from_connect)
        rates = sorted(self.stream_rates)
        return {
            "students": self.students,
            "rate_per_stream": self.rate,
            "tokens_per_stream": self.tokens,
            "completed": self.completed,
            "refused": self.refused,
            "errors": self.errors,
            "error_kinds": self.error_kinds,
            "ttft_s": {
                "p50": _pct(ttft, 50),
                "p95": _pct(ttft, 95),
                "p99": _pct(ttft, 99),
                "max": round(ttft[-1], 4) if ttft else None,
            },
            "ttft_from_connect_s": {
                "p50": _pct(from_connect, 50),
                "p99": _pct(from_connect, 99),
                "max": round(from_connect[-1], 4) if from_connect else None,
            },
            "stream_tokens_per_s": {
                "min": rates[0] if rates else None,
                "p50": _pct(rates, 50),
            },
            "events_per_s": round(self.completed * self.tokens / self.wall_s, 1)
            if self.wall_s
            else 0,
            "wall_s": round(self.wall_s, 2),
            "server_cpu_s": round(self.server_cpu_s, 2),
            "client_cpu_s": round(self.client_cpu_s, 2),
        }


def _pct(values: list[float], percent: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 4)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(percent) - 1], 4)


async def _student(
    port: int, body: bytes, expected: int, result: Result, go: asyncio.Event
) -> None:
    await go.wait()
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        result.refused += 1
        return
    except OSError as error:
        _fail(result, type(error).__name__)
        return
    first = last = None
    tokens, tail = 0, b""
    try:
        writer.write(body)
        await writer.drain()
        sent = time.perf_counter()
        status = await reader.readline()
        if b" 200 " not in status:
            _fail(result, status.decode(errors="replace").strip() or "no status")
            return
        while data := await reader.read(65536):
            seen = (tail + data).count(_TOKEN) - tail.count(_TOKEN)
            if seen:
                now = time.perf_counter()
                first = first or now
                last = now
                tokens += seen
            tail = (tail + data)[-64:]
            if _DONE in tail and tail.endswith(b"0\r\n\r\n"):
                break
    except OSError as error:
        _fail(result, type(error).__name__)
        return
    finally:
        writer.close()
    if tokens != expected or _DONE not in tail:
        _fail(result, f"{tokens} of {expected} tokens" + ("" if _DONE in tail else ", no [DONE]"))
        return
    result.completed += 1
    assert first is not None and last is not None
    result.ttft.append(first - sent)
    result.ttft_from_connect.append(first - started)
    if tokens > 1 and last > first:
        result.stream_rates.append((tokens - 1) / (last - first))


def _fail(result: Result, kind: str) -> None:
    result.errors += 1
    result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _class(port: int, students: int, tokens: int, result: Result) -> None:
    payload = json.dumps(
        {
            "model": "ipychat-local",
            "messages": [{"role": "user", "content": f"/repeat {tokens} word"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nAuthorization: Bearer sk-class\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)
    )
    go = asyncio.Event()
    tasks = [
        asyncio.create_task(_student(port, request, tokens, result, go)) for _ in range(students)
    ]
    await asyncio.sleep(0.05)  # every task waits at the gate: then all connect at once
    go.set()
    await asyncio.gather(*tasks)


def run(students: int = 200, rate: float = 20.0, tokens: int = 100) -> Result:
    """One class: `students` simultaneous streams of `tokens` tokens at `rate` tokens a second."""
    result = Result(students, rate, tokens)
    delay = 1 / rate
    with ServerProcess(token_delay=delay, first_token_delay=delay) as base_url:
        port = int(base_url.rsplit(":", 1)[1].split("/")[0])
        pid = _server_pid(port)
        cpu = _cpu_seconds(pid) if pid else 0.0
        client_cpu = time.process_time()
        started = time.perf_counter()
        asyncio.run(_class(port, students, tokens, result))
        result.wall_s = time.perf_counter() - started
        result.client_cpu_s = time.process_time() - client_cpu
        result.server_cpu_s = (_cpu_seconds(pid) - cpu) if pid else float("nan")
    return result


def _server_pid(port: int) -> int | None:
    """The pid listening on `port` (the ServerProcess child), from /proc; None if unknown."""
    wanted = f":{port:04X} "
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as lines:
                for line in list(lines)[1:]:
                    parts = line.split()
                    if (parts[1] + " ").endswith(wanted) and parts[3] == "0A":  # LISTEN
                        inodes.add(parts[9])
        except OSError:
            continue
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(pid)
        except OSError:
            continue
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="tokens a second per stream")
    parser.add_argument("--tokens", type=int, default=100, help="tokens per reply")
    parser.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    args = parser.parse_args(argv)
    summary = run(args.students, args.rate, args.tokens).summary()
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    return 0 if summary["refused"] == 0 and summary["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
