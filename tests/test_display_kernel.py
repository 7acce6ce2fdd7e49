"""What a front end receives while a reply streams: timely, paced, one exact output at the end."""

from __future__ import annotations

import json
import re
import threading

import pytest

from ipychat import Fault, LocalServer

from .kernel import chat_kernel, execute_notebook, usage_error

pytestmark = pytest.mark.kernel

PARAGRAPH = (
    "A finished paragraph is sent once and never again; only the block being written is sent "
    "anew, so the bytes on the wire grow with the reply and not with its square. "
)
LONG = "\n\n".join(f"## Part {i}\n\n{PARAGRAPH * 3}\n\n- item {i}\n- `code {i}`" for i in range(40))
HOSTILE = "title\x1b]0;pwned\x07 clip\x1b]52;c;ZXZpbA==\x07 clear\x1b[2J bare\rcr csi\x9b31m end"


THINKING = "\n\n".join(f"Consider case {i}: {PARAGRAPH}" for i in range(30))


@pytest.fixture(scope="module")
def server():
    script = [
        {"prompt": "long reply", "reply": LONG},
        {"prompt": "think first", "reply": "The answer is 42.", "reasoning": THINKING},
    ]
    with LocalServer(script=script) as srv:
        yield srv


@pytest.fixture(scope="module")
def kernel(server, tmp_path_factory):
    k = chat_kernel(tmp_path_factory.mktemp("display"), server.base_url)
    yield k
    k.shutdown()


@pytest.fixture(autouse=True)
def fresh(server, kernel):
    server.clear()
    server.token_delay = 0.0
    server.first_token_delay = 0.0
    assert kernel.run("import ipychat; ipychat.sessions.clear()").status == "ok"


def shown_texts(messages: list[dict]) -> list[str]:
    """The HTML of every display message and widget value, in the order they arrived."""
    texts = []
    for message in messages:
        content = message["content"]
        if message["msg_type"] in ("display_data", "update_display_data"):
            texts.append(content["data"].get("text/html", ""))
        elif message["msg_type"] in ("comm_msg", "comm_open"):
            state = content["data"].get("state", {})
            if "value" in state:
                texts.append(state["value"])
    return texts


def test_pending_text_shows_during_a_pause_and_the_time_moves(kernel, server):
    # Echo: one two three four | stall | five six ...: the old display showed "four" only
    # when "five" arrived, and its elapsed time stood still meanwhile.
    server.push_fault(Fault("stall", after_chunks=5, seconds=3.0))
    seen: list[dict] = []
    result = kernel.run("%%chat\none two three four five six", on_message=seen.append)
    assert result.status == "ok", result.text()
    texts = shown_texts(result.messages)
    paused = [t for t in texts if "four" in t and "five" not in t]
    assert paused, f"the text before the pause is shown during it: {texts}"
    elapsed = [
        float(m)
        for t in texts
        if "four" in t and "five" not in t
        for m in re.findall(r"elapsed (\d+\.\d) s", t)
    ]
    assert len(set(elapsed)) >= 2 and max(elapsed) >= 1.0, f"the time moves: {elapsed}"
    assert kernel.value("_chat.text") == "Echo: one two three four five six"


def test_waiting_status_and_one_first_token(kernel, server):
    server.first_token_delay = 2.5
    server.token_delay = 0.1
    result = kernel.run("%%chat\nslow start " + "word " * 30)
    assert result.status == "ok", result.text()
    texts = shown_texts(result.messages)
    assert "waiting" in texts[0] and "slow start" not in texts[0], texts[0]
    assert not any("streaming" in t for t in texts if "Echo" not in t), "waiting until text"
    live = [re.search(r"first token (\d+\.\d\d) s", t) for t in texts[:-1]]
    live_values = {m.group(1) for m in live if m}
    final = re.search(r"first token (\d+\.\d\d) s", result.bundles()[-1]["text/plain"])
    assert final and live_values == {final.group(1)}, (live_values, final)


def test_keep_alives_before_the_first_token_say_the_server_is_alive(kernel, server):
    server.push_fault(Fault("keepalive", after_chunks=0, seconds=2.5, every=0.25))
    result = kernel.run("%%chat\nare you there")
    assert result.status == "ok", result.text()
    texts = shown_texts(result.messages)
    alive = [t for t in texts if "waiting, server alive" in t]
    assert alive and "Echo" not in alive[0], texts
    assert result.bundles()[-1]["text/plain"].startswith("Echo: are you there")


