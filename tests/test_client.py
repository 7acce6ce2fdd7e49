from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from ipychat._chunks import Delta
from ipychat._client import AsyncChatClient, ChatClient, RetryNotice
from ipychat._config import Settings
from ipychat._errors import (
    APIStatusError,
    ConnectError,
    RequestError,
    StreamError,
    TimeoutError,
)

KEY = "sk-canary-1234567890abcdef"
BASE_URL = "http://host/compatible-mode/v1"
URL = BASE_URL + "/chat/completions"
MESSAGES = [{"role": "user", "content": "Hi"}]

Handler = Callable[[httpx.Request], httpx.Response]


# -- a fake server -------------------------------------------------------------------------------


class Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body that arrives in these reads, then optionally breaks."""

    def __init__(self, parts: list[bytes], error: Exception | None = None) -> None:
        self.parts = parts
        self.error = error

    def __iter__(self) -> Iterator[bytes]:
        yield from self.parts
        if self.error is not None:
            raise self.error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part
        if self.error is not None:
            raise self.error


class Server:
    """Answers requests from a queue and keeps them; a last exception or handler repeats."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert self.answers, "the client sent more requests than expected"
        repeat = len(self.answers) == 1 and not isinstance(self.answers[0], httpx.Response)
        answer = self.answers[0] if repeat else self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]


def settings(**values: Any) -> Settings:
    result = Settings()  # defaults only: no config file, no environment
    result.set(**{"base_url": BASE_URL, "api_key": KEY, "model": "qwen-test", **values})
    return result


def make_client(server: Server, **values: Any) -> tuple[ChatClient, list[float], list[str]]:
    sleeps: list[float] = []
    notices: list[str] = []
    client = ChatClient(
        settings(**values),
        transport=httpx.MockTransport(server),
        sleep=sleeps.append,
        on_retry=lambda notice: notices.append(str(notice)),
    )
    return client, sleeps, notices


def sse(*events: object, done: bool = True) -> bytes:
    """Encode events as `data:` lines (dicts as JSON, strings as they are)."""
    out = b""
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event)
        out += b"data: " + data.encode() + b"\n\n"
    if done:
        out += b"data: [DONE]\n\n"
    return out


def chunk(
    content: str | None = None,
    *,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
    **delta: str,
) -> dict[str, Any]:
    if content is not None:
        delta["content"] = content
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1749804786,
        "model": "qwen-test",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        "usage": usage,
    }


USAGE = {"prompt_tokens": 22, "completion_tokens": 48, "total_tokens": 70}


def stream_response(body: bytes | list[bytes], error: Exception | None = None) -> httpx.Response:
    parts = body if isinstance(body, list) else [body]
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=Chunks(parts, error)
    )


def ok_stream(text: str = "Hello!") -> httpx.Response:
    return stream_response(sse(chunk(text), chunk(finish="stop")))


COMPLETION = {
    "id": "fb4b3860e051ecad0b019971",
    "object": "chat.completion",
    "created": 1749804786,
    "model": "ops-qwen-turbo",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "The 'Three-Body Problem'."},
            "finish_reason": "stop",
        }
    ],
    "usage": USAGE,
}


# -- the request ---------------------------------------------------------------------------------


