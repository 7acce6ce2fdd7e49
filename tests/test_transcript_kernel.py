"""The notebook is the transcript, in a real kernel driven as the front ends drive it.

Execute requests carry `metadata.cellId` (JupyterLab, Notebook 7, VS Code) and, from
JupyterLab, `metadata.deletedCells`; the bundled server records what it was sent.
"""

from __future__ import annotations

import json

import pytest

from ipychat._exchange import MIME_TYPE

from . import test_magics_kernel as _magics_tests
from .kernel import usage_error

# The same kernel and per-test reset as the magics tests (an empty session, a calm server).
kernel = _magics_tests.kernel
fresh = _magics_tests.fresh

pytestmark = pytest.mark.kernel

CANARY = "sk-canary-7f3a9c1e5b2d4f60"
HEADER = "hdr-canary-90a1b2c3d4e5f6"


def run_cell(kernel, cell_id, code, deleted=()):
    """Run `code` as the cell `cell_id`, as JupyterLab sends it."""
    metadata = {"cellId": cell_id, "deletedCells": list(deleted), "recordTiming": False}
    result = kernel.run(code, metadata=metadata)
    assert result.status == "ok", result.text()
    return result


def sent(server):
    """The user and assistant contents of each request the server received."""
    return [[m["content"] for m in r.body["messages"]] for r in server.requests]


def history(kernel, session="default"):
    return kernel.value(
        f"[(m.role, m.content, m.cell_id) for m in ipychat.sessions.get({session!r}).messages]"
    )


def test_a_rerun_replaces_its_exchange_and_later_ones_stay(kernel, server):
    run_cell(kernel, "cell-a", "%%chat\nalpha")
    run_cell(kernel, "cell-b", "%%chat\nbeta")
    run_cell(kernel, "cell-c", "%%chat\ngamma")
    run_cell(kernel, "cell-b", "%%chat\nbeta, edited")
    assert sent(server)[-1] == ["alpha", "Echo: alpha", "beta, edited"]
    assert [(role, text) for role, text, _ in history(kernel)] == [
        ("user", "alpha"),
        ("assistant", "Echo: alpha"),
        ("user", "beta, edited"),
        ("assistant", "Echo: beta, edited"),
        ("user", "gamma"),
        ("assistant", "Echo: gamma"),
    ]
    assert [cell for _, _, cell in history(kernel)][::2] == ["cell-a", "cell-b", "cell-c"]


def test_running_top_to_bottom_twice_is_the_same_as_once(kernel, server):
    for _ in range(2):
        for name in ("one", "two", "three"):
            run_cell(kernel, f"cell-{name}", f"%%chat\n{name}")
    assert sent(server)[3] == ["one"], "the second pass's first cell sends no history"
    assert sent(server)[-1] == ["one", "Echo: one", "two", "Echo: two", "three"]
    assert kernel.value("len(ipychat.sessions.get())") == 3


def test_a_deleted_cells_exchange_is_gone(kernel, server):
    run_cell(kernel, "cell-a", "%%chat\nalpha")
    run_cell(kernel, "cell-b", "%%chat\nbeta")
    run_cell(kernel, "cell-x", "x = 1", deleted=["cell-b"])  # any cell's request carries them
    assert [text for role, text, _ in history(kernel) if role == "user"] == ["alpha"]
    run_cell(kernel, "cell-c", "%%chat\ngamma")
    assert sent(server)[-1] == ["alpha", "Echo: alpha", "gamma"]


def test_one_cell_with_several_chat_lines_keeps_all_in_order(kernel, server):
    run_cell(kernel, "cell-a", "%%chat\nalpha")
    code = "r1 = %chat first\nr2 = %chat second\nfor w in ['third', 'fourth']:\n    %chat {w}"
    run_cell(kernel, "cell-many", code)
    run_cell(kernel, "cell-z", "%%chat\nomega")
    users = [text for role, text, _ in history(kernel) if role == "user"]
    assert users == ["alpha", "first", "second", "third", "fourth", "omega"]
    run_cell(kernel, "cell-many", code.replace("first", "FIRST"))
    assert sent(server)[-4] == ["alpha", "Echo: alpha", "FIRST"]
    assert sent(server)[-3][-3:] == ["FIRST", "Echo: FIRST", "second"]
    users = [text for role, text, _ in history(kernel) if role == "user"]
    assert users == ["alpha", "FIRST", "second", "third", "fourth", "omega"]


