"""Memory and request building for a long conversation, against a plain list of dicts.

Both hold the very same text objects, so the bytes measured are each structure's overhead per
turn and not the text, which any client must keep. Sending goes through httpx's
`MockTransport`, so the time is ipychat's own work (history, validation, settings, body) and
httpx's request encoding, with no network in it.
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable

import httpx

from ipychat import ChatClient, Conversation, Reply, Settings, Usage

from .common import MODEL, Section, Spread

__all__ = ["run"]

NEXT_PROMPT = "And what follows from that?"
_PROSE = (
    "the model reply stream token chunk notebook kernel widget python data frame value list "
    "request server latency cost display update history message context window answer code "
    "function result error retry budget measure median sample batch cache memory turn"
)
_WORDS = tuple(_PROSE.split())
_REPLY = (
    b'data: {"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


def _text(rng: random.Random) -> str:
    """Prose-like text of 100 to 300 characters."""
    target = rng.randint(100, 300)
    words: list[str] = []
    size = 0
    while size < target:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words).capitalize()[:target].rstrip() + "."


def _replies(turns: int) -> list[Reply]:
    """Replies as a real stream leaves them: text, usage, timings and parameters."""
    rng = random.Random(turns)
    return [
        Reply(
            text=_text(rng),
            finish_reason="stop",
            usage=Usage(40, 60, 100),
            id=f"chatcmpl-{index:06d}",
            model=MODEL,
            created=1_700_000_000 + index,
            time_to_first_token=0.1 + index / 1e6,
            elapsed=1.5 + index / 1e6,
            params={"model": MODEL, "stream": True},
            prompt=_text(rng),
        )
        for index in range(turns)
    ]


def _held(build: Callable[[], object]) -> tuple[object, int]:
    """What `build()` returns and the bytes it allocated that are still alive."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = build()
        gc.collect()
        return result, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def _conversation(replies: list[Reply]) -> Conversation:
    conversation = Conversation()
    for reply in replies:
        conversation.record(reply.prompt, reply)
    return conversation


def _plain(replies: list[Reply]) -> list[dict[str, str]]:
    messages = []
    for reply in replies:
        messages.append({"role": "user", "content": reply.prompt})
        messages.append({"role": "assistant", "content": reply.text})
    return messages


def _median_ms(action: Callable[[], object], calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _mock() -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=_REPLY)

    return httpx.MockTransport(answer)


def _timings(
    conversation: Conversation, plain: list[dict[str, str]], calls: int
) -> dict[str, float]:
    """Median ms of building the messages, and of a whole send over a mock transport."""
    settings = Settings()
    settings.set(base_url="http://bench.invalid/v1", model=MODEL, max_retries=0)
    url = "http://bench.invalid/v1/chat/completions"

    def send_ipychat() -> None:
        conversation.send(NEXT_PROMPT, client=client)
        conversation.undo()

    def send_plain() -> None:
        body = {"model": MODEL, "messages": [*plain, {"role": "user", "content": NEXT_PROMPT}]}
        http.post(url, json={**body, "stream": True}).read()

    with ChatClient(settings, transport=_mock()) as client, httpx.Client(transport=_mock()) as http:
        send_ipychat()  # warm-up
        send_plain()
        return {
            "build_ipychat_ms": _median_ms(lambda: conversation.build_messages(NEXT_PROMPT), calls),
            "build_plain_ms": _median_ms(
                lambda: [*plain, {"role": "user", "content": NEXT_PROMPT}], calls
            ),
            "send_ipychat_ms": _median_ms(send_ipychat, calls),
            "send_plain_ms": _median_ms(send_plain, calls),
        }


def run(turns: int, repeat: int, calls: int) -> Section:
    """Hold `turns` exchanges, then time `calls` request builds in each of `repeat` runs."""
    replies = _replies(turns)
    conversation, held_ipychat = _held(lambda: _conversation(replies))
    plain, held_plain = _held(lambda: _plain(replies))
    assert isinstance(conversation, Conversation) and isinstance(plain, list)
    text_bytes = sum(sys.getsizeof(r.prompt) + sys.getsizeof(r.text) for r in replies)
    runs = [_timings(conversation, plain, calls) for _ in range(repeat)]
    spreads = {key: Spread.of([run[key] for run in runs]) for key in runs[0]}
    body_kb = len(httpx.Request("POST", "http://x", json={"messages": plain}).content) / 1024
    rows = [
        [
            "ipychat `Conversation` (messages with reply metadata)",
            f"{held_ipychat / turns:,.0f}",
            spreads["build_ipychat_ms"].format(unit=" ms"),
            spreads["send_ipychat_ms"].format(unit=" ms"),
        ],
        [
            "plain list of dicts + bare httpx post (baseline)",
            f"{held_plain / turns:,.0f}",
            spreads["build_plain_ms"].format(unit=" ms"),
            spreads["send_plain_ms"].format(unit=" ms"),
        ],
    ]
    return Section(
        key="memory",
        title=f"5. Memory: a {turns:,}-turn conversation held and re-sent ({repeat} runs)",
        method=(
            f"Bytes held per turn (a user message and its reply) measured with `tracemalloc`, "
            f"not counting the text itself ({text_bytes / turns:,.0f} bytes per turn here, "
            f"{body_kb:,.0f} KiB of JSON per request). Build: the message list for the next "
            "prompt. Send: the whole request through `MockTransport` (history, validation, "
            f"JSON body, a tiny streamed answer); medians of {calls} calls per run."
        ),
        header=["holder", "bytes held per turn", "build messages", "send (mock transport)"],
        rows=rows,
        data={
            "turns": turns,
            "repeat": repeat,
            "bytes_per_turn": {"ipychat": held_ipychat / turns, "plain": held_plain / turns},
            "text_bytes_per_turn": text_bytes / turns,
            "body_kib": body_kb,
            **{key: spread.to_json() for key, spread in spreads.items()},
        },
    )
