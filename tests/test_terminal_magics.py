"""Terminal IPython: questions reach the model, and tables wrap with controls made visible."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ipychat import LocalServer

SESSION = """\
%chat What is Python?
r = %chat  -m  other-model  Is 7 prime?
print("PROMPTS:", [m.content for m in __import__("ipychat").sessions.get().messages][::2])
%chat_config --history
"""


@pytest.mark.parametrize("mode", ["script", "interactive"])
def test_questions_and_history_in_terminal_ipython(tmp_path, mode):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IPYCHAT_", "OPENAI_"))}
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    env["COLUMNS"] = "60"
    long_reply = "word " * 40 + "\x1b]0;pwned\x07"
    script = [{"prompt": "Python", "reply": long_reply}]
    with LocalServer(script=script) as srv:
        env["IPYCHAT_BASE_URL"] = srv.base_url
        env["IPYCHAT_CONFIG"] = str(tmp_path / "none.toml")
        command = [sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor"]
        command += ["--ext", "ipychat"]
        if mode == "script":
            (tmp_path / "chat.ipy").write_text(SESSION)
            command.append(str(tmp_path / "chat.ipy"))
            stdin = None
        else:
            command.append("--simple-prompt")
            stdin = SESSION + "exit\n"
        out = subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=tmp_path,
        )
        sent = [r.body["messages"][-1]["content"] for r in srv.requests]
    assert out.returncode == 0, out.stderr
    assert sent == ["What is Python?", "Is 7 prime?"], out.stdout + out.stderr
    assert "PROMPTS: ['What is Python?', 'Is 7 prime?']" in out.stdout
    assert "not found" not in out.stdout + out.stderr
    assert "\x1b]0;pwned" not in out.stdout.split("PROMPTS:")[1], "the table shows, not obeys"
    table = out.stdout.split("PROMPTS:")[1].splitlines()[1:]
    assert max(len(line) for line in table if line.strip()) <= 60, "wrapped to the terminal"
    assert "".join(table).count("word") == 40, "the reply in full, nothing cut"
