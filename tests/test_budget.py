"""Session budgets: refused with one clear line before anything is sent; what is left is shown."""

from __future__ import annotations

import pytest

from ipychat import ChatClient, ConfigError, Conversation, LocalServer, Settings
from ipychat._budget import BudgetError, spent
from ipychat._render import status_line


def client_for(server: LocalServer, **values: object) -> ChatClient:
    settings = Settings.load(environ={})
    settings.set(base_url=server.base_url, **values)
    return ChatClient(settings)


def test_request_budget_refuses_before_sending(server: LocalServer) -> None:
    server.clear()
    conversation = Conversation()
    with client_for(server, max_requests_per_session=2) as client:
        first = conversation.send("one", client=client)
        second = conversation.send("two", client=client, stream=False)
        with pytest.raises(BudgetError) as refused:
            conversation.send("three", client=client)
        conversation.reset()  # a reset does not refund the budget
        with pytest.raises(BudgetError):
            conversation.send("four", client=client)
        other = Conversation(name="other")  # another session has its own budget
        assert other.send("five", client=client).text == "Echo: five"
    assert [r.body["messages"][-1]["content"] for r in server.requests] == ["one", "two", "five"]
    message = str(refused.value)
    assert "all 2 requests" in message and "nothing was sent" in message
    assert "\n" not in message
    assert first.budget_left == "budget: 1/2 requests left"
    assert second.budget_left == "budget: 0/2 requests left"
    assert status_line(second).endswith("budget: 0/2 requests left")


def test_token_budget_caps_the_reply_then_refuses(server: LocalServer) -> None:
    server.clear()
    conversation = Conversation()
    with client_for(server, max_tokens_per_session=40) as client:
        long = conversation.send("/repeat 100 word", client=client, history=False)
        assert long.finish_reason == "length"  # capped, so the budget cannot be overrun
        sent_cap = server.requests[-1].body["max_tokens"]
        assert 0 < sent_cap < 40
        assert spent(conversation).tokens <= 40
        with pytest.raises(BudgetError, match=r"tokens left .* nothing was sent"):
            conversation.send("/repeat 100 word " + "x " * 200, client=client)
    assert len(server.requests) == 1
    assert long.budget_left is not None and long.budget_left.endswith("/40 tokens left")


def test_no_budget_no_status_and_nothing_capped(server: LocalServer) -> None:
    server.clear()
    with client_for(server) as client:
        reply = Conversation().send("hi", client=client)
    assert reply.budget_left is None and "budget" not in status_line(reply)
    assert "max_tokens" not in server.requests[-1].body


@pytest.mark.parametrize("value", [0, -3, 2.5, "many", True])
def test_budget_settings_are_checked_with_one_line(value: object) -> None:
    settings = Settings.load(environ={})
    for key in ("max_requests_per_session", "max_tokens_per_session"):
        with pytest.raises(ConfigError) as error:
            settings.set(**{key: value})
        assert key in str(error.value) and "\n" not in str(error.value)
    settings.set(max_requests_per_session=3, max_tokens_per_session=5000)
    resolved = settings.resolve()
    assert (resolved.max_requests_per_session, resolved.max_tokens_per_session) == (3, 5000)


def test_a_structured_exchange_spends_from_and_is_refused_by_the_same_budget(
    server: LocalServer,
) -> None:
    from ipychat._batch_magic import send_structured
    from ipychat._structured import Schema

    server.clear()
    conversation = Conversation()
    schema = Schema.of({"type": "object", "properties": {"label": {"type": "string"}}})
    with client_for(server, max_requests_per_session=1) as client:
        reply = send_structured(
            conversation, "classify this", client=client, schema=schema, history=True,
            cell=None, on_delta=None, overrides={},
        )
        assert reply.data is not None and spent(conversation).requests == 1
        with pytest.raises(BudgetError, match="nothing was sent"):
            send_structured(
                conversation, "and this", client=client, schema=schema, history=True,
                cell=None, on_delta=None, overrides={},
            )
    assert len(server.requests) == 1
