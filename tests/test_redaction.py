"""Secrets a server echoes back never come back out: no fragment of 8 or more characters.

The echo server (tests/echo.py) returns the key, a secret header and URL credentials in every
place a server can put text (error bodies, FastAPI details, in-stream errors, bad data lines,
content split across deltas, `model`, `id`) and every form (plain, `\\/`, `\\uXXXX`, cut short).
Everything ipychat then holds or shows is searched: errors and their verbose tracebacks,
replies, streamed deltas, warnings, the conversation's JSON and Markdown exports.
"""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipychat import ChatClient, ChatError, Conversation, Settings
from ipychat._chunks import Delta
from ipychat._secrets import (
    FRAGMENT,
    Redactor,
    Secret,
    StreamGuard,
    mask_url,
    unescape_json_text,
)

from .echo import MODES, echo_server, php_escape, u_escape

KEY = "sk-proj/Zx8Qc1e5b2d4f60Wq7/Lm3"  # holds "/" so PHP's escaping changes it
HEADER = "hdr-secret-9a8b7c6d5e4f3a2b"
PASSWORD = "pw-secret-1q2w3e4r5t6y"
SECRETS = (KEY, HEADER, PASSWORD, "alice:" + PASSWORD)


def fragments(secret: str) -> set[str]:
    return {secret[i : i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)}


def assert_no_fragment(text: str, where: str, secrets: tuple[str, ...] = SECRETS) -> None:
    """No run of 8 characters of any secret, in the text or in it with JSON escapes undone."""
    for view in (text, unescape_json_text(text)):
        for secret in secrets:
            for fragment in fragments(secret):
                assert fragment not in view, f"{fragment!r} of a secret leaked into {where}"


@pytest.fixture(scope="module")
def echo():
    with echo_server() as (url, received):
        yield url, received


def _verbose(exc: BaseException) -> str:
    from IPython.core.ultratb import VerboseTB

    tb = VerboseTB(theme_name="nocolor")
    # From the frame below the test's own: the test's locals hold what the server received.
    return "".join(tb.structured_traceback(type(exc), exc, exc.__traceback__.tb_next))


def _settings(base_url: str) -> Settings:
    settings = Settings()
    settings.set(
        base_url=base_url, api_key=KEY, extra_headers={"X-Secret-Token": HEADER}, max_retries=0
    )
    return settings


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("mode", MODES)
def test_an_echoed_secret_leaves_no_fragment_anywhere(echo, mode, stream):
    url, received = echo
    settings = _settings(f"{url}/{mode}/v1")
    conversation = Conversation(name="echo")
    seen: list[str] = []
    with ChatClient(settings) as client:
        try:
            reply = conversation.send("hi", client=client, stream=stream)
        except ChatError as exc:
            seen += [str(exc), repr(exc), repr(vars(exc)), _verbose(exc)]
            reply = getattr(exc, "reply", None)
        if reply is not None:
            seen += [repr(reply), json.dumps(reply.to_dict(), default=str)]
            seen += [reply.text, str(reply.model), str(reply.id), *reply.warnings]
        if stream:  # what a display sees, delta by delta
            try:
                with client.stream([{"role": "user", "content": "hi"}]) as deltas:
                    seen.append("".join(d.content + d.reasoning for d in deltas))
            except ChatError as exc:
                seen.append(str(exc))
    seen += [conversation.to_json(), conversation.to_markdown(), repr(conversation.to_records())]
    assert received[-1]["authorization"] == f"Bearer {KEY}", "the key was sent"
    assert received[-1]["x-secret-token"] == HEADER, "the header was sent"
    everything = "\n".join(seen)
    assert_no_fragment(everything, f"the output of mode {mode}")
    assert "****" in everything, "the echo came back, masked"


def test_a_key_split_across_deltas_is_masked_as_it_streams(echo):
    url, _ = echo
    with ChatClient(_settings(f"{url}/content-plain/v1")) as client:
        with client.stream([{"role": "user", "content": "hi"}]) as stream:
            shown = [delta.content for delta in stream]
        reply = stream.reply
    assert len(shown) > 5, "the key arrived in several deltas"
    assert_no_fragment("".join(shown), "the streamed deltas")
    assert reply.text == "".join(shown), "what is kept is what was shown"
    assert reply.text.startswith("you sent: ") and reply.text.endswith(" ok")
    masked = f"Bearer {Secret(KEY).masked()} | {Secret(HEADER).masked()}"
    assert reply.model == masked and reply.id == masked