def test_request_url_headers_and_minimal_body() -> None:
    server = Server(ok_stream())
    client, _, _ = make_client(server)
    client.send(MESSAGES)
    [request] = server.requests
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["content-type"] == "application/json"
    assert server.bodies[0] == {
        "model": "qwen-test",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_generation_params_only_when_set_and_extra_body_merged() -> None:
    server = Server(ok_stream())
    client, _, _ = make_client(
        server,
        temperature=0.3,
        stop=["END"],
        extra_body={"enable_search": True},
        extra_headers={"X-Trace": "t1"},
    )
    client.send(MESSAGES, max_tokens=64)
    body = server.bodies[0]
    assert body["temperature"] == 0.3
    assert body["max_tokens"] == 64
    assert body["stop"] == ["END"]
    assert body["enable_search"] is True
    for unset in ("top_p", "presence_penalty", "frequency_penalty"):
        assert unset not in body
    assert server.requests[0].headers["x-trace"] == "t1"


def test_no_authorization_header_without_a_key() -> None:
    server = Server(ok_stream())
    client = ChatClient(settings(api_key=None), transport=httpx.MockTransport(server))
    client.send(MESSAGES)
    assert "authorization" not in server.requests[0].headers


def test_base_url_that_already_ends_in_chat_completions() -> None:
    server = Server(ok_stream())
    client, _, _ = make_client(server, base_url=URL + "/")
    client.send(MESSAGES)
    assert str(server.requests[0].url) == URL


# -- replies -------------------------------------------------------------------------------------


def test_non_streamed_reply() -> None:
    server = Server(httpx.Response(200, json=COMPLETION))
    client, _, _ = make_client(server, stream=False)
    deltas: list[Delta] = []
    reply = client.send(MESSAGES, prompt="Hi", on_delta=deltas.append)
    body = server.bodies[0]
    assert "stream" not in body and "stream_options" not in body
    assert "accept" not in server.requests[0].headers or (
        server.requests[0].headers["accept"] != "text/event-stream"
    )
    assert reply.text == "The 'Three-Body Problem'."
    assert deltas == [Delta("The 'Three-Body Problem'.")]
    assert (reply.finish_reason, reply.complete) == ("stop", True)
    assert (reply.usage.prompt_tokens, reply.usage.total_tokens) == (22, 70)  # type: ignore[union-attr]
    assert (reply.id, reply.model, reply.created) == (
        "fb4b3860e051ecad0b019971",
        "ops-qwen-turbo",
        1749804786,
    )
    assert reply.prompt == "Hi"
    assert reply.params["url"] == URL and "messages" not in reply.params


def test_non_streamed_body_that_is_not_json() -> None:
    server = Server(httpx.Response(200, text="<html><title>Login</title></html>"))
    client, _, _ = make_client(server, stream=False)
    with pytest.raises(APIStatusError, match=r"200 from .*not JSON: Login") as info:
        client.send(MESSAGES)
    assert info.value.status == 200


def test_streamed_reply_with_usage_on_an_empty_choices_chunk() -> None:
    body = sse(
        chunk("", role="assistant"),
        chunk("Hel"),
        chunk("lo"),
        chunk(finish="stop"),
        {"id": "chatcmpl-1", "choices": [], "usage": USAGE},
    )
    server = Server(stream_response(body))
    client, _, _ = make_client(server)
    deltas: list[Delta] = []
    reply = client.send(MESSAGES, on_delta=deltas.append)
    assert deltas == [Delta("Hel"), Delta("lo")]
    assert reply.text == "Hello"
    assert reply.usage is not None and reply.usage.total_tokens == 70
    assert reply.complete and reply.finish_reason == "stop"
    assert reply.id == "chatcmpl-1" and reply.model == "qwen-test"
    assert reply.time_to_first_token is not None and reply.elapsed is not None
    assert reply.warnings == []


def test_stream_split_into_odd_reads() -> None:
    body = sse(chunk("Grüße 👋"), chunk(finish="stop"))
    parts = [body[i : i + 3] for i in range(0, len(body), 3)]
    client, _, _ = make_client(Server(stream_response(parts)))
    assert client.send(MESSAGES).text == "Grüße 👋"


def test_usage_on_a_litellm_style_chunk_with_an_empty_delta() -> None:
    usage_chunk = {"id": "x", "choices": [{"index": 0, "delta": {}}], "usage": USAGE}
    body = sse(chunk("Hi"), chunk(finish="stop"), usage_chunk)
    client, _, _ = make_client(Server(stream_response(body)))
    reply = client.send(MESSAGES)
    assert reply.text == "Hi"
    assert reply.usage is not None and reply.usage.completion_tokens == 48


def test_usage_on_the_finish_chunk_and_no_done() -> None:
    body = sse(chunk("Hi"), chunk(finish="stop", usage=USAGE), done=False)
    client, _, _ = make_client(Server(stream_response(body)))
    reply = client.send(MESSAGES)
    assert reply.complete and reply.finish_reason == "stop"
    assert reply.usage is not None and reply.usage.prompt_tokens == 22


def test_last_event_without_blank_line_counts() -> None:
    body = sse(chunk("Hi"), done=False) + b"data: " + json.dumps(chunk(finish="stop")).encode()
    client, _, _ = make_client(Server(stream_response(body)))
    assert client.send(MESSAGES).finish_reason == "stop"


def test_reasoning_content_and_reasoning_kept_apart_from_the_answer() -> None:
    body = sse(
        chunk(None, reasoning_content="Think "),
        chunk(None, reasoning="more. "),
        chunk("Answer"),
        chunk(finish="stop"),
    )
    client, _, _ = make_client(Server(stream_response(body)))
    deltas: list[Delta] = []
    reply = client.send(MESSAGES, on_delta=deltas.append)
    assert reply.reasoning == "Think more. "
    assert reply.text == "Answer"
    assert deltas == [Delta(reasoning="Think "), Delta(reasoning="more. "), Delta("Answer")]


@pytest.mark.parametrize(
    ("reason", "truncated", "filtered"),
    [
        ("stop", False, False),
        ("length", True, False),
        ("content_filter", False, True),
        ("content_filter_sensitive", False, True),
    ],
)
def test_finish_reasons(reason: str, truncated: bool, filtered: bool) -> None:
    client, _, _ = make_client(Server(stream_response(sse(chunk("x"), chunk(finish=reason)))))
    reply = client.send(MESSAGES)
    assert reply.finish_reason == reason
    assert (reply.truncated, reply.filtered, reply.complete) == (truncated, filtered, True)


def test_stream_that_ends_without_finish_is_an_error_with_the_partial_reply() -> None:
    client, _, _ = make_client(Server(stream_response(sse(chunk("Part"), chunk(" one")))))
    with pytest.raises(StreamError, match="ended after part of the reply") as info:
        client.send(MESSAGES)
    reply = info.value.reply
    assert reply.text == "Part one"  # type: ignore[attr-defined]
    assert reply.complete is False  # type: ignore[attr-defined]
    assert reply.error  # type: ignore[attr-defined]


def test_empty_streamed_body_is_asked_again_without_streaming() -> None:
    # llama-cpp-python answers a streamed prompt that is too long with an empty 200: the same
    # request not streamed gets the real reason. The empty stream did no work to repeat.
    overflow = {"error": {"message": "This model's maximum context length is 2048 tokens.",
                          "type": "invalid_request_error", "code": "context_length_exceeded"}}
    server = Server(stream_response(b""), httpx.Response(400, json=overflow))
    client, sleeps, notices = make_client(server)
    with pytest.raises(APIStatusError, match="maximum context length is 2048") as info:
        client.send(MESSAGES)
    assert info.value.overflow and info.value.setting == "history_limit"
    assert "history_limit" in str(info.value) and "Check the" not in str(info.value)
    assert [body.get("stream") for body in server.bodies] == [True, False]
    assert "stream_options" not in server.bodies[1]
    assert sleeps == [] and notices == []


def test_empty_stream_then_a_whole_reply_is_that_reply() -> None:
    server = Server(stream_response(b""), httpx.Response(200, json=COMPLETION))
    client, _, _ = make_client(server)
    deltas = []
    reply = client.send(MESSAGES, on_delta=deltas.append)
    assert reply.text == "The 'Three-Body Problem'." and reply.complete
    assert deltas == [Delta("The 'Three-Body Problem'.", "")]


def test_empty_stream_twice_is_an_error_before_any_reply() -> None:
    server = Server(stream_response(b""), httpx.Response(200, content=b""))
    client, _, _ = make_client(server)
    with pytest.raises(APIStatusError, match="the body is not JSON: an empty body"):
        client.send(MESSAGES)
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    "error_event",
    [
        sse({"error": {"message": "Model overloaded", "code": 503}}),  # vLLM
        b'error: {"code": 503, "message": "Model overloaded"}\n\ndata: [DONE]\n\n',  # llama.cpp
    ],
)
def test_error_event_in_the_stream_carries_the_partial_text(error_event: bytes) -> None:
    body = sse(chunk("Half "), chunk("done"), done=False) + error_event
    server = Server(stream_response(body))
    client, sleeps, _ = make_client(server)
    with pytest.raises(StreamError, match="Model overloaded") as info:
        client.send(MESSAGES)
    assert info.value.code == "503"
    assert info.value.reply.text == "Half done"  # type: ignore[attr-defined]
    assert info.value.reply.complete is False  # type: ignore[attr-defined]
    assert len(server.requests) == 1 and sleeps == []


