"""Every chunk shape a server can send ends in text or one clear error with the partial reply.

Named shapes first (content as a list of parts, a string delta, numbers, objects where lists
belong, odd finish reasons and usage), then a property test over random JSON in every place of
a chunk and of a whole body. Also: a server's error becomes one line with the right advice.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipychat._errors import APIStatusError, StreamError
from ipychat._status import clean_message, error_details, is_context_overflow

from .test_client import MESSAGES, Server, chunk, make_client, sse, stream_response


def streamed(*chunks: object, done: bool = True) -> tuple[str, list[str], Any]:
    """Send the chunks as a stream: (text, warnings, the error or None)."""
    client, _, _ = make_client(Server(stream_response(sse(*chunks, done=done))), max_retries=0)
    try:
        reply = client.send(MESSAGES)
    except (StreamError, APIStatusError) as error:
        partial = error.reply
        return (partial.text if partial else "", partial.warnings if partial else [], error)  # type: ignore[attr-defined]
    return reply.text, reply.warnings, None


def choice(delta: object, **extra: object) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, **extra}]}


FINISH = chunk(finish="stop")


@pytest.mark.parametrize(
    ("odd", "text"),
    [
        (choice({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}), "ab"),
        (choice({"content": [{"type": "image_url", "image_url": {}}, "c"]}), "c"),
        (choice({"content": {"type": "text", "text": "d"}}), "d"),
        (choice("plain string delta"), "plain string delta"),
        (choice({"content": 42}), "42"),
        (choice({"content": 1.5}), "1.5"),
        (choice({"content": None}), ""),
        (choice({"content": True}), ""),
        (choice({"content": {"no": "text"}}), ""),
        (choice(["a", "list"]), ""),
        (choice(None), ""),
        (choice(7), ""),
        ({"choices": {"index": 0, "delta": {"content": "dict choices"}}}, "dict choices"),
        ({"choices": "a string"}, ""),
        ({"choices": 3}, ""),
        ({"choices": [None, 5, "x"]}, ""),
        ({"choices": [{"index": "0", "delta": {"content": "string index"}}]}, "string index"),
        ({"choices": [{"index": 1, "delta": {"content": "second choice"}}]}, ""),
        (choice({"reasoning_content": ["r"], "content": "e"}), "e"),
        ({"choices": [{"index": 0, "text": "legacy text"}]}, "legacy text"),
        ({"choices": [], "usage": "odd"}, ""),
        ({"choices": [], "usage": {"prompt_tokens": "x", "total_tokens": [1]}}, ""),
        ({"choices": [], "usage": 5, "id": {"a": 1}, "model": 3, "created": "now"}, ""),
    ],
)
def test_odd_shapes_end_in_text(odd: dict[str, Any], text: str) -> None:
    got, _, error = streamed(chunk("Hi "), odd, FINISH)
    assert error is None
    assert got == "Hi " + text


@pytest.mark.parametrize("reason", [7, 1.5, True, {"type": "stop"}, ["stop"], "x" * 500, "a\x1bb"])
def test_odd_finish_reasons_are_short_text(reason: object) -> None:
    client, _, _ = make_client(
        Server(stream_response(sse(chunk("Hi"), {"choices": [{"finish_reason": reason}]})))
    )
    reply = client.send(MESSAGES)
    assert reply.text == "Hi" and isinstance(reply.finish_reason, str)
    assert len(reply.finish_reason) <= 40 and "\x1b" not in reply.finish_reason


def test_skipped_shapes_are_noted_once_each() -> None:
    got, warnings, error = streamed(
        chunk("Hi"), *[{"choices": "junk"}] * 50, choice({"content": [{"type": "image"}]}), FINISH
    )
    assert got == "Hi" and error is None
    assert warnings == [
        "Skipped a chunk whose choices is not a list (str).",
        "Skipped a part of content that is not text (image).",
    ]


def test_a_stream_of_nothing_but_odd_shapes_says_so_in_one_line() -> None:
    got, _, error = streamed({"choices": "junk"}, done=True)
    assert got == ""
    assert str(error).endswith(
        "ended before any reply (Skipped a chunk whose choices is not a list (str))."
    )


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"choices": [{"message": {"content": [{"type": "text", "text": "parts"}]}}]}, "parts"),
        ({"choices": {"message": {"content": "dict"}, "finish_reason": "stop"}}, "dict"),
        ({"choices": [{"message": "a string message"}]}, "a string message"),
        ({"choices": [{"message": {"content": 3}}]}, "3"),
        ({"choices": [{"text": "legacy"}]}, "legacy"),
        ({"choices": [{"message": None, "finish_reason": "length"}]}, ""),
    ],
)
def test_odd_whole_bodies_end_in_text(body: dict[str, Any], text: str) -> None:
    client, _, _ = make_client(Server(httpx.Response(200, json=body)), stream=False)
    assert client.send(MESSAGES).text == text


@pytest.mark.parametrize("body", [[1, 2], "text", 5, None, {"choices": "x"}, {"choices": []}, {}])
def test_whole_bodies_without_a_reply_are_one_clear_error(body: object) -> None:
    answer = httpx.Response(200, content=json.dumps(body).encode())
    client, _, _ = make_client(Server(answer), stream=False)
    with pytest.raises(APIStatusError, match=r"^200 from \S+, but .*: no reply to show\.") as info:
        client.send(MESSAGES)
    assert "\n" not in str(info.value)


def test_a_stream_labelled_as_json_is_still_read() -> None:
    body = sse(chunk("Hello"), chunk(" there", finish="stop"))
    answer = httpx.Response(200, headers={"content-type": "application/json"}, content=body)
    client, _, _ = make_client(Server(answer))
    reply = client.send(MESSAGES)
    assert reply.text == "Hello there" and reply.complete


# -- any JSON anywhere -----------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(
        st.sampled_from(["type", "text", "content", "delta", "index", "message", "x"]),
        children,
        max_size=3,
    ),
    max_leaves=8,
)


@st.composite
def _odd_chunks(draw: st.DrawFn) -> object:
    """Random JSON at one level of an otherwise normal chunk (or as the whole chunk)."""
    value = draw(_json)
    level = draw(st.sampled_from(["chunk", "choices", "choice", "delta", "content", "finish"]))
    if level == "chunk":
        return value
    if level == "choices":
        return {"choices": value}
    if level == "choice":
        return {"choices": [value]}
    if level == "delta":
        return {"choices": [{"index": 0, "delta": value}]}
    if level == "content":
        return {"choices": [{"index": 0, "delta": {"content": value, "reasoning": value}}]}
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": value, "usage": value}]}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_odd_chunks(), min_size=1, max_size=4), st.booleans())
def test_any_json_in_a_stream_ends_in_text_or_one_error(odd: list[object], finish: bool) -> None:
    chunks = [chunk("Hi "), *odd] + ([FINISH] if finish else [])
    text, _, error = streamed(*chunks)
    assert isinstance(text, str) and text.startswith("Hi "), "the text before is kept"
    if error is not None:
        assert isinstance(error, StreamError | APIStatusError)
        assert "\n" not in str(error)
        assert error.reply is not None and error.reply.complete is False


@settings(max_examples=200, deadline=None)
@given(_json)
def test_any_json_as_a_whole_body_ends_in_text_or_one_error(body: object) -> None:
    client, _, _ = make_client(
        Server(httpx.Response(200, content=json.dumps(body).encode())), stream=False, max_retries=0
    )
    try:
        reply = client.send(MESSAGES)
    except APIStatusError as error:
        assert "\n" not in str(error)
    else:
        assert isinstance(reply.text, str)


# -- a server's error as one line ------------------------------------------------------------------

LLAMA_CPP_PYTHON = (
    "1 validation error for CreateChatCompletionRequest\ntemperature\n  Input should be less "
    "than or equal to 2\nTraceback (most recent call last):\n  File \"/app/errors.py\", line "
    "171, in handler\n    response = await route(request)\nValueError: boom"
)
LITELLM = (
    "litellm.BadRequestError: OpenAIException - bad request\nReceived Model Group=gpt-4o\n"
    "Available Model Group Fallbacks=None\n\nLiteLLM: model group 'gpt-4o' failed with the "
    "error above. LiteLLM Retried: 2 times"
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            LLAMA_CPP_PYTHON,
            "1 validation error for CreateChatCompletionRequest temperature Input should be less "
            "than or equal to 2",
        ),
        ('Traceback (most recent call last):\n  File "x", line 1\nKeyError: 1', "KeyError: 1"),
        (LITELLM, "litellm.BadRequestError: OpenAIException - bad request"),
        ("ends in a dot.", "ends in a dot"),
        ("a\x1b[2Jb\u202ec", "a\\x1b[2Jb\\u202ec"),
        ("   ", "no details"),
    ],
)
def test_clean_message_keeps_the_sentence(raw: str, expected: str) -> None:
    assert clean_message(raw) == expected


def test_long_messages_are_cut_with_an_ellipsis() -> None:
    cut = clean_message("word " * 200)
    assert len(cut) <= 240 and cut.endswith("…")


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("anything", "context_length_exceeded"),
        ("request (5000 tokens) exceeds the available context size (4096 tokens)", None),
        (None, "exceed_context_size_error"),
        ("This model's maximum context length is 8192 tokens.", None),
        ("prompt is too long: 250000 tokens > 200000 maximum", "invalid_request_error"),
        ("Input is too long for requested model.", None),
    ],
)
def test_context_overflow_is_recognised(message: str | None, code: str | None) -> None:
    assert is_context_overflow(message, code)


def test_ordinary_errors_are_not_overflow() -> None:
    assert not is_context_overflow("Incorrect API key provided", "invalid_api_key")
    assert not is_context_overflow("temperature must be below 2", None)


def test_an_overflow_in_the_stream_names_the_way_out() -> None:
    overflow = {"error": {"message": "maximum context length is 4096 tokens", "code": 400}}
    text, _, error = streamed(chunk("Hi"), overflow)
    assert text == "Hi" and error.overflow and error.setting == "history_limit"
    assert "history_limit" in str(error)


@pytest.mark.parametrize(
    ("body", "status", "label"),
    [
        ({"error": {"message": "m", "type": "BadRequest", "code": 400}}, 400, "BadRequest"),
        ({"error": {"message": "m", "code": "429"}}, 429, None),
        ({"error": {"message": "m", "code": "1234"}}, 400, "1234"),
        ({"error": {"message": "m", "type": "t", "code": "c"}}, 400, "c"),
        ({"detail": [{"loc": ["body", "temperature"], "msg": "too high"}]}, 422, None),
    ],
)
def test_the_label_is_the_code_unless_it_only_repeats_the_status(
    body: dict[str, Any], status: int, label: str | None
) -> None:
    assert error_details(body, status).code == label


def test_fastapi_validation_lists_read_as_sentences() -> None:
    body = {"detail": [{"loc": ["body", "temperature"], "msg": "too high", "type": "x"}]}
    assert error_details(body, 422).message == "temperature: too high"


def test_the_notebook_advice_comes_from_the_error_not_its_text() -> None:
    from ipychat._advice import with_advice
    from ipychat._errors import RequestError, TimeoutError

    timeout = TimeoutError("No answer.", setting="timeout", suggested="120")
    assert with_advice(timeout) == "No answer. Change it with %chat_config timeout=120."
    overflow = APIStatusError("Too long.", status=400, setting="history_limit", overflow=True)
    assert "%%chat --new" in with_advice(overflow) and "history_limit=4" in with_advice(overflow)
    assert with_advice(APIStatusError("Bad key.", setting="api_key")).endswith("--api-key.")
    assert with_advice(RequestError("Plain.", setting="base_url")) == "Plain."  # no value to give
