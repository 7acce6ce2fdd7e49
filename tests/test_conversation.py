from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipychat._client import ChatClient
from ipychat._config import Settings
from ipychat._conversation import Conversation, Message, SessionRegistry, validate_messages
from ipychat._errors import APIStatusError, ConversationError, StreamError


class Server:
    """Streams the queued replies in order and keeps the message lists it was sent."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.sent: list[list[dict[str, str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(json.loads(request.content)["messages"])
        return self.answers.pop(0)


def event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def streamed(text: str, *, finish: str | None = "stop") -> httpx.Response:
    body = event({"model": "m1", "choices": [{"index": 0, "delta": {"content": text}}]})
    if finish:
        body += event({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        body += event({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}})
        body += b"data: [DONE]\n\n"
    return httpx.Response(200, content=body)


def client_for(server: Server, **values: Any) -> ChatClient:
    settings = Settings()
    settings.set(base_url="http://host/v1", model="m1", max_retries=0, **values)
    return ChatClient(settings, transport=httpx.MockTransport(server), sleep=lambda s: None)


def conversation(*texts: str, system: str | None = None) -> Conversation:
    """A conversation holding the exchanges (user, assistant, user, assistant, ...)."""
    roles = ["user", "assistant"] * (len(texts) // 2)
    return Conversation(system, [Message(r, t) for r, t in zip(roles, texts, strict=True)])


# -- the role rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([], "no messages"),
        ([{"role": "robot", "content": "x"}], "role 'robot'"),
        (["hello"], "not an object"),
        ([{"role": "user", "content": "  "}], "empty content"),
        ([{"role": "user", "content": None}], "empty content"),
        ([{"role": "user", "content": "a"}, {"role": "system", "content": "s"}], "only the first"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "alternate"),
        ([{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}], "no user"),
        ([{"role": "assistant", "content": "a"}], "no user turn"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "user turn"),
        ([{"role": "system", "content": "s"}], "user turn"),
    ],
)
def test_validate_messages_refusals(messages: list[Any], match: str) -> None:
    with pytest.raises(ConversationError, match=match):
        validate_messages(messages)


def test_validate_messages_accepts_the_reference_example() -> None:
    validate_messages(
        [
            {"role": "system", "content": "You are a robot assistant"},
            {"role": "user", "content": "What is the capital of Henan?"},
            {"role": "assistant", "content": "Zhengzhou"},
            {"role": "user", "content": "What are some fun places to visit there?"},
        ]
    )


def test_invalid_messages_are_refused_when_building_a_conversation() -> None:
    with pytest.raises(ConversationError):
        Conversation(None, [Message("assistant", "hi")])
    with pytest.raises(ConversationError):
        Conversation(None, [Message("user", "a"), Message("user", "b")])


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_empty_prompt_is_refused_without_a_request(prompt: str) -> None:
    server = Server()
    conv = conversation("q", "a")
    with pytest.raises(ConversationError, match="prompt is empty"):
        conv.send(prompt, client=client_for(server))
    assert server.sent == []
    assert len(conv) == 1


def test_a_history_broken_by_hand_is_refused_without_a_request() -> None:
    server = Server()
    conv = conversation("q", "a")
    conv.messages.append(Message("user", "dangling"))  # now two user turns would be sent
    with pytest.raises(ConversationError, match="alternate"):
        conv.send("next", client=client_for(server))
    assert server.sent == []


# -- sending -------------------------------------------------------------------------------------


def test_history_is_sent_in_order_and_exchanges_recorded() -> None:
    server = Server(streamed("Zhengzhou"), streamed("The Shaolin Temple"))
    client = client_for(server)
    conv = Conversation(system="You are a robot assistant")
    first = conv.send("What is the capital of Henan?", client=client)
    assert first.text == "Zhengzhou"
    conv.send("Fun places there?", client=client)
    assert server.sent[1] == [
        {"role": "system", "content": "You are a robot assistant"},
        {"role": "user", "content": "What is the capital of Henan?"},
        {"role": "assistant", "content": "Zhengzhou"},
        {"role": "user", "content": "Fun places there?"},
    ]
    assert [m.content for m in conv.messages] == [
        "What is the capital of Henan?",
        "Zhengzhou",
        "Fun places there?",
        "The Shaolin Temple",
    ]
    assert len(conv) == 2
    meta = conv.messages[1].meta
    assert meta["model"] == "m1" and meta["finish_reason"] == "stop"
    assert meta["total_tokens"] == 7


def test_the_system_setting_is_used_when_the_conversation_has_none() -> None:
    server = Server(streamed("a"), streamed("b"))
    client = client_for(server, system="From settings")
    Conversation().send("q", client=client)
    Conversation(system="Own").send("q", client=client)
    assert server.sent[0][0] == {"role": "system", "content": "From settings"}
    assert server.sent[1][0] == {"role": "system", "content": "Own"}


@pytest.mark.parametrize(
    ("limit", "kept"),
    [(None, 3), (0, 0), (1, 1), (2, 2), (3, 3), (5, 3)],
)
def test_history_limit_keeps_the_last_exchanges(limit: int | None, kept: int) -> None:
    conv = conversation("u1", "a1", "u2", "a2", "u3", "a3", system="s")
    messages = conv.build_messages("now", history_limit=limit)
    history = ["u1", "a1", "u2", "a2", "u3", "a3"]
    expected = history[len(history) - 2 * kept :]
    assert [m["content"] for m in messages] == ["s", *expected, "now"]


def test_history_limit_setting_applies_to_send() -> None:
    server = Server(streamed("x"))
    conv = conversation("u1", "a1", "u2", "a2")
    conv.send("now", client=client_for(server, history_limit=1))
    assert [m["content"] for m in server.sent[0]] == ["u2", "a2", "now"]


def test_one_shot_sends_no_history_and_records_nothing() -> None:
    server = Server(streamed("once"))
    conv = conversation("u1", "a1", system="s")
    reply = conv.send("alone", client=client_for(server), history=False)
    assert reply.text == "once"
    assert server.sent[0] == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "alone"},
    ]
    assert [m.content for m in conv.messages] == ["u1", "a1"]


def test_a_failed_request_leaves_history_exactly_as_before() -> None:
    server = Server(httpx.Response(401, json={"error": {"message": "no"}}))
    conv = conversation("u1", "a1", system="s")
    before = conv.to_dict()
    with pytest.raises(APIStatusError):
        conv.send("q", client=client_for(server))
    assert conv.to_dict() == before


def test_an_error_event_before_any_text_records_nothing() -> None:
    server = Server(httpx.Response(200, content=event({"error": {"message": "overloaded"}})))
    conv = conversation("u1", "a1")
    before = conv.to_dict()
    with pytest.raises(StreamError, match="overloaded"):
        conv.send("q", client=client_for(server))
    assert conv.to_dict() == before


def test_a_broken_stream_records_partial_text_and_the_next_send_is_valid() -> None:
    server = Server(streamed("Half an ans", finish=None), streamed("Sorry, again."))
    client = client_for(server)
    conv = conversation("u1", "a1")
    with pytest.raises(StreamError) as info:
        conv.send("q", client=client)
    assert info.value.reply.text == "Half an ans"  # type: ignore[attr-defined]
    last = conv.messages[-1]
    assert (last.role, last.content, last.incomplete) == ("assistant", "Half an ans", True)
    assert conv.messages[-2] == Message("user", "q")
    conv.send("Please finish", client=client)
    assert [m["role"] for m in server.sent[1]] == ["user", "assistant"] * 2 + ["user"]
    assert server.sent[1][3] == {"role": "assistant", "content": "Half an ans"}
    assert conv.messages[-1].incomplete is False


def test_interrupting_a_stream_records_what_arrived() -> None:
    server = Server(streamed("Partial", finish=None))
    conv = Conversation()

    def stop(delta: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        conv.send("q", client=client_for(server), on_delta=stop)
    assert info.value.reply.text == "Partial"  # type: ignore[attr-defined]
    assert [(m.content, m.incomplete) for m in conv.messages] == [("q", False), ("Partial", True)]


def test_a_reply_with_no_text_is_not_recorded() -> None:
    conv = Conversation()
    server = Server(streamed(""))
    reply = conv.send("q", client=client_for(server))
    assert reply.complete and reply.text == ""
    assert conv.messages == []


# -- editing -------------------------------------------------------------------------------------


def test_undo_removes_the_last_exchange() -> None:
    conv = conversation("u1", "a1", "u2", "a2")
    assert conv.undo() == (Message("user", "u2"), Message("assistant", "a2"))
    assert [m.content for m in conv.messages] == ["u1", "a1"]
    conv.undo()
    assert conv.undo() is None and conv.messages == []


def test_reset_keeps_or_drops_the_system_prompt() -> None:
    conv = conversation("u1", "a1", system="s")
    conv.reset()
    assert conv.messages == [] and conv.system == "s"
    conv.reset(keep_system=False)
    assert conv.system is None and list(conv) == []


def test_fork_is_independent() -> None:
    conv = conversation("u1", "a1", system="s")
    conv.messages[1].meta["model"] = "m1"
    fork = conv.fork()
    assert fork.name == "default-fork" and conv.fork("x").name == "x"
    assert fork.to_dict()["messages"] == conv.to_dict()["messages"] and fork.system == "s"
    fork.messages[1].meta["model"] = "changed"
    fork.undo()
    fork.system = "other"
    assert len(conv) == 1 and conv.system == "s"
    assert conv.messages[1].meta["model"] == "m1"


def test_blank_system_prompt_is_none() -> None:
    assert Conversation(system="  ").system is None
    assert [m.role for m in conversation("u", "a", system="s")] == ["system", "user", "assistant"]


# -- export and import ---------------------------------------------------------------------------

_content = st.text(min_size=1, max_size=30).filter(str.strip)
_meta = st.dictionaries(
    st.sampled_from(["model", "finish_reason", "total_tokens", "elapsed", "extra"]),
    st.none()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    max_size=4,
)


@st.composite
def _conversations(draw: st.DrawFn) -> Conversation:
    messages = []
    for user, assistant, incomplete, meta in draw(
        st.lists(st.tuples(_content, _content, st.booleans(), _meta), max_size=5)
    ):
        messages += [Message("user", user), Message("assistant", assistant, incomplete, meta)]
    name = draw(st.text(min_size=1, max_size=10))
    return Conversation(draw(st.none() | _content), messages, name=name)


@given(_conversations())
def test_json_export_round_trip_is_exact(conv: Conversation) -> None:
    loaded = Conversation.from_json(conv.to_json())
    assert loaded.to_dict() == conv.to_dict()
    assert loaded.name == conv.name and loaded.system == conv.system
    assert [(m.incomplete, m.meta) for m in loaded.messages] == [
        (m.incomplete, m.meta) for m in conv.messages
    ]
    assert Conversation.from_json(conv.to_json(indent=None)).to_dict() == conv.to_dict()


def test_json_export_shape() -> None:
    conv = conversation("q", "a", system="s")
    conv.messages[1] = Message("assistant", "a", incomplete=True, meta={"model": "m"})
    assert json.loads(conv.to_json()) == {
        "format": "ipychat.conversation",
        "version": 1,
        "name": "default",
        "system": "s",
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a", "incomplete": True, "meta": {"model": "m"}},
        ],
    }


def test_load_a_bare_openai_message_list() -> None:
    text = json.dumps(
        [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
        ]
    )
    conv = Conversation.from_json(text)
    assert conv.system == "s" and [m.content for m in conv.messages] == ["q", "a"]


def test_markdown_export() -> None:
    from ipychat._export import HEADER

    conv = conversation("What is 2+2?", "**4**", "And 3+3?", "6", system="Be brief.")
    conv.messages[3] = Message("assistant", "6", incomplete=True)
    conv.name = "maths"
    assert conv.to_markdown() == (
        "# Conversation: maths\n\n"
        f"{HEADER}\n\n"
        "**System:**\n\nBe brief.\n\n"
        "## User\n\nWhat is 2+2?\n\n"
        "## Assistant\n\n**4**\n\n"
        "## User\n\nAnd 3+3?\n\n"
        "## Assistant *(incomplete)*\n\n6\n"
    )


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("not json", "not valid JSON"),
        ("42", "'messages' list"),
        ('{"messages": "hi"}', "'messages' list"),
        ('{"messages": [{"role": "robot", "content": "x"}]}', "role 'robot'"),
        ('{"messages": [{"role": "user", "content": "x"}]}', "ends with a user turn"),
        ('{"messages": [{"role": "assistant", "content": "x"}]}', "no user turn"),
        (
            '{"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": 1}]}',
            "empty",
        ),
        ('{"system": 3, "messages": []}', "'system' must be a string"),
        (
            '[{"role": "user", "content": "q"}, {"role": "system", "content": "s"}]',
            "only the first",
        ),
        (
            '[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "meta": 5}]',
            "'meta' that is not an object",
        ),
    ],
)
def test_from_json_refusals(text: str, match: str) -> None:
    with pytest.raises(ConversationError, match=match):
        Conversation.from_json(text)


NO_CELL = {"cell_id": None, "execution_count": None}


def test_to_records() -> None:
    conv = conversation("q", "a", system="s")
    conv.messages[1] = Message("assistant", "a", meta={"model": "m", "total_tokens": 9})
    assert conv.to_records() == [
        {"index": 0, "role": "system", "content": "s", "incomplete": False, **NO_CELL},
        {"index": 1, "role": "user", "content": "q", "incomplete": False, **NO_CELL},
        {
            "index": 2,
            "role": "assistant",
            "content": "a",
            "incomplete": False,
            **NO_CELL,
            "model": "m",
            "total_tokens": 9,
        },
    ]


# -- sessions ------------------------------------------------------------------------------------


def test_session_registry() -> None:
    registry = SessionRegistry()
    default = registry.get()
    assert default.name == "default" and registry.get() is default
    work = registry.get("work")
    assert work.name == "work" and registry.get("work") is work
    assert registry.names() == ["default", "work"] and "work" in registry
    with pytest.raises(
        ConversationError, match=r"No session named 'nope' \(sessions: default, work\)"
    ):
        registry.get("nope", create=False)
    assert "nope" not in registry
    registry.current = "work"
    assert registry.get() is work
    registry.remove("work")
    assert registry.current == "default" and registry.names() == ["default"]
    with pytest.raises(ConversationError):
        registry.remove("work")
    registry.add(Conversation(name="loaded"))
    assert registry.names() == ["default", "loaded"]
    registry.clear()
    assert registry.names() == []
    with pytest.raises(ConversationError, match="none yet"):
        registry.get("x", create=False)
