"""What is resent and what never is, against the bundled server's faults (sync and async).

The rule: resend only what cannot have started work (no connection, 408/429/5xx, a connection
that broke before any byte of the answer); never a read timeout or an answer that began. A
pooled connection the server had closed is reopened silently. Streams end after
`idle_timeout` seconds without text, whatever keep-alives arrive, and `on_alive` sees those.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from ipychat import Fault, LocalServer
from ipychat._client import AsyncChatClient, ChatClient
from ipychat._config import Settings
from ipychat._errors import APIStatusError, ConnectError, StreamError, TimeoutError

MESSAGES = [{"role": "user", "content": "one two three four five"}]
FULL = "Echo: one two three four five"


def settings(base_url: str, **values: Any) -> Settings:
    result = Settings()
    result.set(**{"base_url": base_url, "max_retries": 1, "timeout": 2, **values})
    return result


@pytest.fixture
def fresh(server: LocalServer) -> LocalServer:
    server.clear()
    return server


def client_for(server: LocalServer, **values: Any) -> tuple[ChatClient, list[Any]]:
    notices: list[Any] = []
    client = ChatClient(settings(server.base_url, **values), on_retry=lambda n: notices.append(n))
    return client, notices


def test_read_timeout_is_not_resent_stream_or_not(fresh: LocalServer) -> None:
    for stream in (True, False):
        fresh.clear()
        fresh.push_fault(Fault("hang", seconds=3))
        client, notices = client_for(fresh, timeout=0.5, stream=stream)
        with client, pytest.raises(TimeoutError, match=r"0.5 s \(read timeout\); not resent"):
            client.send(MESSAGES)
        assert len(fresh.requests) == 1 and notices == []


def test_idle_timeout_shorter_than_timeout_is_the_read_timeout_of_a_stream(fresh: LocalServer):
    fresh.push_fault(Fault("hang", seconds=3))
    client, _ = client_for(fresh, timeout=30, idle_timeout=0.5)
    with client, pytest.raises(TimeoutError, match="raise idle_timeout") as info:
        client.send(MESSAGES)
    assert info.value.setting == "idle_timeout"


def test_refused_connection_is_retried_and_the_final_error_says_how_long() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    notices: list[str] = []
    client = ChatClient(
        settings(f"http://127.0.0.1:{port}/v1", max_retries=2),
        on_retry=lambda n: notices.append(str(n)),
        sleep=lambda seconds: None,
    )
    with client, pytest.raises(ConnectError, match=r"Tried 3 times over \d+\.\d s\.$") as info:
        client.send(MESSAGES)
    assert len(notices) == 2 and info.value.waited >= 0


def test_a_stale_pooled_connection_is_reopened_silently(fresh: LocalServer) -> None:
    client, notices = client_for(fresh)
    with client:
        assert client.send(MESSAGES).text == FULL  # the connection is now pooled
        fresh.clear()
        fresh.push_fault(Fault("stale"))
        assert client.send(MESSAGES).text == FULL
        assert len(fresh.requests) == 2 and notices == []
        # Only once per call: a second failure on the fresh connection is the server's own.
        fresh.clear()
        fresh.push_fault(Fault("stale", times=2))
        assert client.send(MESSAGES).text == FULL
        assert len(fresh.requests) == 3 and len(notices) == 1
        assert "broke before an answer" in str(notices[0])


def test_a_fresh_connection_that_breaks_before_the_answer_is_a_retry(fresh: LocalServer) -> None:
    fresh.push_fault(Fault("stale"))
    client, notices = client_for(fresh)  # a new client: its first connection is new
    with client:
        assert client.send(MESSAGES).text == FULL
    assert len(fresh.requests) == 2 and len(notices) == 1


def test_a_server_that_closes_idle_connections_costs_nothing(fresh: LocalServer) -> None:
    fresh.push_fault(Fault("close_idle", seconds=0.1))
    client, notices = client_for(fresh)
    with client:
        assert client.send(MESSAGES).text == FULL
        time.sleep(0.4)  # past the server's keep-alive timeout: it has closed the connection
        assert client.send(MESSAGES).text == FULL
    assert len(fresh.requests) == 2 and notices == []


def test_a_stream_cut_before_any_text_is_not_resent_but_a_whole_answer_is(fresh: LocalServer):
    fresh.push_fault(Fault("drop"))
    client, notices = client_for(fresh)
    with client, pytest.raises(StreamError, match="before any reply; not resent"):
        client.send(MESSAGES)
    assert len(fresh.requests) == 1
    fresh.clear()
    fresh.push_fault(Fault("drop"))
    client, notices = client_for(fresh, stream=False)
    with client:
        assert client.send(MESSAGES).text == FULL  # closed before any byte: safe to resend
    assert len(fresh.requests) == 2 and len(notices) == 1


def test_keepalives_alone_end_the_stream_after_idle_timeout(fresh: LocalServer) -> None:
    fresh.push_fault(Fault("keepalive", after_chunks=2, seconds=10, every=0.1))
    client, _ = client_for(fresh, idle_timeout=0.5)
    alive: list[float] = []
    with client, pytest.raises(StreamError) as info:
        client.send(MESSAGES, on_alive=lambda: alive.append(time.monotonic()))
    error = info.value
    assert str(error).endswith(
        "sent only keep-alives and no text for 0.5 s after part of the reply: stopped waiting "
        "(idle_timeout=0.5)."
    )
    assert error.setting == "idle_timeout" and error.suggested == "1"
    assert error.reply.text == "Echo: one " and error.reply.complete is False  # type: ignore[attr-defined]
    assert len(alive) >= 3, "each keep-alive is a sign of life"
    # Had it waited for the 10 s of keep-alives to end, the rest of the reply would have come.
    assert len(fresh.requests) == 1


def test_keepalives_then_text_is_a_whole_reply(fresh: LocalServer) -> None:
    fresh.push_fault(Fault("keepalive", after_chunks=1, seconds=0.6, every=0.1))
    client, _ = client_for(fresh, idle_timeout=2)
    alive: list[int] = []
    with client:
        reply = client.send(MESSAGES, on_alive=lambda: alive.append(1))
    assert reply.text == FULL and reply.complete
    assert len(alive) >= 4  # the headers, the role chunk and the keep-alives


def test_on_alive_passes_through_a_conversation(fresh: LocalServer) -> None:
    from ipychat import Conversation

    fresh.push_fault(Fault("keepalive", seconds=0.3, every=0.1))
    client, _ = client_for(fresh)
    alive: list[int] = []
    with client:
        reply = Conversation().send("hi", client=client, on_alive=lambda: alive.append(1))
    assert reply.text == "Echo: hi" and len(alive) >= 3


def test_redirect_says_where_and_the_base_url(fresh: LocalServer) -> None:
    fresh.push_fault(Fault("redirect", status=301))
    client, _ = client_for(fresh)
    with client, pytest.raises(APIStatusError) as info:
        client.send(MESSAGES)
    root = fresh.url
    assert str(info.value) == (
        f"301 from {fresh.base_url}/chat/completions: redirected to {root}/v2/chat/completions, "
        f"which ipychat does not follow. If that is the right server, set base_url to {root}/v2."
    )
    assert (info.value.setting, info.value.suggested) == ("base_url", f"{root}/v2")
    assert len(fresh.requests) == 1


def test_overflow_on_an_empty_stream_is_asked_once_without_streaming(fresh: LocalServer) -> None:
    fresh.push_fault(Fault("overflow", times=2))
    client, notices = client_for(fresh)
    with client, pytest.raises(APIStatusError, match="maximum context length is 2048") as info:
        client.send(MESSAGES)
    assert info.value.overflow and "history_limit" in str(info.value)
    assert [r.body["stream"] for r in fresh.requests] == [True, False] and notices == []


def test_a_json_answer_to_a_stream_is_read_whole(fresh: LocalServer) -> None:
    fresh.push_fault(Fault("unstreamed"))
    client, _ = client_for(fresh)
    deltas = []
    with client:
        reply = client.send(MESSAGES, on_delta=deltas.append)
    assert reply.text == FULL and reply.complete and len(deltas) == 1


# -- the async client keeps the same rules ---------------------------------------------------------


def test_async_client_keeps_the_same_rules(fresh: LocalServer) -> None:
    async def main() -> None:
        notices: list[str] = []
        alive: list[int] = []
        client = AsyncChatClient(
            settings(fresh.base_url, idle_timeout=0.5), on_retry=lambda n: notices.append(str(n))
        )
        async with client:
            assert (await client.send(MESSAGES)).text == FULL
            fresh.push_fault(Fault("stale"))
            assert (await client.send(MESSAGES)).text == FULL
            assert notices == [], "the stale pooled connection was reopened silently"
            fresh.push_fault(Fault("keepalive", after_chunks=2, seconds=10, every=0.1))
            with pytest.raises(StreamError, match=r"stopped waiting \(idle_timeout=0.5\)") as info:
                await client.send(MESSAGES, on_alive=lambda: alive.append(1))
            assert info.value.reply.text == "Echo: one "  # type: ignore[attr-defined]
            assert len(alive) >= 3
            fresh.push_fault(Fault("hang", seconds=3))
            with pytest.raises(TimeoutError, match="not resent"):
                await client.send(MESSAGES, idle_timeout=300, timeout=0.5)
        assert len(fresh.requests) == 5 and notices == []

    asyncio.run(main())