def test_non_json_data_lines_are_skipped_with_a_warning() -> None:
    body = sse(chunk("A"), "keep-alive", '"just a string"', chunk("B"), chunk(finish="stop"))
    client, _, _ = make_client(Server(stream_response(body)))
    reply = client.send(MESSAGES)
    assert reply.text == "AB" and reply.complete
    assert len(reply.warnings) == 2
    assert "not JSON" in reply.warnings[0] and "keep-alive" in reply.warnings[0]


def test_streaming_can_be_stopped_early_and_closes_the_response() -> None:
    closed: list[bool] = []

    class Tracked(Chunks):
        def close(self) -> None:
            closed.append(True)

    body = sse(chunk("a"), chunk("b"), chunk(finish="stop"))
    response = httpx.Response(200, stream=Tracked([body[:40], body[40:]]))
    client, _, _ = make_client(Server(response))
    with client.stream(MESSAGES) as stream:
        first = next(iter(stream))
    assert first == Delta("a")
    assert closed == [True]
    assert stream.reply.complete is False


# -- error bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "message", "code", "request_id"),
    [
        (
            401,
            {"error": {"message": "Invalid key", "type": "invalid_request_error", "code": None}},
            "Invalid key",
            "invalid_request_error",
            None,
        ),
        (
            400,
            {"request_id": "2244F3A8", "latency": 3, "code": "ServiceIdNotExist", "message": "No"},
            "No",
            "ServiceIdNotExist",
            "2244F3A8",
        ),
        (
            422,
            {"detail": "Unknown field: enable_search"},
            "Unknown field: enable_search",
            None,
            None,
        ),
        (
            422,
            {"detail": [{"loc": ["body", "x"], "msg": "extra fields not permitted"}]},
            "extra fields not permitted",
            None,
            None,
        ),
        (
            400,
            {"error": {"message": "bad", "type": "BadRequestError", "param": None, "code": 400}},
            "bad",
            "BadRequestError",  # the type says more than a code that repeats the status
            None,
        ),
        (429, {"error": {"message": "Rate limited", "code": "429"}}, "Rate limited", None, None),
        (
            400,
            {
                "error": {
                    "message": "x",
                    "type": "data_inspection_failed",
                    "code": "data_inspection_failed",
                }
            },
            "x",
            "data_inspection_failed",
            None,
        ),
    ],
)
def test_json_error_bodies(
    status: int, body: dict[str, Any], message: str, code: str | None, request_id: str | None
) -> None:
    client, _, _ = make_client(Server(httpx.Response(status, json=body)), max_retries=0)
    with pytest.raises(APIStatusError) as info:
        client.send(MESSAGES)
    error = info.value
    assert (error.status, error.code, error.request_id, error.url) == (
        status,
        code,
        request_id,
        URL,
    )
    assert str(error).startswith(f"{status} from {URL}: ")
    assert message in str(error)
    if code:
        assert f"({code})" in str(error) or code in message


NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body></html>"
)


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        (502, NGINX_502, f"502 from {URL}: 502 Bad Gateway. The server failed; try again later."),
        (500, "Internal error: bad JSON\n", f"500 from {URL}: Internal error: bad JSON."),
        (500, "", f"500 from {URL}: Internal Server Error."),
        (404, "   ", f"404 from {URL}: Not Found. Check base_url and model."),
    ],
)
def test_non_json_error_bodies(status: int, text: str, expected: str) -> None:
    client, _, _ = make_client(Server(httpx.Response(status, text=text)), max_retries=0)
    with pytest.raises(APIStatusError) as info:
        client.send(MESSAGES)
    assert str(info.value).startswith(expected)
    assert "<" not in str(info.value)
    assert info.value.code is None


def test_request_id_from_header() -> None:
    response = httpx.Response(400, json={"error": {"message": "x"}}, headers={"x-request-id": "r1"})
    client, _, _ = make_client(Server(response))
    with pytest.raises(APIStatusError) as info:
        client.send(MESSAGES)
    assert info.value.request_id == "r1"


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}},
        {"error": {"message": "Incorrect API key provided.", "code": "invalid_api_key"}},
        {"request_id": "r", "code": "invalid_api_key", "message": "Incorrect API key provided"},
    ],
)
def test_error_message_format(body: dict[str, Any]) -> None:
    client, _, _ = make_client(Server(httpx.Response(401, json=body)))
    with pytest.raises(APIStatusError) as info:
        client.send(MESSAGES)
    assert str(info.value) == (
        "401 from http://host/compatible-mode/v1/chat/completions: Incorrect API key provided "
        "(invalid_api_key). Check api_key."
    )


