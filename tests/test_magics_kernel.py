"""The magics in a real kernel, against the bundled server, asserting on what a front end gets."""

from __future__ import annotations

import threading
import time

import pytest

from ipychat import Fault

from .kernel import chat_kernel, usage_error

pytestmark = pytest.mark.kernel

CANARY = "sk-canary-7f3a9c1e5b2d4f60"


@pytest.fixture(scope="module")
def kernel(server, tmp_path_factory):
    k = chat_kernel(tmp_path_factory.mktemp("kernel"), server.base_url)
    yield k
    k.shutdown()


@pytest.fixture(autouse=True)
def fresh(server, kernel):
    """Each test starts with an empty default session and a well-behaved server."""
    server.clear()
    server.token_delay = 0.0
    server.first_token_delay = 0.0
    result = kernel.run(
        f"%chat_config --reset\n%chat_config base_url={server.base_url}\n"
        "import ipychat; ipychat.sessions.clear()"
    )
    assert result.status == "ok", result.text()


def test_streams_into_one_display_then_leaves_static_html(kernel, server):
    result = kernel.run("%%chat\nHello <b>there</b>")
    assert result.status == "ok", result.text()
    shown = result.of_type("display_data")
    assert len(shown) == 1, "one output per reply"
    display_id = shown[0]["content"]["transient"]["display_id"]
    final = result.of_type("display_data", "update_display_data")[-1]["content"]
    assert final["transient"]["display_id"] == display_id
    kept = {"text/html", "text/plain", "application/vnd.ipychat.exchange+json"}
    assert set(final["data"]) == kept, "no widget in the saved output; the exchange for --restore"
    assert "Echo: Hello &lt;b&gt;there&lt;/b&gt;" in final["data"]["text/html"]
    assert "<b>" not in final["data"]["text/html"], "model text never becomes markup"
    assert final["data"]["text/plain"].startswith("Echo: Hello <b>there</b>")
    opened = {m["content"]["comm_id"] for m in result.of_type("comm_open")}
    closed = [m["content"]["comm_id"] for m in result.of_type("comm_close")]
    assert set(closed) == opened, "no widget is left open in the kernel"


def test_fast_long_reply_is_coalesced_and_exact(kernel, server):
    result = kernel.run("%%chat\n/repeat 3000 tok")
    assert result.status == "ok", result.text()
    updates = len(result.of_type("comm_msg", "update_display_data"))
    # At most 20 updates a second, plus the first and the final one.
    assert updates <= 20 * result.wall + 2, (updates, result.wall)
    assert len(result.of_type("display_data")) == 1
    assert kernel.value("len(_chat.text.split())") == 3000
    assert kernel.value("_chat.usage.completion_tokens") == 3000
    final = result.bundles()[-1]
    assert final["text/plain"].startswith("tok tok") and "text/html" in final


def test_reply_variables(kernel, server):
    result = kernel.run("%%chat -o answer --max-tokens 2\none two three four")
    assert result.status == "ok", result.text()
    assert kernel.value("answer is _chat") is True
    assert kernel.value("_chat.text") == "Echo: one "
    assert kernel.value("_chat.finish_reason") == "length"
    assert kernel.value("_chat.usage.total_tokens") == kernel.value(
        "_chat.usage.prompt_tokens + _chat.usage.completion_tokens"
    )
    assert kernel.value("_chat.complete") is True
    final = result.bundles()[-1]["text/html"]
    assert "max_tokens" in final, "a cut-off reply is flagged in the status line"


