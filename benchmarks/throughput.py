"""Streaming throughput: ipychat's loop against a bare httpx loop (the floor) and the openai SDK.

All clients read the same stream (same body, `stream_options.include_usage` as ipychat sends
it) from one server process on the other core, in rotating order so that drift in the machine
spreads over all of them. The server is usually the slower side, so wall-clock chunks/s is
bounded by it for every client; the client's own CPU seconds are what tells the loops apart,
and the goals are judged on them.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from typing import Any, Protocol

import httpx

from ipychat import ChatClient, Settings

from .common import (
    API_KEY,
    HEADERS,
    MODEL,
    Goal,
    Section,
    ServerProcess,
    Spread,
    Stopwatch,
    stream_body,
    user_message,
)

__all__ = ["run"]

CPU_GOAL = 1.1  # ipychat's CPU seconds at most this many times the bare loop's (issue 14)


class Reader(Protocol):
    """One client: reads a whole stream and returns how many content chunks it saw."""

    name: str
    label: str

    def read(self, messages: list[dict[str, str]]) -> int | None: ...

    def close(self) -> None: ...


class RawBytes:
    """Reads the body without parsing: the server and transport alone, for reference."""

    name = "raw"
    label = "httpx raw bytes (server + transport, no parsing)"

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client()
        self.url = base_url + "/chat/completions"

    def read(self, messages: list[dict[str, str]]) -> int | None:
        """None: it does not parse, so it cannot count chunks."""
        with self.http.stream("POST", self.url, json=stream_body(messages), headers=HEADERS) as r:
            for _ in r.iter_raw():
                pass
        return None

    def close(self) -> None:
        self.http.close()


class BareLoop:
    """The floor: split lines, strip `data: `, parse JSON, take `choices[0].delta.content`."""

    name = "bare"
    label = "bare httpx loop (floor)"

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client()
        self.url = base_url + "/chat/completions"

    def read(self, messages: list[dict[str, str]]) -> int:
        count = 0
        with self.http.stream("POST", self.url, json=stream_body(messages), headers=HEADERS) as r:
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    continue  # read on to the body's end: the connection goes back to the pool
                choices = json.loads(data)["choices"]
                if choices and choices[0]["delta"].get("content"):
                    count += 1
        return count

    def close(self) -> None:
        self.http.close()


class IpychatLoop:
    """ipychat's streaming loop: `ChatClient.stream()` iterated for deltas."""

    name = "ipychat"
    label = "ipychat ChatClient.stream()"

    def __init__(self, base_url: str) -> None:
        settings = Settings()  # no config file or environment: the same request every run
        settings.set(base_url=base_url, model=MODEL, api_key=API_KEY, max_retries=0)
        self.client = ChatClient(settings)

    def read(self, messages: list[dict[str, str]]) -> int:
        count = 0
        with self.client.stream(messages) as stream:
            for delta in stream:
                if delta.content:
                    count += 1
        return count

    def close(self) -> None:
        self.client.close()


