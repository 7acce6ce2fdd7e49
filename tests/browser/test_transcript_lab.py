"""In JupyterLab the conversation follows the notebook: re-runs, deletions, save and restore.

Three `%%chat` cells run; the second is edited and re-run, the third deleted; the notebook is
saved, the kernel restarted, `%chat_config --restore` (no path: JupyterLab tells the kernel
which notebook it is) rebuilds the session, and a follow-up is sent. The bundled server runs
in this test process and records what each request carried.
"""

from __future__ import annotations

import contextlib
import json
import uuid

import pytest

from .lab import _JS_FIND_PANEL, _JS_KERNEL_READY, _JS_SAVE, _relpath_in_root, write_notebook

pytestmark = pytest.mark.browser

# Runs the cell at an index and resolves when JupyterLab says its execution finished.
_JS_RUN_CELL = f"""
async ([path, index]) => {{
  const app = window.jupyterapp;
  const w = ({_JS_FIND_PANEL})(path);
  app.shell.activateById(w.id);
  w.content.activeCellIndex = index;
  w.content.deselectAll();
  return String(await app.commands.execute('notebook:run-cell'));
}}
"""

_JS_SET_SOURCE = f"""
([path, index, source]) => {{
  const w = ({_JS_FIND_PANEL})(path);
  w.content.widgets[index].model.sharedModel.setSource(source);
}}
"""

# Deleting through the command is what records the cell in the model's `deletedCells`.
_JS_DELETE_CELL = f"""
async ([path, index]) => {{
  const app = window.jupyterapp;
  const w = ({_JS_FIND_PANEL})(path);
  w.content.activeCellIndex = index;
  w.content.deselectAll();
  await app.commands.execute('notebook:delete-cell');
  return w.content.model.deletedCells.slice();
}}
"""

_JS_OUTPUT_TEXT = f"""
([path, index]) => {{
  const w = ({_JS_FIND_PANEL})(path);
  return w.content.widgets[index].outputArea.node.innerText;
}}
"""

_JS_RESTART = f"""
async (path) => {{
  const w = ({_JS_FIND_PANEL})(path);
  await w.sessionContext.session.kernel.restart();
}}
"""

USERS = "import ipychat\nprint('USERS', [m.content for m in ipychat.sessions.get().messages[::2]])"


def user_turns(request) -> list[str]:
    return [m["content"] for m in request.body["messages"] if m["role"] == "user"]


def test_rerun_delete_save_restart_restore_follow_up(lab_server, lab_browser, server, tmp_path):
    nb = write_notebook(
        tmp_path / f"transcript-{uuid.uuid4().hex[:6]}.ipynb",
        [
            f"%load_ext ipychat\n%chat_config base_url={server.base_url}",
            "%%chat\nfirst question",
            "%%chat\nsecond question",
            "%%chat\nthird question",
            USERS,
            "%chat_config --restore",
            "%%chat\nfollow-up",
        ],
    )
    relpath = _relpath_in_root(lab_server, nb)
    context = lab_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(90_000)

    def run(index: int) -> str:
        page.evaluate(_JS_RUN_CELL, [relpath, index])
        page.wait_for_function(_JS_KERNEL_READY, arg=relpath)
        return page.evaluate(_JS_OUTPUT_TEXT, [relpath, index])

    server.clear()
    try:
        # JupyterLab starts the kernel itself, so it tells it the notebook's path its own way.
        page.goto(lab_server.lab_url(relpath, workspace=f"t{uuid.uuid4().hex[:10]}"))
        page.wait_for_function(_JS_KERNEL_READY, arg=relpath)
        for index in range(4):
            run(index)
        assert [user_turns(r) for r in server.requests] == [
            ["first question"],
            ["first question", "second question"],
            ["first question", "second question", "third question"],
        ]

        page.evaluate(_JS_SET_SOURCE, [relpath, 2, "%%chat\nsecond question, edited"])
        assert "Echo: second question, edited" in run(2)
        assert user_turns(server.requests[-1]) == ["first question", "second question, edited"]

        deleted = page.evaluate(_JS_DELETE_CELL, [relpath, 3])
        assert len(deleted) == 1, "JupyterLab keeps the deleted cell's id for the next request"
        # Cells now: setup, first, second, USERS, restore, follow-up. The next execute request
        # carries deletedCells, and the kernel drops the third cell's exchange.
        users = run(3)
        assert "USERS ['first question', 'second question, edited']" in users, users

        page.evaluate(_JS_SAVE, relpath)
        saved = json.loads((lab_server.root_dir / relpath).read_text(encoding="utf-8"))
        vendor = [
            o["data"]["application/vnd.ipychat.exchange+json"]
            for c in saved["cells"]
            for o in c.get("outputs", [])
            if "application/vnd.ipychat.exchange+json" in o.get("data", {})
        ]
        assert [v["user"] for v in vendor] == ["first question", "second question, edited"]
        assert vendor[0]["cell_id"] == saved["cells"][1]["id"], "JupyterLab sends nbformat ids"

        page.evaluate(_JS_RESTART, relpath)
        page.wait_for_function(_JS_KERNEL_READY, arg=relpath)
        server.clear()
        run(0)
        restored = run(4)
        assert (
            f"Restored 1 session, 2 exchanges from 2 cells of {nb.name} (default)." in restored
        ), restored
        assert server.requests == [], "the restore sent nothing"
        assert "Echo: follow-up" in run(5)
        assert len(server.requests) == 1
        assert server.requests[0].body["messages"] == [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "Echo: first question"},
            {"role": "user", "content": "second question, edited"},
            {"role": "assistant", "content": "Echo: second question, edited"},
            {"role": "user", "content": "follow-up"},
        ]
    finally:
        with contextlib.suppress(Exception):
            context.close()
        with contextlib.suppress(Exception):
            for session in lab_server.api("GET", "/api/sessions"):
                if session.get("path") == relpath:
                    lab_server.api("DELETE", f"/api/sessions/{session['id']}")