def test_api_key_echoed_in_an_error_body_is_redacted() -> None:
    body = {"error": {"message": f"Incorrect API key provided: {KEY}", "code": "invalid_api_key"}}
    client, _, _ = make_client(Server(httpx.Response(401, json=body)))
    with pytest.raises(APIStatusError) as info:
        client.send(MESSAGES)
    assert KEY not in str(info.value) and KEY not in repr(info.value.args)
    assert "****cdef" in str(info.value)


def test_api_key_echoed_in_a_plain_text_error_is_redacted() -> None:
    text = f"Authorization: Bearer {KEY} was refused"
    client, _, _ = make_client(Server(httpx.Response(403, text=text)))
    with pytest.raises(APIStatusError) as info:
        client.send(MESSAGES)
    assert KEY not in str(info.value)


def test_api_key_echoed_in_an_in_stream_error_is_redacted() -> None:
    body = sse(chunk("x"), {"error": {"message": f"key {KEY} expired"}})
    client, _, _ = make_client(Server(stream_response(body)))
    with pytest.raises(StreamError) as info:
        client.send(MESSAGES)
    assert KEY not in str(info.value)
    assert KEY not in str(info.value.reply.error)  # type: ignore[attr-defined]


def test_api_key_echoed_in_a_200_error_body_is_redacted() -> None:
    server = Server(httpx.Response(200, json={"error": {"message": f"bad key {KEY}"}}))
    client, _, _ = make_client(server, stream=False)
    with pytest.raises(RequestError) as info:
        client.send(MESSAGES)
    assert KEY not in str(info.value)
    assert "bad key ****cdef" in str(info.value)


# -- retries -------------------------------------------------------------------------------------


