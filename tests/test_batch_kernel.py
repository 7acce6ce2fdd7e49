"""`%%chat --map` and `%%chat --schema` in a real kernel, against the bundled server."""

from __future__ import annotations

import threading

import pytest

from .kernel import chat_kernel, usage_error

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def kernel(server, tmp_path_factory):
    home = tmp_path_factory.mktemp("kernel")
    k = chat_kernel(home, server.base_url, "import ipychat", IPYCHAT_CACHE_DIR=str(home / "cache"))
    yield k
    k.shutdown()


def run_ok(kernel, code: str):
    result = kernel.run(code)
    assert result.status == "ok", result.text()
    return result


@pytest.fixture(autouse=True)
def fresh(server, kernel):
    server.clear()
    server.first_token_delay = 0.0


def test_map_over_a_dataframe_shows_progress_then_a_static_summary_and_the_table(kernel, server):
    run_ok(kernel, "import pandas as pd\n"
           "tickets = pd.DataFrame({'text': ['app crashes', 'charged twice'], 'n': [1, 2]})")
    result = run_ok(kernel, "%%chat --map tickets -o out --no-cache\nTicket {n}: {text}")
    first = result.of_type("display_data")[0]["content"]
    assert "application/vnd.jupyter.widget-view+json" in first["data"], "a progress widget"
    final = [
        m["content"]
        for m in result.of_type("update_display_data")
        if m["content"]["transient"]["display_id"] == first["transient"]["display_id"]
    ][-1]
    assert set(final["data"]) == {"text/html", "text/plain"}, "the saved notebook needs no widget"
    assert "2 of 2 done" in final["data"]["text/plain"]
    table = result.of_type("display_data")[-1]["content"]["data"]
    assert "text/html" in table and "Echo: Ticket 1: app crashes" in table["text/plain"]
    assert kernel.value("[r.text for r in out]") == [
        "Echo: Ticket 1: app crashes",
        "Echo: Ticket 2: charged twice",
    ]
    assert kernel.value("_chat is out")
    assert kernel.value("len(ipychat.sessions.get().messages)") == 0, "no history recorded"
    opened = {m["content"]["comm_id"] for m in result.of_type("comm_open")}
    closed = {m["content"]["comm_id"] for m in result.of_type("comm_close")}
    assert opened and opened <= closed, "no progress widget is left open"


def test_map_resumes_from_the_cache_after_an_interrupt(kernel, server):
    server.first_token_delay = 0.2
    kernel.run("items = [f'item {i}' for i in range(40)]")

    def interrupt_when_a_third_is_sent() -> None:
        while len(server.requests) < 14:
            threading.Event().wait(0.01)
        kernel.km.interrupt_kernel()

    threading.Thread(target=interrupt_when_a_third_is_sent, daemon=True).start()
    cell = "%%chat --map items --concurrency 4 -q\nSay {item}"
    line = usage_error(kernel.run(cell, timeout=60))
    assert "Interrupted" in line and "of 40 items finished" in line
    done = kernel.value("_chat.done")
    assert 0 < done < 40
    server.clear()
    server.first_token_delay = 0.0
    result = run_ok(kernel, cell)
    assert not result.of_type("display_data"), "-q shows nothing"
    assert len(server.requests) == 40 - done, "only the items not finished are sent"
    assert kernel.value("_chat.from_cache") == done and kernel.value("_chat.done") == 40


def test_schema_for_a_single_cell_and_for_a_map(kernel, server):
    run_ok(kernel, "from dataclasses import dataclass\nfrom typing import Literal\n"
           "@dataclass\nclass Ticket:\n    category: Literal['bug', 'billing']\n    urgent: bool\n")
    run_ok(kernel, "%%chat --schema Ticket -o t\nThe app crashes: a bug")
    assert kernel.value("type(t.data).__name__") == "Ticket"
    assert kernel.value("t.data.category") == "bug"
    assert server.requests[-1].body["response_format"]["type"] == "json_schema"
    kernel.run("texts = ['a bug', 'billing question']")
    run_ok(kernel, "%%chat --map texts --schema Ticket --no-cache -q\n{item}")
    assert kernel.value("list(_chat.to_pandas()['category'])") == ["bug", "billing"]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("%%chat --map nothing_here\n{item}", "--map needs the name of a list"),
        ("%%chat --map 3x\n{item}", "--map needs the name"),
        ("%%chat --concurrency 4\nhello", "--concurrency only applies with --map"),
        ("%%chat --map ok --concurrency 0\n{item}", "concurrency must be"),
        ("%%chat --map ok --cache x.db --no-cache\n{item}", "not both"),
        ("%%chat --schema nope\nhello", "--schema needs the name"),
        ("%%chat --schema ok\nhello", "--schema ok: A schema must be"),
        ("%%chat --map ok\n   \n", "template is empty"),
        ("%chat --map ok hello", "--map needs a cell"),
        ("%%chat --map ok -o class\n{item}", "-o needs a variable name"),
    ],
)
def test_mistakes_are_one_line(kernel, server, cell, expected):
    kernel.run("ok = [1, 2]")
    line = usage_error(kernel.run(cell))
    assert expected in line
    assert server.requests == []


def test_progress_updates_are_coalesced(kernel, server):
    server.first_token_delay = 0.02
    kernel.run("many = list(range(120))")
    result = run_ok(kernel, "%%chat --map many --concurrency 4 --no-cache\n{item}")
    updates = [m for m in result.of_type("comm_msg") if "state" in m["content"]["data"]]
    drawn = sum("value" in m["content"]["data"]["state"] for m in updates)
    assert 0 < drawn <= 2 * (result.wall / 0.25 + 2), "at most 4 draws a second, 2 widgets each"
    assert kernel.value("_chat.done") == 120


def test_a_map_uses_the_sessions_system_prompt_and_creates_no_session(kernel, server):
    run_ok(kernel, "ipychat.sessions.get('tutor').system = 'Be brief.'\nfew = ['x']")
    run_ok(kernel, "%%chat --map few -s tutor --no-cache -q\n{item}")
    assert server.requests[-1].body["messages"][0] == {"role": "system", "content": "Be brief."}
    run_ok(kernel, "%%chat --map few -s nobody --no-cache -q\n{item}")
    assert [m["role"] for m in server.requests[-1].body["messages"]] == ["user"]
    assert kernel.value("'nobody' in ipychat.sessions") is False