def test_url_credentials_are_sent_as_basic_auth_and_never_shown(echo):
    url, received = echo
    settings = Settings()
    settings.set(base_url=url.replace("://", f"://alice:{PASSWORD}@") + "/error-plain/v1")
    settings.set(max_retries=0)
    assert "://****@127.0.0.1" in repr(settings)
    assert all(PASSWORD not in v for _, v, _ in settings.describe())
    with ChatClient(settings) as client, pytest.raises(ChatError) as info:
        client.send([{"role": "user", "content": "hi"}])
    assert received[-1]["authorization"].startswith("Basic ")
    message = str(info.value)
    assert f"401 from {url}/error-plain/v1/chat/completions" in message, "the URL, bare"
    assert_no_fragment(message + _verbose(info.value), "the error")


# -- the redactor and the stream guard -----------------------------------------------------------


@pytest.mark.parametrize(
    "echoed",
    [
        KEY,
        php_escape(KEY),
        u_escape(KEY),
        u_escape(KEY).upper().replace("\\U", "\\u"),
        KEY[:FRAGMENT],
        KEY[-FRAGMENT:],
        KEY[5:20],
        f"Bearer {KEY}, again {KEY[:12]}",
    ],
    ids=["plain", "php", "u", "U", "prefix", "suffix", "middle", "twice"],
)
def test_redactor_masks_every_form_of_a_fragment(echoed):
    redactor = Redactor([Secret(KEY)])
    shown = redactor.text(f"error: {echoed}.", raw=True)
    assert_no_fragment(shown, repr(echoed), (KEY,))
    assert shown.startswith("error: ") and "****" in shown


def test_redactor_leaves_other_text_alone_and_short_secrets_unsearched():
    redactor = Redactor([Secret(KEY), Secret("yes")])
    text = "yes, " + KEY[:FRAGMENT - 1] + " is fine; é \\u00e9"
    assert redactor.text(text) == text
    assert redactor.text(text, raw=True) == text.replace("\\u00e9", "é")
    assert Redactor([None, Secret("")]).text(KEY) == KEY


def test_redactor_walks_decoded_json():
    redactor = Redactor([Secret(KEY)])
    body = {"error": {KEY: [KEY, 1, None, {"x": f"a {KEY} b"}]}}
    assert_no_fragment(json.dumps(redactor.json(body)), "the walked JSON", (KEY,))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_stream_guard_never_shows_a_fragment_however_the_text_is_cut(data):
    before = data.draw(st.text(alphabet="ab -/", max_size=12))
    after = data.draw(st.text(alphabet="ab -/", max_size=12))
    start = data.draw(st.integers(0, len(KEY) - 1))
    stop = data.draw(st.integers(start + 1, len(KEY)))
    text = before + KEY[start:stop] + after + KEY
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(text) - 1), max_size=12))))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    guard = StreamGuard(Redactor([Secret(KEY)]))
    parts: list[str] = []
    shown: list[str] = []
    rng = random.Random(data.draw(st.integers(0, 1000)))
    i = 0
    while i < len(pieces):
        batch = pieces[i : i + rng.randint(1, 3)]  # deltas of one network read
        i += len(batch)
        parts.extend(batch)
        shown += [d.content for d in guard.screen([Delta(p) for p in batch], parts, [])]
    assert "".join(shown) == "".join(parts), "what is kept is what was shown"
    assert_no_fragment("".join(shown), f"pieces {pieces!r}", (KEY,))


def test_stream_guard_passes_clean_text_through_untouched():
    guard = StreamGuard(Redactor([Secret(KEY)]))
    deltas = [Delta("hello "), Delta("", "thinking"), Delta("world")]
    parts, reasoning = ["hello ", "world"], ["thinking"]
    assert guard.screen(deltas, parts, reasoning) is deltas
    assert parts == ["hello ", "world"] and reasoning == ["thinking"]


def test_mask_url_hides_user_and_password():
    assert mask_url("https://u:p@h.example:8443/v1") == "https://****@h.example:8443/v1"
    assert mask_url("https://h.example/v1") == "https://h.example/v1"


def test_json_export_keeps_the_data_with_secrets_masked(echo):
    url, _ = echo
    settings = _settings(f"{url}/content-plain/v1")
    conversation = Conversation(name="export")
    with ChatClient(settings) as client:
        conversation.send(f"my key is {KEY}, keep it", client=client)  # pasted into a prompt
    data = json.loads(conversation.to_json(redact=settings.redactor().json))
    assert_no_fragment(json.dumps(data), "the JSON export")
    user, assistant = data["messages"]
    assert user["content"] == f"my key is {Secret(KEY).masked()}, keep it"
    assert assistant["content"].startswith("you sent: Bearer ****")
    assert assistant["meta"], "the reply's data is kept"
