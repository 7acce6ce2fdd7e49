"""The bundled offline server: the contract it mimics, its scripts and limits, its validation."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ipychat._server import Fault, LocalServer, load_script, serve

from .conftest import ROOT, SYSTEM, USER, ask, chat, chunks_of, content_of, data_of, stream_lines

# The contract: shapes and text


def test_echo_reply_has_the_reference_sample_shape(client: httpx.Client) -> None:
    response = client.post("/chat/completions", json=chat())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    reply = response.json()
    assert set(reply) == {"id", "object", "created", "model", "choices", "usage"}
    assert reply["object"] == "chat.completion"
    assert reply["model"] == "ops-qwen-turbo"
    assert isinstance(reply["created"], int) and reply["created"] > 1_700_000_000
    assert reply["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Echo: " + USER["content"]},
            "finish_reason": "stop",
        }
    ]
    # 5 + 5 words in; "Echo:" plus 5 words out.
    assert reply["usage"] == {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16}


def test_stream_concatenates_to_the_plain_reply(client: httpx.Client) -> None:
    plain = client.post("/chat/completions", json=chat()).json()
    lines = stream_lines(client, chat())
    assert data_of(lines)[-1] == "[DONE]"
    chunks = chunks_of(lines)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert all("usage" not in c for c in chunks)  # only with include_usage
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]] == [
        "Echo: ",
        "Recommend ",
        "1 ",
        "science ",
        "fiction ",
        "book",
    ]
    assert chunks[-1]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert content_of(chunks) == plain["choices"][0]["message"]["content"]


def test_usage_chunk_comes_last_only_with_include_usage(client: httpx.Client) -> None:
    usage = client.post("/chat/completions", json=chat()).json()["usage"]
    lines = stream_lines(client, chat(stream_options={"include_usage": True}))
    chunks = chunks_of(lines)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage
    assert all(c["usage"] is None for c in chunks[:-1])
    assert data_of(lines)[-1] == "[DONE]"
    without = chunks_of(stream_lines(client, chat(stream_options={"include_usage": False})))
    assert all(c["choices"] for c in without)


def test_reference_path_and_models(server: LocalServer, client: httpx.Client) -> None:
    url = server.url + "/compatible-mode/v1/chat/completions"
    reply = client.post(url, json=chat()).json()
    assert reply["choices"][0]["message"]["content"].startswith("Echo: ")
    assert server.requests[0].path == "/compatible-mode/v1/chat/completions"
    models = client.get("/models").json()
    assert models["data"][0]["id"] == "ipychat-local"
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/nothing"), ("POST", "/v1/completions")])
def test_unknown_paths_get_an_openai_shaped_404(
    server: LocalServer, method: str, path: str
) -> None:
    response = httpx.request(method, server.url + path, json=chat(), timeout=5)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert server.requests == []


def test_requests_are_recorded_with_headers_and_cleared(
    server: LocalServer, client: httpx.Client
) -> None:
    client.post("/chat/completions", json=chat(), headers={"Authorization": "Bearer sk-test"})
    client.post("/chat/completions", content=b"not json")
    first, second = server.requests
    assert first.path == "/v1/chat/completions"
    assert first.headers["authorization"] == "Bearer sk-test"
    assert first.body == chat()
    assert second.body is None
    server.push_fault(Fault("status"))
    server.clear()
    assert server.requests == []
    assert client.post("/chat/completions", json=chat()).status_code == 200


# Replies: scripts, reasoning, /repeat, limits


def test_script_first_match_wins_and_falls_back_to_echo(
    client: httpx.Client, server: LocalServer
) -> None:
    server.script = [
        {"prompt": "weather", "reply": "Sunny."},
        {"prompt": "^what", "reply": "A question."},
    ]

    def reply_to(text: str) -> str:
        return client.post("/chat/completions", json=ask(text)).json()["choices"][0]["message"][
            "content"
        ]

    assert reply_to("What is the WEATHER like?") == "Sunny."
    assert reply_to("what now") == "A question."
    assert reply_to("so what") == "Echo: so what"
    server.script = None
    assert reply_to("what now") == "Echo: what now"


def test_script_file_with_reasoning_streams_it_first(tmp_path: Path) -> None:
    script = tmp_path / "lesson.toml"
    script.write_text(
        "[[turn]]\nprompt = '\\bthink\\b'\nreasoning = \"Let me see.\"\n"
        'reply = "Forty two."\nfinish_reason = "content_filter"\n',
        encoding="utf-8",
    )
    with (
        serve(script=script) as server,
        httpx.Client(base_url=server.base_url, timeout=5) as client,
    ):
        plain = client.post("/chat/completions", json=ask("Think hard")).json()
        chunks = chunks_of(stream_lines(client, ask("Think hard")))
    assert plain["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Forty two.",
        "reasoning_content": "Let me see.",
    }
    assert plain["choices"][0]["finish_reason"] == "content_filter"
    deltas = [c["choices"][0]["delta"] for c in chunks[1:-1]]
    assert deltas == [
        {"reasoning_content": "Let ", "content": None},
        {"reasoning_content": "me ", "content": None},
        {"reasoning_content": "see.", "content": None},
        {"content": "Forty "},
        {"content": "two."},
    ]
    assert plain["usage"]["completion_tokens"] == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[turn]]\nprompt = "a"\nreply = "b"\n[[turn]]\nprompt = "("\nreply = "x"\n', "turn 2"),
        ('[[turn]]\nprompt = "a"\n', "missing 'reply'"),
        ('[[turn]]\nprompt = "a"\nreplay = "b"\nreply = "c"\n', "unknown key 'replay'"),
        ('[[turn]]\nprompt = "a"\nreply = 3\n', "'reply' must be a string"),
        ('[[turn]\nprompt = "a"\n', "not valid TOML"),
        ('title = "x"\n', "unknown top-level key 'title'"),
    ],
)
def test_bad_scripts_are_refused_with_file_and_turn(
    tmp_path: Path, text: str, message: str
) -> None:
    script = tmp_path / "bad.toml"
    script.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.toml") as raised:
        LocalServer(script=script)
    assert message in str(raised.value)


def test_a_bad_script_set_at_run_time_keeps_the_old_one(server: LocalServer) -> None:
    server.script = [{"prompt": "x", "reply": "y"}]
    with pytest.raises(ValueError, match=r"<script>: turn 1: prompt '\[' is not a valid regex"):
        server.script = [{"prompt": "[", "reply": "y"}]
    assert server.script == [{"prompt": "x", "reply": "y"}]


def test_bundled_intro_lesson_is_valid_and_teaches() -> None:
    turns = load_script(ROOT / "ipychat" / "lessons" / "intro.toml")
    assert 4 <= len(turns) <= 6
    replies = " ".join(turn.reply for turn in turns)
    assert "```python\n" in replies and "```json\n" in replies
    assert any(turn.reasoning for turn in turns)
    assert turns[0].prompt.search("Hi there") and not turns[0].prompt.search("this")


def test_max_tokens_cuts_with_length(client: httpx.Client) -> None:
    plain = client.post("/chat/completions", json=chat(max_tokens=2)).json()
    assert plain["choices"][0]["message"]["content"] == "Echo: Recommend "
    assert plain["choices"][0]["finish_reason"] == "length"
    assert plain["usage"]["completion_tokens"] == 2
    chunks = chunks_of(stream_lines(client, chat(max_tokens=2)))
    assert content_of(chunks) == "Echo: Recommend "
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    untouched = client.post("/chat/completions", json=chat(max_tokens=6)).json()
    assert untouched["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("stop", "expected"), [("science", "Echo: Recommend 1 "), (["book", "1"], "Echo: Recommend ")]
)
def test_stop_sequences_cut_before_the_first(
    client: httpx.Client, stop: Any, expected: str
) -> None:
    plain = client.post("/chat/completions", json=chat(stop=stop)).json()
    assert plain["choices"][0]["message"]["content"] == expected
    assert plain["choices"][0]["finish_reason"] == "stop"
    assert content_of(chunks_of(stream_lines(client, chat(stop=stop)))) == expected


def test_chunk_chars_can_change_at_run_time(server: LocalServer, client: httpx.Client) -> None:
    server.chunk_chars = 4
    chunks = chunks_of(stream_lines(client, ask("abcdefghij")))
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]] == [
        "Echo",
        ": ab",
        "cdef",
        "ghij",
    ]


def test_repeat_streams_one_word_per_chunk(client: httpx.Client) -> None:
    chunks = chunks_of(stream_lines(client, ask("/repeat 5 hey")))
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]] == ["hey "] * 4 + ["hey"]


def http_chunks(server: LocalServer, body: dict[str, Any]) -> list[bytes]:
    """POST over a bare socket and return the HTTP chunks of the answer as the server wrote them."""
    payload = json.dumps(body).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(head.encode() + payload)
        raw = b"".join(iter(lambda: sock.recv(1 << 16), b""))
    headers, _, rest = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in headers.lower()
    chunks = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return chunks
        chunks.append(rest[:size])
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]


def test_a_fast_long_stream_is_written_in_batches(server: LocalServer) -> None:
    body = ask("/repeat 20000 x", stream=True, stream_options={"include_usage": True})
    started = time.perf_counter()
    written = http_chunks(server, body)
    assert time.perf_counter() - started < 5  # about 0.3 s on an idle machine
    assert len(written) < 500  # not one socket write per event
    chunks = chunks_of(b"".join(written).decode().splitlines())
    assert len(chunks) == 20003
    assert chunks[-1]["usage"]["completion_tokens"] == 20000


def test_delays_apply_to_streams_and_plain_replies(
    server: LocalServer, client: httpx.Client
) -> None:
    server.first_token_delay, server.token_delay = 0.2, 0.05
    started = time.perf_counter()
    arrivals = []
    with client.stream("POST", "/chat/completions", json=ask("a b c", stream=True)) as response:
        for line in response.iter_lines():
            if '"content":"' in line and '"role"' not in line:
                arrivals.append(time.perf_counter() - started)
    assert len(arrivals) == 4  # "Echo: " "a " "b " "c"
    assert arrivals[0] >= 0.2
    assert arrivals[-1] - arrivals[0] >= 3 * 0.05 * 0.9
    started = time.perf_counter()
    client.post("/chat/completions", json=ask("a b c"))
    assert time.perf_counter() - started >= 0.2 + 3 * 0.05 * 0.9


# Validation like the reference service

M = [{"role": "user", "content": "hi"}]
INVALID = {
    "not an object": [1, 2],
    "no model": {"messages": M},
    "empty model": {"model": "", "messages": M},
    "no messages": {"model": "m"},
    "empty messages": {"model": "m", "messages": []},
    "messages not a list": {"model": "m", "messages": "hi"},
    "message not an object": {"model": "m", "messages": ["hi"]},
    "unknown role": {"model": "m", "messages": [{"role": "tool", "content": "x"}]},
    "no content": {"model": "m", "messages": [{"role": "user"}]},
    "empty content": {"model": "m", "messages": [{"role": "user", "content": ""}]},
    "content not a string": {"model": "m", "messages": [{"role": "user", "content": ["x"]}]},
    "system not first": {"model": "m", "messages": [*M, {"role": "system", "content": "s"}, *M]},
    "not alternating": {"model": "m", "messages": [*M, *M]},
    "last not user": {"model": "m", "messages": [*M, {"role": "assistant", "content": "a"}]},
    "temperature 2": {"model": "m", "messages": M, "temperature": 2},
    "temperature negative": {"model": "m", "messages": M, "temperature": -0.1},
    "temperature string": {"model": "m", "messages": M, "temperature": "0.5"},
    "top_p 0": {"model": "m", "messages": M, "top_p": 0},
    "top_p above 1": {"model": "m", "messages": M, "top_p": 1.01},
    "presence_penalty": {"model": "m", "messages": M, "presence_penalty": 2.5},
    "frequency_penalty": {"model": "m", "messages": M, "frequency_penalty": -3},
    "max_tokens 0": {"model": "m", "messages": M, "max_tokens": 0},
    "max_tokens float": {"model": "m", "messages": M, "max_tokens": 1.5},
    "max_tokens bool": {"model": "m", "messages": M, "max_tokens": True},
    "stop number": {"model": "m", "messages": M, "stop": 3},
    "stop list of numbers": {"model": "m", "messages": M, "stop": ["a", 1]},
    "stream not bool": {"model": "m", "messages": M, "stream": "yes"},
}


@pytest.mark.parametrize("body", INVALID.values(), ids=INVALID.keys())
def test_invalid_requests_get_the_flat_400(client: httpx.Client, body: Any) -> None:
    response = client.post("/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()
    assert set(error) == {"request_id", "latency", "code", "message"}
    assert error["code"] == "InvalidParameter" and error["latency"] == 0
    assert error["message"]


def test_bad_json_gets_the_flat_400(client: httpx.Client) -> None:
    response = client.post("/chat/completions", content=b"{oops")
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidParameter"


def test_edge_values_are_accepted(client: httpx.Client) -> None:
    body = chat(temperature=0, top_p=1, presence_penalty=-2, frequency_penalty=2, max_tokens=1)
    body["messages"] = [SYSTEM, USER, {"role": "assistant", "content": "Dune."}, USER]
    assert client.post("/chat/completions", json={**body, "stop": None}).status_code == 200
