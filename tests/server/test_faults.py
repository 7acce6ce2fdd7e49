"""The bundled server's injected faults, and how promptly it stops in the middle of them."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from ipychat._server import Fault, LocalServer, serve

from .conftest import USER, chat, chunks_of, content_of, data_of, stream_lines

# Faults


def test_status_fault_with_retry_after(server: LocalServer, client: httpx.Client) -> None:
    server.push_fault(Fault("status", status=429, headers={"Retry-After": "1"}))
    response = client.post("/chat/completions", json=chat(stream=True))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"] == {
        "message": "Injected error",
        "type": "server_error",
        "param": None,
        "code": "injected",
    }
    assert client.post("/chat/completions", json=chat()).status_code == 200
    assert len(server.requests) == 2


def test_status_fault_bodies(server: LocalServer, client: httpx.Client) -> None:
    server.push_fault(Fault("status", status=503, body="upstream down"))
    server.push_fault(Fault("status", body={"detail": "nope"}))
    text = client.post("/chat/completions", json=chat())
    assert (text.status_code, text.text) == (503, "upstream down")
    assert text.headers["content-type"].startswith("text/plain")
    default = client.post("/chat/completions", json=chat())
    assert (default.status_code, default.json()) == (500, {"detail": "nope"})


def test_html_fault(server: LocalServer, client: httpx.Client) -> None:
    server.push_fault(Fault("html"))
    response = client.post("/chat/completions", json=chat())
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>502 Bad Gateway</title>" in response.text


@pytest.mark.parametrize(
    ("stream", "content_type"), [(True, "text/event-stream"), (False, "application/json")]
)
def test_empty_fault(
    server: LocalServer, client: httpx.Client, stream: bool, content_type: str
) -> None:
    server.push_fault(Fault("empty"))
    response = client.post("/chat/completions", json=chat(stream=stream))
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.content == b""


def test_drop_fault_breaks_the_stream(server: LocalServer, client: httpx.Client) -> None:
    server.push_fault(Fault("drop", after_chunks=2))
    lines: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        stream_lines(client, chat(), lines)
    chunks = chunks_of(lines)
    assert content_of(chunks) == "Echo: Recommend "
    assert "[DONE]" not in data_of(lines)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    assert client.post("/chat/completions", json=chat()).status_code == 200


def test_drop_fault_without_stream_sends_nothing(server: LocalServer, client: httpx.Client) -> None:
    server.push_fault(Fault("drop"))
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/chat/completions", json=chat())


def test_hang_fault_times_out_before_any_byte() -> None:
    # A server of its own: the hung handler waits for stop().
    with serve() as server, httpx.Client(base_url=server.base_url, timeout=0.3) as client:
        server.push_fault(Fault("hang"))
        with pytest.raises(httpx.ReadTimeout):
            client.post("/chat/completions", json=chat())
        assert client.post("/chat/completions", json=chat()).status_code == 200


def test_hang_fault_with_seconds_answers_late(server: LocalServer, client: httpx.Client) -> None:
    server.push_fault(Fault("hang", seconds=0.3))
    started = time.perf_counter()
    assert content_of(chunks_of(stream_lines(client, chat()))).startswith("Echo: ")
    assert time.perf_counter() - started >= 0.3


def test_error_event_fault(server: LocalServer, client: httpx.Client) -> None:
    server.push_fault(Fault("error_event", after_chunks=1))
    data = data_of(stream_lines(client, chat()))
    assert data[-1] == "[DONE]"
    assert json.loads(data[-2]) == {
        "error": {
            "message": "Injected stream error",
            "type": "server_error",
            "code": "stream_error",
        }
    }
    assert content_of([json.loads(d) for d in data[:-2]]) == "Echo: "


def test_truncated_json_fault(server: LocalServer, client: httpx.Client) -> None:
    server.push_fault(Fault("truncated_json", after_chunks=3))
    with client.stream("POST", "/chat/completions", json=chat(stream=True)) as response:
        assert response.headers["connection"] == "close"
        data = data_of(list(response.iter_lines()))
    assert data[-1] == '{"id": "x", "choi'
    assert len(data) == 5  # role chunk, three tokens, the cut-off one
    with pytest.raises(json.JSONDecodeError):
        json.loads(data[-1])


def test_bad_data_fault_then_goes_on(server: LocalServer, client: httpx.Client) -> None:
    server.push_fault(Fault("bad_data", after_chunks=1))
    data = data_of(stream_lines(client, chat()))
    assert data[2] == "this is not json"
    assert data[-1] == "[DONE]"
    good = [line for line in data if line not in ("this is not json", "[DONE]")]
    assert content_of([json.loads(d) for d in good]) == "Echo: " + USER["content"]


@pytest.mark.parametrize("kind", ["error_event", "truncated_json", "bad_data"])
def test_stream_faults_corrupt_a_plain_body(
    server: LocalServer, client: httpx.Client, kind: str
) -> None:
    server.push_fault(Fault(kind))
    response = client.post("/chat/completions", json=chat())
    assert response.status_code == 200
    if kind == "error_event":
        assert response.json()["error"]["code"] == "stream_error"
    else:
        with pytest.raises(json.JSONDecodeError):
            response.json()


def test_no_done_fault_puts_usage_on_the_finish_chunk(
    server: LocalServer, client: httpx.Client
) -> None:
    server.push_fault(Fault("no_done"))
    lines = stream_lines(client, chat(stream_options={"include_usage": True}))
    assert "[DONE]" not in data_of(lines)
    last = chunks_of(lines)[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["usage"] == {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16}


def test_stall_fault_pauses_then_finishes(server: LocalServer, client: httpx.Client) -> None:
    server.push_fault(Fault("stall", after_chunks=2, seconds=0.3))
    started = time.perf_counter()
    lines = stream_lines(client, chat())
    assert time.perf_counter() - started >= 0.3
    assert content_of(chunks_of(lines)) == "Echo: " + USER["content"]
    assert data_of(lines)[-1] == "[DONE]"


def test_faults_are_taken_in_order_for_their_times(
    server: LocalServer, client: httpx.Client
) -> None:
    server.push_fault(Fault("status", status=503, times=2))
    server.push_fault(Fault("html", status=504))
    statuses = [client.post("/chat/completions", json=chat()).status_code for _ in range(4)]
    assert statuses == [503, 503, 504, 200]


def test_fault_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="Unknown fault kind 'boom'"):
        Fault("boom")
    with pytest.raises(ValueError, match="times"):
        Fault("drop", times=0)


# Stopping


def test_stop_is_prompt_during_a_stall_and_a_hang() -> None:
    threads_before = set(threading.enumerate())
    server = serve()
    server.push_fault(Fault("stall", after_chunks=1, seconds=30))
    server.push_fault(Fault("hang"))
    got_data = threading.Event()
    errors: list[Exception] = []

    def consume(stream: bool) -> None:
        try:
            with httpx.stream(
                "POST", server.base_url + "/chat/completions", json=chat(stream=stream), timeout=10
            ) as r:
                for _ in r.iter_lines():
                    got_data.set()
        except httpx.HTTPError as error:
            errors.append(error)

    stalled = threading.Thread(target=consume, args=(True,))
    stalled.start()
    assert got_data.wait(2)
    hung = threading.Thread(target=consume, args=(False,))
    hung.start()
    deadline = time.monotonic() + 2
    while len(server.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.perf_counter()
    server.stop()
    assert time.perf_counter() - started < 2
    stalled.join(2)
    hung.join(2)
    assert not stalled.is_alive() and not hung.is_alive()
    assert len(errors) == 2 and all(isinstance(e, httpx.RemoteProtocolError) for e in errors)
    deadline = time.monotonic() + 1  # the stalled and hung handlers end too, not just sockets
    while set(threading.enumerate()) - threads_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not set(threading.enumerate()) - threads_before
    server.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.post(server.base_url + "/chat/completions", json=chat(), timeout=2)
