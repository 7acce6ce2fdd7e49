"""A saved notebook restores its conversations: in cell order, with zero requests.

The round trip runs a notebook with nbclient against the bundled server, saves it, and
restores it in a fresh kernel; the unit tests feed `read_notebook` notebooks from older
versions and hand edits, which restore what they can and name what they skip.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbconvert import HTMLExporter, MarkdownExporter

from ipychat._conversation import SessionRegistry
from ipychat._errors import ConversationError
from ipychat._exchange import MIME_TYPE, exchange_json, read_exchange, secret_redactor
from ipychat._reply import Reply, Usage
from ipychat._restore import notebook_path, read_notebook, restore

from .kernel import Kernel, execute_notebook

CANARY = "sk-canary-7f3a9c1e5b2d4f60"
HEADER = "hdr-canary-90a1b2c3d4e5f6"


def saved(user: str, reply: str, session: str = "default", **extra: object) -> dict:
    data = exchange_json(session=session, prompt=user, reply=Reply(text=reply))
    data.update(extra)
    return data


def reply_output(exchange: object) -> dict:
    return {
        "output_type": "display_data",
        "metadata": {},
        "data": {"text/html": "<div>reply</div>", "text/plain": "reply", MIME_TYPE: exchange},
    }


def write(tmp_path: Path, cells: list[dict], name: str = "nb.ipynb") -> Path:
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    path = tmp_path / name
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def code(cell_id: str | None, source: str, *outputs: dict, count: int | None = None) -> dict:
    cell = {"cell_type": "code", "source": source, "outputs": list(outputs), "metadata": {}}
    cell["execution_count"] = count
    if cell_id is not None:
        cell["id"] = cell_id
    return cell


def test_sessions_come_back_in_cell_order_with_the_cells_ids(tmp_path):
    path = write(
        tmp_path,
        [
            {"cell_type": "markdown", "source": "# notes", "metadata": {}, "id": "md"},
            code("c1", "%%chat\nq1", reply_output(saved("q1", "a1", system="Be brief.")), count=3),
            code("c2", "%%chat -s side\nq2", reply_output(saved("q2", "a2", "side")), count=4),
            code("c3", "r=%chat q3\n%chat q4", reply_output(saved("q3", "a3")),
                 reply_output(saved("q4", "a4")), count=9),
        ],
    )
    registry = SessionRegistry()
    result = restore(path, registry)
    assert result.summary() == (
        "Restored 2 sessions, 4 exchanges from 3 cells of nb.ipynb (default, side)."
    )
    default = registry.get("default")
    assert [m.content for m in default.messages] == ["q1", "a1", "q3", "a3", "q4", "a4"]
    assert default.system == "Be brief."
    assert [(m.cell_id, m.execution_count) for m in default.messages[::2]] == [
        ("c1", 3),
        ("c3", 9),
        ("c3", 9),
    ]
    assert [m.content for m in registry.get("side").messages] == ["q2", "a2"]


def test_a_notebook_from_an_older_ipychat_or_edited_by_hand(tmp_path):
    as_text = json.dumps(saved("q2", "a2"))
    path = write(
        tmp_path,
        [
            code(None, "%%chat\nq1", reply_output(saved("q1", "a1", cell_id="old-id")), count=1),
            code("c2", "%%chat\nq2", reply_output([as_text[:10], as_text[10:]])),  # as lines
            code("c3", "%%chat\nold", {"output_type": "display_data", "metadata": {},
                                        "data": {"text/html": "<p>x</p>", "text/plain": "x"}}),
            code("c4", "%%chat\nbad", reply_output("{not json")),
            code("c5", "%%chat\nempty", reply_output(saved("q5", "  "))),
            code("c6", "%%chat\nwho", reply_output(saved("", "a6"))),
            code("c7", "%%chat\nfmt", reply_output(saved("q7", "a7", format="other"))),
            code("c8", "%%chat\nlist", reply_output([1, 2])),
            code("c9", "%%chat --no-history\nonce",
                 {"output_type": "display_data", "metadata": {}, "data": {"text/html": "x"}}),
            code("c10", "%%chat\nfuture", reply_output(saved("q10", "a10", version=7, extra=1,
                                                             usage="n/a", execution_count="x"))),
        ],
    )
    result = read_notebook(path)
    conv = result.conversations["default"]
    assert [m.content for m in conv.messages if m.role == "user"] == ["q1", "q2", "q10"]
    assert conv.messages[0].cell_id == "old-id", "a cell without an id keeps the saved one"
    assert result.cells == 3
    assert result.skipped[:3] == [
        "cell 3 (a reply without a saved exchange, from an older ipychat)",
        "cell 4 (its exchange is not valid JSON)",
        "cell 5 (its exchange has no reply text)",
    ]
    assert len(result.skipped) == 6
    line = result.summary()
    assert "\n" not in line and line.endswith("; and 1 more.")
    assert "cell 9" not in " ".join(result.skipped), "a one-shot records no exchange to restore"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\xff\xfe", "not text"),
        (b"{", "not valid JSON"),
        (b"[]", "no list of cells"),
        (b'{"worksheets": []}', "nbformat 3"),
    ],
)
def test_what_is_not_a_notebook_is_one_clear_error(tmp_path, content, match):
    path = tmp_path / "x.ipynb"
    path.write_bytes(content)
    with pytest.raises(ConversationError, match=match):
        read_notebook(path)


def test_notebook_path_from_the_front_end(tmp_path, monkeypatch):
    path = write(tmp_path, [])
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert notebook_path({}) is None
    assert notebook_path({"__session__": str(path)}) == path
    assert notebook_path({"__vsc_ipynb_file__": str(path)}) == path
    assert notebook_path({"__session__": str(tmp_path / "gone.ipynb")}) is None
    assert notebook_path({"__session__": "console-1"}) is None, "a console is no notebook"
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    assert notebook_path(None) == path


def test_exchange_json_holds_no_secret_and_reads_back():
    from ipychat._config import Secret, Settings

    settings = Settings()
    settings.set(
        api_key=CANARY,
        base_url="http://user:pa55word-xyz@127.0.0.1:1/v1",
        extra_headers={"X-Token": HEADER},
    )
    resolved = settings.resolve()
    reply = Reply(
        text=f"the header was {HEADER}",
        reasoning="thinking",
        model="m",
        finish_reason="stop",
        usage=Usage(1, 2, 3),
        elapsed=0.5,
        params={"model": "m", "temperature": 0.2, "url": resolved.url, "stream": True},
    )
    data = exchange_json(
        session="s", prompt=f"key {CANARY}", reply=reply, redact=secret_redactor(resolved)
    )
    text = json.dumps(data)
    for secret in (CANARY, HEADER, "pa55word-xyz", "user:", "127.0.0.1"):
        assert secret not in text, secret
    assert data["parameters"] == {"model": "m", "temperature": 0.2, "stream": True}
    back = read_exchange(text)
    masked_key, masked_header = Secret(CANARY).masked(), Secret(HEADER).masked()
    assert back.user == f"key {masked_key}" and back.reply == f"the header was {masked_header}"
    assert back.session == "s"
    assert back.meta["total_tokens"] == 3 and back.meta["elapsed"] == 0.5


# -- the round trip through nbclient and a fresh kernel ------------------------------------


def test_saved_notebook_restores_with_zero_requests(server, tmp_path):
    sources = [
        f"%load_ext ipychat\n%chat_config base_url={server.base_url}\n"
        "import os, ipychat\n"  # the header value comes from the environment, not the source
        "ipychat._magics._instance.settings.set(extra_headers={'X-Team': os.environ['HDR']})",
        "%%chat --system 'Be brief.'\nalpha",
        "%%chat -s side\nside question",
        "%%chat\nbeta",
        "r = %chat gamma",
    ]
    server.clear()
    nb = execute_notebook(sources, tmp_path, IPYCHAT_API_KEY=CANARY, HDR=HEADER)
    assert len(server.requests) == 4
    assert server.requests[-1].headers["x-team"] == HEADER, "the header was sent"
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)

    vendor = [
        o["data"][MIME_TYPE]
        for cell in nbformat.read(path, as_version=4).cells
        for o in cell.get("outputs", [])
        if MIME_TYPE in o.get("data", {})
    ]
    assert [v["user"] for v in vendor] == ["alpha", "side question", "beta", "gamma"]
    for exporter in (HTMLExporter(), MarkdownExporter()):  # exports show replies, not this
        body, _ = exporter.from_notebook_node(nb)
        assert "Echo: beta" in body and "ipychat.exchange" not in body, type(exporter)
    scanned = json.dumps(vendor)
    for secret in (CANARY, CANARY[3:15], CANARY[-12:], HEADER, HEADER[4:16], "Bearer", "X-Team"):
        assert secret not in scanned, secret

    kernel = Kernel.start(tmp_path / "fresh", IPYCHAT_API_KEY=CANARY)
    try:
        setup = kernel.run(f"%load_ext ipychat\n%chat_config base_url={server.base_url}")
        assert setup.status == "ok", setup.text()
        server.clear()
        result = kernel.run(f"%chat_config --restore {path}")
        assert result.status == "ok", result.text()
        assert result.stdout.strip() == (
            "Restored 2 sessions, 4 exchanges from 4 cells of saved.ipynb (default, side)."
        )
        assert server.requests == [], "a restore sends nothing"
        follow = kernel.run("%%chat\nand now?")
        assert follow.status == "ok", follow.text()
        assert server.requests[-1].body["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "alpha"},
            {"role": "assistant", "content": "Echo: alpha"},
            {"role": "user", "content": "beta"},
            {"role": "assistant", "content": "Echo: beta"},
            {"role": "user", "content": "gamma"},
            {"role": "assistant", "content": "Echo: gamma"},
            {"role": "user", "content": "and now?"},
        ]
        # The restored exchanges keep their cells' ids: re-running one replaces its turn.
        beta_id = nb.cells[3].id
        rerun = kernel.run("%%chat\nbeta, again", metadata={"cellId": beta_id})
        assert rerun.status == "ok", rerun.text()
        assert [m["content"] for m in server.requests[-1].body["messages"]][1:] == [
            "alpha",
            "Echo: alpha",
            "beta, again",
        ]
        users = kernel.value(
            "[m.content for m in __import__('ipychat').sessions.get().messages[::2]]"
        )
        assert users == ["alpha", "beta, again", "gamma", "and now?"]
        missing = kernel.run("%chat_config --restore")
        assert "give its path: %chat_config --restore PATH.ipynb" in missing.stderr
    finally:
        kernel.shutdown()


def test_restore_at_load_with_the_traitlet(server, tmp_path):
    nb = write(tmp_path, [code("c1", "%%chat\nq1", reply_output(saved("q1", "a1")), count=1)])
    kernel = Kernel.start(tmp_path / "k", JPY_SESSION_NAME=str(nb))
    try:
        result = kernel.run("%config ChatMagics.restore = True\n%load_ext ipychat")
        assert result.status == "ok", result.text()
        assert "Restored 1 session, 1 exchange from 1 cell of nb.ipynb" in result.stdout
        assert kernel.value("len(__import__('ipychat').sessions.get())") == 1
        again = kernel.run("%chat_config --restore")  # the path from the front end's session
        assert "Restored 1 session" in again.stdout, again.text()
    finally:
        kernel.shutdown()