def error(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": "try later"}}, headers=headers)


def test_429_retry_after_seconds_is_honoured() -> None:
    server = Server(error(429, **{"Retry-After": "3"}), ok_stream())
    client, sleeps, notices = make_client(server)
    assert client.send(MESSAGES).text == "Hello!"
    assert len(server.requests) == 2
    assert sleeps == [3.0]
    assert len(notices) == 1 and "retrying in 3.0 s" in notices[0]
    assert "429" in notices[0] and "retry 1 of 2" in notices[0]


def test_429_retry_after_ms_is_honoured() -> None:
    server = Server(error(429, **{"retry-after-ms": "1500", "Retry-After": "9"}), ok_stream())
    client, sleeps, _ = make_client(server)
    client.send(MESSAGES)
    assert sleeps == [1.5]


def test_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    server = Server(error(503, **{"Retry-After": when}), ok_stream())
    client, sleeps, _ = make_client(server)
    client.send(MESSAGES)
    assert len(sleeps) == 1 and 25 <= sleeps[0] <= 31


def test_retry_after_longer_than_the_limit_is_reported_not_slept() -> None:
    server = Server(error(429, **{"Retry-After": "3600"}))
    client, sleeps, _ = make_client(server)
    with pytest.raises(APIStatusError) as info:
        client.send(MESSAGES)
    assert info.value.retry_after == 3600
    assert sleeps == [] and len(server.requests) == 1


def test_503_then_success_backs_off() -> None:
    server = Server(error(503), ok_stream())
    client, sleeps, notices = make_client(server)
    assert client.send(MESSAGES).complete
    assert len(server.requests) == 2
    assert len(sleeps) == 1 and 0.375 <= sleeps[0] <= 0.5
    assert "retrying in" in notices[0]


def test_connection_error_then_success() -> None:
    server = Server(httpx.ConnectError("Connection refused"), ok_stream())
    client, sleeps, notices = make_client(server)
    assert client.send(MESSAGES).text == "Hello!"
    assert len(server.requests) == 2 and len(sleeps) == 1
    assert "Could not connect" in notices[0]


def test_timeout_is_retried_then_reported() -> None:
    server = Server(httpx.ConnectTimeout("timed out"))
    client, sleeps, _ = make_client(server, max_retries=1, timeout=5)
    with pytest.raises(TimeoutError, match=r"within 5 s \(connect timeout\)"):
        client.send(MESSAGES)
    assert len(server.requests) == 2 and len(sleeps) == 1


def test_backoff_grows_and_is_capped() -> None:
    server = Server(httpx.ConnectError("Connection refused"))
    client, sleeps, notices = make_client(server, max_retries=10)
    with pytest.raises(ConnectError, match="Could not connect to http://host"):
        client.send(MESSAGES)
    assert len(server.requests) == 11
    assert len(sleeps) == 10 and len(notices) == 10
    for n, delay in enumerate(sleeps):
        base = min(0.5 * 2**n, 8.0)
        assert 0.75 * base <= delay <= base
    assert max(sleeps) <= 8.0
    assert "retry 10 of 10" in notices[-1]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    server = Server(error(status, **{"Retry-After": "1"}))
    client, sleeps, notices = make_client(server)
    with pytest.raises(APIStatusError) as info:
        client.send(MESSAGES)
    assert info.value.status == status
    assert len(server.requests) == 1 and sleeps == [] and notices == []


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_max_retries_is_respected(max_retries: int) -> None:
    server = Server(lambda request: error(500))
    client, sleeps, _ = make_client(server, max_retries=max_retries)
    with pytest.raises(APIStatusError) as info:
        client.send(MESSAGES)
    assert info.value.status == 500
    assert len(server.requests) == max_retries + 1
    assert len(sleeps) == max_retries


def test_no_retry_once_stream_content_arrived() -> None:
    broken = stream_response(sse(chunk("Partial "), done=False), httpx.ReadError("reset"))
    server = Server(broken, ok_stream())
    client, sleeps, _ = make_client(server)
    with pytest.raises(StreamError, match="was cut off after part of the reply") as info:
        client.send(MESSAGES)
    assert len(server.requests) == 1 and sleeps == []
    assert info.value.reply.text == "Partial "  # type: ignore[attr-defined]
    assert info.value.reply.complete is False  # type: ignore[attr-defined]


def test_stalled_stream_reports_the_timeout() -> None:
    stalled = stream_response(sse(chunk("a"), done=False), httpx.ReadTimeout("slow"))
    client, _, _ = make_client(Server(stalled), timeout=7)
    expected = r"stalled \(no data for 7 s\) after part of the reply; if the server pauses longer"
    with pytest.raises(StreamError, match=expected + r", raise timeout\.$"):
        client.send(MESSAGES)


def test_server_rejecting_stream_options_is_retried_without_and_remembered() -> None:
    rejection = httpx.Response(
        400, json={"error": {"message": "Unrecognized request argument: stream_options"}}
    )
    server = Server(rejection, ok_stream(), ok_stream())
    client, _, notices = make_client(server)
    assert client.send(MESSAGES).text == "Hello!"
    assert [("stream_options" in body) for body in server.bodies] == [True, False]
    assert notices == []
    client.send(MESSAGES)
    assert "stream_options" not in server.bodies[2]
    assert len(server.requests) == 3


def test_stream_options_fallback_does_not_use_up_a_retry() -> None:
    rejection = httpx.Response(422, json={"detail": "stream_options: extra field"})
    server = Server(rejection, error(503), error(503), ok_stream())
    client, sleeps, notices = make_client(server, max_retries=2)
    assert client.send(MESSAGES).complete
    assert len(server.requests) == 4 and len(sleeps) == 2  # no wait for the fallback
    assert "retry 1 of 2" in notices[0] and "retry 2 of 2" in notices[1]


def test_retry_notice_text() -> None:
    notice = RetryNotice(1, 2, 1.25, "429 from http://x: slow down")
    assert str(notice) == "429 from http://x: slow down; retrying in 1.2 s (retry 1 of 2)"


# -- the async client ----------------------------------------------------------------------------


def make_async_client(server: Server, **values: Any) -> tuple[AsyncChatClient, list[float]]:
    sleeps: list[float] = []

    async def fake_sleep(delay: float) -> None:
        sleeps.append(delay)

    client = AsyncChatClient(
        settings(**values),
        transport=httpx.MockTransport(server),
        sleep=fake_sleep,
        on_retry=lambda notice: None,
    )
    return client, sleeps


def test_async_streamed_reply() -> None:
    body = sse(chunk(None, reasoning_content="hm"), chunk("Hel"), chunk("lo"), chunk(finish="stop"))
    server = Server(stream_response([body[:30], body[30:]]))

    async def main() -> tuple[Any, list[Delta]]:
        client, _ = make_async_client(server)
        deltas: list[Delta] = []
        async with client:
            reply = await client.send(MESSAGES, on_delta=deltas.append)
        return reply, deltas

    reply, deltas = asyncio.run(main())
    assert reply.text == "Hello" and reply.reasoning == "hm" and reply.complete
    assert deltas == [Delta(reasoning="hm"), Delta("Hel"), Delta("lo")]
    assert server.bodies[0]["stream_options"] == {"include_usage": True}
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_async_error_and_broken_stream() -> None:
    server = Server(
        httpx.Response(401, json={"error": {"message": f"bad {KEY}", "code": "invalid_api_key"}}),
        stream_response(sse(chunk("Part"), done=False), httpx.ReadError("reset")),
    )

    async def main() -> tuple[APIStatusError, StreamError]:
        client, _ = make_async_client(server)
        with pytest.raises(APIStatusError) as first:
            await client.send(MESSAGES)
        with pytest.raises(StreamError) as second:
            await client.send(MESSAGES)
        await client.aclose()
        return first.value, second.value

    status_error, stream_error = asyncio.run(main())
    assert status_error.status == 401 and status_error.code == "invalid_api_key"
    assert KEY not in str(status_error)
    assert stream_error.reply.text == "Part"  # type: ignore[attr-defined]
    assert len(server.requests) == 2


def test_async_retry_and_non_streamed_reply() -> None:
    server = Server(
        error(503),
        httpx.ConnectError("refused"),
        httpx.Response(200, json=COMPLETION),
    )

    async def main() -> tuple[Any, list[float]]:
        client, sleeps = make_async_client(server, stream=False)
        reply = await client.send(MESSAGES)
        await client.aclose()
        return reply, sleeps

    reply, sleeps = asyncio.run(main())
    assert reply.text == "The 'Three-Body Problem'."
    assert len(server.requests) == 3
    assert len(sleeps) == 2 and 0.375 <= sleeps[0] <= 0.5 and 0.75 <= sleeps[1] <= 1.0


def test_async_stream_closes_with_aclose():
    import asyncio

    import httpx

    from ipychat import AsyncChatClient, Settings

    body = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body * 5, headers={"content-type": "text/event-stream"})

    async def main() -> str:
        settings = Settings()
        client = AsyncChatClient(settings, transport=httpx.MockTransport(handler))
        stream = client.stream([{"role": "user", "content": "x"}])
        async for delta in stream:
            first = delta.content
            break
        await stream.aclose()
        with pytest.raises(TypeError, match="aclose"):
            stream.close()
        await client.aclose()
        return first

    assert asyncio.run(main()) == "hi"