def test_follow_up_sends_the_history(kernel, server):
    kernel.run('%%chat --system "You are terse."\nFirst question')
    result = kernel.run("%%chat\nSecond question")
    assert result.status == "ok", result.text()
    roles = [m["role"] for m in server.requests[-1].body["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert server.requests[-1].body["messages"][2]["content"] == "Echo: First question"
    records = kernel.value("[r['role'] for r in ipychat.sessions.get().to_records()]")
    assert records == ["system", "user", "assistant", "user", "assistant"]


def test_named_sessions_and_one_shot(kernel, server):
    kernel.run("%%chat -s other\nin other")
    kernel.run("%%chat --no-history\none shot")
    kernel.run("%%chat\nin default")
    bodies = [r.body["messages"] for r in server.requests]
    assert [m["content"] for m in bodies[1]] == ["one shot"]
    assert [m["content"] for m in bodies[2]] == ["in default"], "one-shot and other left no trace"
    listing = kernel.run("%chat_config --sessions")
    assert "other" in listing.text() and "default" in listing.text()


@pytest.mark.parametrize(
    ("setup", "cell", "sent"),
    [
        ("x = 42", "value {x}", "value 42"),
        ("d = {'k': [1, 2]}", "item {d['k'][1]}", "item 2"),
        ("class C: name = 'ada'\nc = C()", "attr {c.name}", "attr ada"),
        ("", 'def f():\n    return {"a": {"b": 1}}', 'def f():\n    return {"a": {"b": 1}}'),
        ("", "f'{undefined_name}' and {1 + 1}", "f'{undefined_name}' and {1 + 1}"),
        ("x = 42", "literal {{x}}", "literal {{x}}"),
        ("x = 42", "code `{x}` and {x}", "code `{x}` and 42"),
        ("x = 42", "$\\frac{1}{x}$ is {x}", "$\\frac{1}{x}$ is 42"),
        ("", "{__import__('os').getcwd()}", "{__import__('os').getcwd()}"),
    ],
)
def test_interpolation(kernel, server, setup, cell, sent):
    if setup:
        assert kernel.run(setup).status == "ok"
    result = kernel.run(f"%%chat\n{cell}")
    assert result.status == "ok", result.text()
    assert server.requests[-1].body["messages"][-1]["content"] == sent
    assert kernel.value("_chat.prompt") == sent


def test_no_interpolate_and_out_in_history(kernel, server):
    kernel.run("x = 1")
    kernel.run("%%chat --no-interpolate\nkeep {x}")
    assert server.requests[-1].body["messages"][-1]["content"] == "keep {x}"
    kernel.run("3 * 7")
    kernel.run("%%chat\nresult was {Out[" + str(kernel.value("len(In) - 2")) + "]}")
    assert server.requests[-1].body["messages"][-1]["content"] == "result was 21"


def test_line_magic_returns_the_reply(kernel, server):
    kernel.run("x = 5")
    result = kernel.run("r = %chat -t 0.5 what is {x}?")
    assert result.status == "ok", result.text()
    assert kernel.value("r.text") == "Echo: what is 5?"
    assert server.requests[-1].body["temperature"] == 0.5


def test_chat_config_table_masks_the_key(kernel, server):
    result = kernel.run(f"%chat_config api_key={CANARY} model=ops-qwen-turbo")
    assert "saved with the notebook" in result.stderr
    shown = kernel.run("%chat_config")
    data = shown.of_type("display_data")[0]["content"]["data"]
    assert "****4f60" in data["text/html"] and "****4f60" in data["text/plain"]
    assert "ops-qwen-turbo" in data["text/plain"]
    kernel.run("%%chat\nhi")
    assert server.requests[-1].headers["authorization"] == f"Bearer {CANARY}"
    everything = result.text() + shown.text() + kernel.run("_chat").text()
    assert "canary-7f3a9c1e" not in everything


def test_config_traitlets_and_chat_config_agree(kernel, server):
    kernel.run("%config ChatMagics.model = 'from-config'")
    kernel.run("%%chat\nhi")
    assert server.requests[-1].body["model"] == "from-config"
    kernel.run("%chat_config model=from-magic")
    assert kernel.value("get_ipython().config.ChatMagics.model") == "from-config"
    assert kernel.value("__import__('ipychat')._magics._instance.model") == "from-magic"


def test_history_undo_export_and_load(kernel, server, tmp_path):
    kernel.run("%%chat\nfirst")
    kernel.run("%%chat\nsecond")
    path = tmp_path / "h.json"
    assert kernel.run(f"%chat_config --export {path}").status == "ok"
    assert kernel.run("%chat_config --undo").status == "ok"
    history = kernel.run("%chat_config --history").text()
    assert "first" in history and "second" not in history
    assert kernel.run(f"%chat_config --load {path} -s restored").status == "ok"
    kernel.run("%%chat -s restored\nthird")
    sent = [m["content"] for m in server.requests[-1].body["messages"]]
    assert sent == ["first", "Echo: first", "second", "Echo: second", "third"]


def test_interrupt_keeps_the_partial_reply(kernel, server):
    server.token_delay = 0.2
    messages: list[dict] = []

    def interrupt_after_first_update(msg):
        messages.append(msg)
        if msg["msg_type"] == "display_data" and not fired.is_set():
            fired.set()
            threading.Timer(0.5, kernel.km.interrupt_kernel).start()

    fired = threading.Event()
    started = time.perf_counter()
    result = kernel.run("%%chat\n/repeat 200 slow", on_message=interrupt_after_first_update)
    elapsed = time.perf_counter() - started
    line = usage_error(result)
    assert "Interrupted" in line and "_chat" in line
    assert elapsed < 10, "the stream stops at the interrupt, not after 200 x 0.2 s"
    partial = kernel.value("_chat.text")
    assert partial.startswith("slow") and 0 < len(partial.split()) < 200
    assert kernel.value("_chat.complete") is False
    final = result.bundles()[-1]
    assert "incomplete" in final["text/plain"]
    server.token_delay = 0.0
    assert kernel.run("%%chat\nafter the interrupt").status == "ok"
    roles = [m["role"] for m in server.requests[-1].body["messages"]]
    assert roles == ["user", "assistant", "user"]
    assert server.requests[-1].body["messages"][1]["content"] == partial


def test_clean_errors(kernel, server):
    line = usage_error(kernel.run("%%chat\n   \n"))
    assert "empty" in line
    line = usage_error(kernel.run("%%chat -t 5\nhi"))
    assert "temperature" in line and "5" in line
    line = usage_error(kernel.run("%%chat --bogus\nhi"))
    assert "bogus" in line
    assert not server.requests, "no request for bad input"

    server.push_fault(
        Fault(
            "status",
            status=401,
            body={
                "error": {
                    "message": "Incorrect API key provided",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            },
        )
    )
    line = usage_error(kernel.run("%%chat\nhi"))
    assert line == (
        f"UsageError: 401 from {server.base_url}/chat/completions: Incorrect API key provided "
        "(invalid_api_key). Check api_key. Set it with %chat_config --api-key."
    )

    kernel.run("%chat_config base_url=http://127.0.0.1:9 max_retries=0")
    line = usage_error(kernel.run("%%chat\nhi"))
    assert "Could not connect to http://127.0.0.1:9/chat/completions" in line
    history = kernel.run("%chat_config --history").text()
    assert "hi" not in history.split("content")[-1], "failed requests leave no history"


def test_broken_stream_keeps_partial_and_stays_valid(kernel, server):
    server.push_fault(Fault("drop", after_chunks=3))
    line = usage_error(kernel.run("%%chat\none two three four five six"))
    assert "cut off" in line and "partial reply" in line
    assert kernel.value("_chat.complete") is False
    assert kernel.value("_chat.text") == "Echo: one two "
    assert kernel.run("%%chat\nnext").status == "ok"
    roles = [m["role"] for m in server.requests[-1].body["messages"]]
    assert roles == ["user", "assistant", "user"]


def test_retry_is_visible(kernel, server):
    server.push_fault(Fault("status", status=503, headers={"Retry-After": "0.2"}))
    result = kernel.run("%%chat\nplease")
    assert result.status == "ok", result.text()
    assert "retrying in 0.2 s" in result.stderr
    assert len(server.requests) == 2


def test_unload_and_reload(kernel, server):
    assert kernel.run("%unload_ext ipychat").status == "ok"
    result = kernel.run("%%chat\nhi")
    assert "UsageError" in result.stderr or result.status == "error"
    assert kernel.run(f"%load_ext ipychat\n%chat_config base_url={server.base_url}").status == "ok"
    assert kernel.run("%%ipychat\nvia alias").status == "ok"
    assert kernel.value("_chat.text") == "Echo: via alias"