def test_long_reasoning_streams_then_folds_above_the_answer(kernel, server):
    server.token_delay = 0.0005
    result = kernel.run("%%chat\nthink first", timeout=120)
    assert result.status == "ok", result.text()
    assert result.of_type("comm_open"), "long reasoning streams into widgets"
    live = [t for t in shown_texts(result.messages)[:-1] if "Consider case" in t]
    assert live, "the reasoning is shown while it streams"
    final = result.bundles()[-1]
    assert "<details" in final["text/html"] and "Consider case 29" in final["text/html"]
    assert final["text/plain"].startswith("The answer is 42.")
    assert kernel.value("_chat.reasoning") == THINKING
    opened = {m["content"]["comm_id"] for m in result.of_type("comm_open")}
    assert opened == {m["content"]["comm_id"] for m in result.of_type("comm_close")}


def test_no_stream_says_waiting_not_streaming(kernel, server):
    server.first_token_delay = 2.0
    result = kernel.run("%%chat --no-stream\npatience")
    assert result.status == "ok", result.text()
    texts = shown_texts(result.messages)
    assert "waiting" in texts[0]
    assert not any("streaming" in t for t in texts)
    assert result.bundles()[-1]["text/plain"].startswith("Echo: patience")


def test_long_reply_is_one_exact_output_with_linear_wire_cost(kernel, server):
    server.token_delay = 0.001
    result = kernel.run("%%chat\nlong reply", timeout=120)
    assert result.status == "ok", result.text()
    shown = result.of_type("display_data")
    assert len(shown) == 1, "one output per reply"
    display_id = shown[0]["content"]["transient"]["display_id"]
    last = result.of_type("display_data", "update_display_data")[-1]["content"]
    assert last["transient"]["display_id"] == display_id
    final = last["data"]
    kept = {"text/html", "text/plain", "application/vnd.ipychat.exchange+json"}
    assert set(final) == kept, "the saved output holds no widget"
    assert final["text/plain"].split("\n\n[")[0] == LONG, "the final text is exact"
    assert final["text/html"].count("<h2>") == 40
    assert result.of_type("comm_open"), "a long reply streams into widgets"
    opened = {m["content"]["comm_id"] for m in result.of_type("comm_open")}
    closed = {m["content"]["comm_id"] for m in result.of_type("comm_close")}
    assert opened == closed, "every widget is closed: none is saved"
    updates = len(result.of_type("comm_msg", "update_display_data"))
    assert updates <= 20 * result.wall + 2, (updates, result.wall)
    parts = ("header", "parent_header", "metadata", "content")
    received = sum(
        len(json.dumps([m[p] for p in parts], default=str, ensure_ascii=False))
        for m in result.messages
        if m["msg_type"] != "execute_input"
    )
    saved = len(json.dumps(final, ensure_ascii=False))
    assert received <= 3 * saved, (received, saved)


def test_interrupt_in_a_stalled_stream_keeps_the_partial_reply(kernel, server):
    server.push_fault(Fault("stall", after_chunks=3, seconds=30))
    fired = threading.Event()

    def interrupt_when_shown(msg):
        if msg["msg_type"] == "display_data" and not fired.is_set():
            fired.set()
            threading.Timer(0.5, kernel.km.interrupt_kernel).start()

    result = kernel.run("%%chat\nalpha beta gamma delta", on_message=interrupt_when_shown)
    line = usage_error(result)
    assert "Interrupted" in line and "_chat" in line, line
    assert kernel.value("_chat.text") == "Echo: alpha beta "
    assert kernel.value("_chat.complete") is False
    assert kernel.run("%%chat\nnext").status == "ok"
    sent = [m["content"] for m in server.requests[-1].body["messages"]]
    assert sent == ["alpha beta gamma delta", "Echo: alpha beta ", "next"]


def test_saved_notebook_has_no_empty_outputs(server, tmp_path):
    cells = [
        f"%load_ext ipychat\n%chat_config base_url={server.base_url}",
        "x = %chat returned, not shown",
        "print(x.text)",
        "%%chat\nshown once",
        "%chat_config base_url=http://127.0.0.1:9 max_retries=0",
        "%%chat\nfails at once",
    ]
    nb = execute_notebook(cells, tmp_path, allow_errors=True)
    outputs = [cell.outputs for cell in nb.cells]
    # An assigned line magic shows nothing; only its exchange is kept, for --restore.
    assert [{k: v for k, v in o["data"].items() if k.startswith("text/")} for o in outputs[1]] == [
        {"text/plain": ""}
    ]
    assert outputs[2][0]["text"] == "Echo: returned, not shown\n"
    assert [o["output_type"] for o in outputs[3]] == ["display_data"]
    assert {"text/html", "text/plain"} <= set(outputs[3][0]["data"])
    assert "application/vnd.jupyter.widget-view+json" not in outputs[3][0]["data"]
    assert all(o["output_type"] != "display_data" for o in outputs[5]), outputs[5]
    assert any("UsageError" in o.get("text", "") + o.get("ename", "") for o in outputs[5])
    for cell in nb.cells:
        for output in cell.outputs:
            assert output.get("data", True), f"an output with no data: {cell.source!r}"
    assert "widgets" not in nb.metadata, "no widget state is saved"
