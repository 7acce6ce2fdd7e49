"""Time to first token that ipychat adds over a bare httpx request to the same server.

The server answers at once (`first_token_delay=0`), so what is left is each client's own work
before and around the first chunk: settings, body, headers, connection pool, parsing. Every
request is fresh but reuses its client's connection (as in a notebook session), the replies are
read to the end so connections go back to the pool, and the clients take turns request by
request so drift in the machine hits them alike.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

import httpx

from ipychat import ChatClient, Conversation, Settings

from .common import (
    API_KEY,
    HEADERS,
    MODEL,
    CountingTransport,
    Goal,
    Section,
    ServerProcess,
    Spread,
    stream_body,
    user_message,
)

__all__ = ["run"]

ADDED_GOAL_MS = 2.0
PROMPT = "/repeat 20 tok"  # a short reply: the first token is what counts


def _bare(http: httpx.Client, url: str) -> Callable[[], float]:
    def first_token() -> float:
        start = time.perf_counter()
        first = 0.0
        body = stream_body(user_message(PROMPT))
        with http.stream("POST", url, json=body, headers=HEADERS) as response:
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    continue  # read on to the body's end: the connection goes back to the pool
                choices = json.loads(data)["choices"]
                if not first and choices and choices[0]["delta"].get("content"):
                    first = time.perf_counter() - start
        return first

    return first_token


def _client(client: ChatClient) -> Callable[[], float]:
    def first_token() -> float:
        start = time.perf_counter()
        first = 0.0
        with client.stream(user_message(PROMPT)) as stream:
            for delta in stream:
                if not first and delta.content:
                    first = time.perf_counter() - start
        return first

    return first_token


def _conversation(client: ChatClient) -> Callable[[], float]:
    """What `%%chat` does under its display: history, validation, then the stream."""
    conversation = Conversation()

    def first_token() -> float:
        start = time.perf_counter()
        first = 0.0

        def on_delta(delta: object) -> None:
            nonlocal first
            if not first:
                first = time.perf_counter() - start

        conversation.send(PROMPT, client=client, history=False, on_delta=on_delta)
        return first

    return first_token


LABELS = {
    "bare": "bare httpx request (floor)",
    "ipychat": "ipychat ChatClient.stream()",
    "conversation": "ipychat Conversation.send() (under %%chat)",
}


def _one_run(clients: dict[str, Callable[[], float]], requests: int) -> dict[str, float]:
    """Median first-token time of each client over `requests` interleaved requests."""
    names = list(clients)
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(requests):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(clients[name]())
    return {name: statistics.median(values) for name, values in times.items()}


def run(requests: int, repeat: int) -> Section:
    """`repeat` runs of `requests` requests per client; each run gives one median per client."""
    settings = Settings()
    bare_pool, ipychat_pool = CountingTransport(), CountingTransport()
    with ServerProcess(first_token_delay=0.0) as base_url:
        settings.set(base_url=base_url, model=MODEL, api_key=API_KEY, max_retries=0)
        with (
            httpx.Client(transport=bare_pool) as http,
            ChatClient(settings, transport=ipychat_pool) as client,
        ):
            clients = {
                "bare": _bare(http, base_url + "/chat/completions"),
                "ipychat": _client(client),
                "conversation": _conversation(client),
            }
            _one_run(clients, 3)  # warm-up: connections and first-use imports
            runs = [_one_run(clients, requests) for _ in range(repeat)]
    medians = {name: [run[name] for run in runs] for name in clients}
    added = {
        name: [run[name] - run["bare"] for run in runs] for name in ("ipychat", "conversation")
    }
    sent = (requests * repeat + 3) * len(clients)
    connections = {"bare": bare_pool.connections, "ipychat": ipychat_pool.connections}
    rows = []
    for name, label in LABELS.items():
        extra = Spread.of(added[name]).format(scale=1000, unit=" ms") if name in added else ""
        rows.append([label, Spread.of(medians[name]).format(scale=1000, unit=" ms"), extra])
    rows.append(
        [
            "TCP connections opened",
            f"bare: {connections['bare']} for {sent // len(clients)} requests",
            f"ipychat: {connections['ipychat']} for {sent // len(clients) * 2} requests",
        ]
    )
    ipychat_added = Spread.of(added["ipychat"])
    goals = [
        Goal(
            f"ipychat adds under {ADDED_GOAL_MS:g} ms to the time to first token (median)",
            f"{ipychat_added.median * 1000:+.2f} ms",
            ipychat_added.median * 1000 < ADDED_GOAL_MS,
        )
    ]
    return Section(
        key="ttft",
        title=f"4. Time to first token ({requests} requests per client, {repeat} runs)",
        method=(
            "Time from starting a request to the first content delta, with a server that "
            "answers at once. Each run takes the median over its requests; the added time is "
            "the client's median minus the bare request's median in the same run."
        ),
        header=["client", "time to first token", "added over bare"],
        rows=rows,
        goals=goals,
        data={
            "requests": requests,
            "repeat": repeat,
            "median_s": medians,
            "added_s": {name: Spread.of(values).to_json() for name, values in added.items()},
            "connections": connections,
            "requests_per_client": sent // len(clients),
        },
    )