def test_without_a_cell_id_exchanges_append(kernel, server):
    for _ in range(2):
        result = kernel.run("%%chat\nsame")  # no metadata: a client that sends no cell id
        assert result.status == "ok", result.text()
    assert [text for role, text, _ in history(kernel) if role == "user"] == ["same", "same"]
    assert {cell for _, _, cell in history(kernel)} == {None}


def test_history_table_shows_the_cell_and_records_carry_its_id(kernel, server):
    first = run_cell(kernel, "cell-a", "%%chat\nalpha")
    count = first.reply["content"]["execution_count"]
    result = run_cell(kernel, "cell-h", "%chat_config --history")
    table = result.bundles()[-1]["text/plain"]
    assert f"In [{count}]" in table, table
    rows = kernel.value("ipychat.sessions.get().to_records()")
    assert [(r["cell_id"], r["execution_count"]) for r in rows] == [("cell-a", count)] * 2


def test_the_final_output_carries_the_exchange_without_secrets(kernel, server):
    kernel.run(
        f"%chat_config api_key={CANARY} extra_headers={{'X-Team-Token': '{HEADER}'}}"
    )
    code = f"%%chat -s notes --system 'Be brief.' -t 0.5\nmy key {CANARY}"
    result = run_cell(kernel, "cell-s", code)
    final = result.bundles()[-1]
    assert set(final) == {"text/html", "text/plain", MIME_TYPE}
    exchange = final[MIME_TYPE]
    assert exchange["session"] == "notes" and exchange["cell_id"] == "cell-s"
    assert exchange["system"] == "Be brief."
    masked = f"my key ****{CANARY[-4:]}"  # a secret this long keeps only its last 4 characters
    assert exchange["user"] == masked, "a key pasted into the prompt is masked"
    assert exchange["reply"].startswith("Echo: my key")
    assert exchange["parameters"]["temperature"] == 0.5
    assert exchange["usage"]["total_tokens"] and exchange["timings"]["elapsed"] is not None
    assert exchange["finish_reason"] == "stop" and exchange["ipychat"]
    text = json.dumps(exchange)
    for secret in (CANARY, CANARY[3:15], HEADER, HEADER[4:16], "Authorization", "127.0.0.1"):
        assert secret not in text, secret
    one_shot = run_cell(kernel, "cell-o", "%%chat --no-history\nonce")
    assert MIME_TYPE not in one_shot.bundles()[-1]
    line = run_cell(kernel, "cell-l", "r = %chat a line")
    data = line.bundles()[-1]
    assert data["text/plain"] == "" and data[MIME_TYPE]["user"] == "a line"


def test_a_cell_moved_to_another_session_leaves_the_old_one(kernel, server):
    run_cell(kernel, "cell-a", "%%chat -s one\nalpha")
    run_cell(kernel, "cell-b", "%%chat -s one\nbeta")
    run_cell(kernel, "cell-b", "%%chat -s two\nbeta")
    assert [text for role, text, _ in history(kernel, "one") if role == "user"] == ["alpha"]
    assert [text for role, text, _ in history(kernel, "two") if role == "user"] == ["beta"]


def test_restore_refusals_are_one_line(kernel, tmp_path):
    missing = usage_error(kernel.run(f"%chat_config --restore {tmp_path / 'gone.ipynb'}"))
    assert "No such file or directory" in missing and "gone.ipynb" in missing
    (tmp_path / "bad.ipynb").write_text("{", encoding="utf-8")
    bad = usage_error(kernel.run(f"%chat_config --restore {tmp_path / 'bad.ipynb'}"))
    assert "is not a notebook (not valid JSON" in bad
    unknown = usage_error(kernel.run("%chat_config --restore"))
    assert "give its path: %chat_config --restore PATH.ipynb" in unknown