class OpenAILoop:
    """The official SDK's streaming loop (a benchmark-only dependency)."""

    name = "openai"
    label = "openai SDK chat.completions.create(stream=True)"

    def __init__(self, base_url: str) -> None:
        from openai import OpenAI

        self.client = OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)

    def read(self, messages: list[dict[str, str]]) -> int:
        count = 0
        stream = self.client.chat.completions.create(
            model=MODEL,
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        with stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    count += 1
        return count

    def close(self) -> None:
        self.client.close()


def _readers(base_url: str, notes: list[str]) -> list[Reader]:
    factories: list[Callable[[str], Reader]] = [RawBytes, BareLoop, IpychatLoop]
    try:
        import openai  # noqa: F401
    except ImportError:
        notes.append("The openai SDK is not installed (`pip install -e '.[bench]'`): skipped.")
    else:
        factories.append(OpenAILoop)
    return [factory(base_url) for factory in factories]


def _measure(readers: list[Reader], chunks: int, repeat: int) -> dict[str, dict[str, list[Any]]]:
    """Each reader reads the stream `repeat` times, in an order that rotates every round."""
    messages = user_message(f"/repeat {chunks} tok")
    for reader in readers:  # warm-up: connections, imports and caches
        reader.read(messages)
    samples: dict[str, dict[str, list[Any]]] = {
        reader.name: {"chunks": [], "wall_s": [], "cpu_s": []} for reader in readers
    }
    for round_ in range(repeat):
        shift = round_ % len(readers)
        for reader in readers[shift:] + readers[:shift]:
            gc.collect()
            with Stopwatch() as watch:
                count = reader.read(messages)
            samples[reader.name]["chunks"].append(count)
            samples[reader.name]["wall_s"].append(watch.wall)
            samples[reader.name]["cpu_s"].append(watch.cpu)
    return samples


def _ratios(samples: dict[str, dict[str, list[Any]]], name: str, key: str) -> Spread:
    """Per-round ratio against the bare loop: rounds share the machine's state of the moment."""
    pairs = zip(samples[name][key], samples["bare"][key], strict=True)
    return Spread.of([mine / floor for mine, floor in pairs])


def _row(reader: Reader, samples: dict[str, list[Any]], chunks: int, vs_bare: str) -> list[str]:
    wall, cpu = Spread.of(samples["wall_s"]), Spread.of(samples["cpu_s"])
    per_wall = Spread.of([chunks / s for s in samples["wall_s"]])
    per_cpu = Spread.of([chunks / s for s in samples["cpu_s"]])
    return [
        reader.label,
        per_wall.format(),
        wall.format(scale=1000, unit=" ms"),
        cpu.format(scale=1000, unit=" ms"),
        per_cpu.format(),
        vs_bare,
    ]


def run(chunks: int, repeat: int) -> Section:
    """Stream `chunks` one-word chunks `repeat` times through each client."""
    notes: list[str] = []
    with ServerProcess() as base_url:
        readers = _readers(base_url, notes)
        try:
            samples = _measure(readers, chunks, repeat)
        finally:
            for reader in readers:
                reader.close()
    summary: dict[str, Any] = {}
    rows = []
    for reader in readers:
        mine = samples[reader.name]
        vs_bare = ""
        if reader.name not in ("bare", "raw"):
            cpu_ratio = _ratios(samples, reader.name, "cpu_s")
            wall_ratio = _ratios(samples, reader.name, "wall_s")
            summary[reader.name] = {"cpu_vs_bare": cpu_ratio.to_json()}
            summary[reader.name]["wall_vs_bare"] = wall_ratio.to_json()
            vs_bare = f"{cpu_ratio.format()}x CPU, {wall_ratio.format()}x wall"
        rows.append(_row(reader, mine, chunks, vs_bare))
    goals = _goals(samples)
    return Section(
        key="throughput",
        title=f"1. Streaming throughput ({chunks:,} chunks, {repeat} runs)",
        method=(
            "One stream of `/repeat N tok` (N one-word chunks, sent as fast as the server can) "
            "per client and run, from the bundled server in its own process. CPU seconds are "
            "the client process's `time.process_time()`; chunks per CPU second is the rate the "
            "client could sustain if the server were infinitely fast. The raw-bytes row shows "
            "how fast the server sends: wall-clock rates of clients faster than that are "
            "bounded by it, which is why the goals are judged on client CPU."
        ),
        header=[
            "client",
            "chunks/s (wall)",
            "wall",
            "client CPU",
            "chunks per CPU s",
            "vs bare loop",
        ],
        rows=rows,
        goals=goals,
        data={"chunks_requested": chunks, "repeat": repeat, "samples": samples, **summary},
        notes=notes,
    )


def _goals(samples: dict[str, dict[str, list[Any]]]) -> list[Goal]:
    ratio = _ratios(samples, "ipychat", "cpu_s")
    goals = [
        Goal(
            f"ipychat's loop costs at most {CPU_GOAL}x the bare loop's CPU",
            f"{ratio.median:.2f}x (range {ratio.min:.2f}–{ratio.max:.2f})",
            ratio.median <= CPU_GOAL,
        )
    ]
    if "openai" in samples:
        mine = Spread.of(samples["ipychat"]["cpu_s"]).median
        sdk = Spread.of(samples["openai"]["cpu_s"]).median
        goals.append(
            Goal(
                "ipychat is faster than the openai SDK (CPU s)",
                f"{mine:.3g} s vs {sdk:.3g} s: SDK takes {sdk / mine:.1f}x as long",
                mine < sdk,
            )
        )
    return goals
