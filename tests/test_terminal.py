"""Terminal IPython: replies are printed as they arrive, with no widget or HTML reprs."""

from __future__ import annotations

import os
import subprocess
import sys

from ipychat import LocalServer

HOSTILE = (
    "title\x1b]0;pwned\x07 clip\x1b]52;c;ZXZpbA==\x07 clear\x1b[2J\x1b[8mhidden\x1b[0m "
    "link\x1b]8;;http://x.invalid\x1b\\here\x1b]8;;\x1b\\ bare\rcr c1\x9b31m del\x7f end"
)
SCRIPT = [
    {"prompt": "terminal", "reply": "Streaming **works** here."},
    {"prompt": "hostile", "reply": HOSTILE},
]


def run_ipython(tmp_path, source: str) -> subprocess.CompletedProcess[str]:
    """`source` run as an .ipy script by terminal IPython, against the bundled server."""
    script = tmp_path / "chat.ipy"
    script.write_text(source)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IPYCHAT_", "OPENAI_"))}
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    with LocalServer(script=SCRIPT, chunk_chars=3) as srv:
        env["IPYCHAT_BASE_URL"] = srv.base_url
        env["IPYCHAT_CONFIG"] = str(tmp_path / "none.toml")
        return subprocess.run(
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


def test_terminal_ipython_prints_the_stream(tmp_path):
    out = run_ipython(tmp_path, "%%chat\nhello from a terminal\n")
    assert out.returncode == 0, out.stderr
    assert "Streaming **works** here.\n" in out.stdout
    assert "[ipychat-local · " in out.stdout and " tokens · " in out.stdout, "a status line"
    for widget_trace in ("HTML(", "widget", "<div", "IPython.core.display"):
        assert widget_trace not in out.stdout + out.stderr


def test_terminal_ipython_output_of_a_hostile_reply_holds_no_raw_escape(tmp_path):
    # Split into 3-character chunks, so escapes and CR-LF arrive cut in two.
    source = "%%chat\nhostile\n"
    out = run_ipython(tmp_path, source)
    assert out.returncode == 0, out.stderr
    for raw in ("\x1b", "\x07", "\x9b", "\x7f", "\r"):
        assert raw not in out.stdout + out.stderr, repr(raw)
    assert "title\\x1b]0;pwned\\x07 clip\\x1b]52;c;ZXZpbA==\\x07" in out.stdout, "shown, not obeyed"
    assert "bare\\x0dcr c1\\x9b31m del\\x7f end" in out.stdout


def test_assigned_line_magic_prints_nothing(tmp_path):
    source = "r = %chat terminal quiet\nprint('len', len(r.text))\n"
    out = run_ipython(tmp_path, source)
    assert out.returncode == 0, out.stderr
    assert "len 25" in out.stdout
    before = out.stdout.split("len 25")[0]
    assert "Streaming" not in before, "an assigned reply is returned, not printed"


def test_a_reply_shown_by_ipython_is_its_text_and_status_made_terminal_safe():
    from IPython.lib.pretty import pretty

    from ipychat import Reply

    shown = pretty(Reply(text=HOSTILE, model="m\x1b]0;x\x07", elapsed=1.0))
    assert "\x1b" not in shown and "\x07" not in shown and "\r" not in shown
    assert shown.startswith("title\\x1b]0;pwned\\x07")
    assert shown.endswith("[m\\x1b]0;x\\x07 · total 1.00 s]")
