"""The engine works without IPython, and `import ipychat` stays light."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import ipychat

SCRIPT = r"""
import json, sys
import ipychat
light = sorted(m for m in ("httpx", "IPython", "ipywidgets", "markdown_it") if m in sys.modules)
from ipychat import ChatClient, Conversation, Settings, serve
with serve() as server:
    settings = Settings.load(environ={})
    settings.set(base_url=server.base_url, system="Be brief.")
    with ChatClient(settings) as client:
        conversation = Conversation()
        streamed = conversation.send("Hello there", client=client)
        whole = conversation.send("And again", client=client, stream=False)
    roles = [m["role"] for m in server.requests[-1].body["messages"]]
    streamed_flag = [r.body.get("stream", False) for r in server.requests]
print(json.dumps({
    "light": light,
    "ipython": "IPython" in sys.modules,
    "streamed": [streamed.text, streamed.finish_reason, streamed.usage.total_tokens],
    "whole": [whole.text, whole.finish_reason, whole.usage.total_tokens],
    "roles": roles,
    "stream_flags": streamed_flag,
}))
"""


def test_engine_runs_without_ipython():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(out.stdout)
    assert result["light"] == [], "import ipychat loads nothing heavy"
    assert result["ipython"] is False, "the engine never imports IPython"
    assert result["streamed"][:2] == ["Echo: Hello there", "stop"]
    assert result["whole"][:2] == ["Echo: And again", "stop"]
    assert result["streamed"][2] > 0 and result["whole"][2] > 0
    assert result["roles"] == ["system", "user", "assistant", "user"]
    assert result["stream_flags"] == [True, False]


def test_public_api_is_deliberate():
    assert sorted(ipychat.__all__) == sorted(set(ipychat.__all__))
    for name in ipychat.__all__:
        assert getattr(ipychat, name) is not None, name
    with pytest.raises(AttributeError):
        ipychat.not_a_thing  # noqa: B018


def test_chat_taken_by_another_extension_keeps_aliases(capsys):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.register_magic_function(lambda line, cell=None: "theirs", "line_cell", "chat")
        shell.run_line_magic("load_ext", "ipychat")
        assert shell.run_line_magic("chat", "x") == "theirs", "the other extension keeps %chat"
        assert "ipychat_config" in shell.magics_manager.magics["line"]
        assert "ipychat" in shell.magics_manager.magics["cell"]
        assert "%chat" in capsys.readouterr().err
        assert "chat_config" in shell.magics_manager.magics["line"], "free names are still taken"
    finally:
        shell.run_line_magic("unload_ext", "ipychat")
        InteractiveShell.clear_instance()


def test_streamed_replies_reuse_one_connection():
    from ipychat import ChatClient, Settings, serve

    with serve() as server:
        settings = Settings()
        settings.set(base_url=server.base_url)
        with ChatClient(settings) as client:
            texts = [client.send([{"role": "user", "content": f"n{i}"}]).text for i in range(3)]
            pool = client._http._transport._pool  # httpx internals: the open connections
            assert len(pool.connections) == 1, "the body's end is read after [DONE]"
    assert texts == ["Echo: n0", "Echo: n1", "Echo: n2"]


LOAD_SCRIPT = r"""
import json, sys
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.oinspect import getdoc
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "ipychat")
loaded = sorted(m for m in sys.modules if m.startswith("ipychat."))
doc = getdoc(shell.find_line_magic("chat_config"))  # what %chat_config? shows
after_doc = sorted(m for m in sys.modules if m.startswith("ipychat."))
shell.run_line_magic("chat_config", "--sessions")
print(json.dumps({"loaded": loaded, "doc": doc, "after_doc": after_doc,
                  "after_use": sorted(m for m in sys.modules if m.startswith("ipychat."))}))
"""


def test_load_ext_leaves_subcommands_and_conversations_for_first_use(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPYCHAT_")}
    env["IPYCHAT_CONFIG"] = str(tmp_path / "absent.toml")
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    out = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    result = json.loads(out.stdout.splitlines()[-1])
    waiting = {
        "ipychat._config_magic",
        "ipychat._record_magic",
        "ipychat._lesson_write",
        "ipychat._conversation",
        "ipychat._turn",
        "ipychat._keys",
    }
    assert "ipychat._magics" in result["loaded"]
    assert waiting.isdisjoint(result["loaded"]), "%load_ext imports them only when used"
    # %chat_config? builds the parser from the subcommand table: every option is listed.
    for flag in ("--sessions", "--record", "--restore", "--with-key", "assignments"):
        assert flag in result["doc"], flag
    assert "ipychat._config_magic" in result["after_doc"]
    assert "ipychat._conversation" in result["after_use"]
