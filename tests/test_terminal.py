"""Terminal IPython: replies are printed as they arrive, with no widget or HTML reprs."""

from __future__ import annotations

import os
import subprocess
import sys

from ipychat import LocalServer


def test_terminal_ipython_prints_the_stream(tmp_path):
    script = tmp_path / "chat.ipy"
    script.write_text("%%chat\nhello from a terminal\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IPYCHAT_", "OPENAI_"))}
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    with LocalServer(script=[{"prompt": "terminal", "reply": "Streaming **works** here."}]) as srv:
        env["IPYCHAT_BASE_URL"] = srv.base_url
        env["IPYCHAT_CONFIG"] = str(tmp_path / "none.toml")
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "IPython",
                "--no-banner",
                "--colors=NoColor",
                "--ext",
                "ipychat",
                str(script),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=tmp_path,
        )
    assert out.returncode == 0, out.stderr
    assert "Streaming **works** here.\n" in out.stdout
    for widget_trace in ("HTML(", "widget", "<div", "IPython.core.display"):
        assert widget_trace not in out.stdout + out.stderr
