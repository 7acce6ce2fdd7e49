"""`python -m ipychat serve`: the command line, its signals and its errors."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ipychat._server import serve

from ..cli import ROOT, run_cli, run_env
from .conftest import ask, chat


def test_cli_help_does_not_load_ipython_or_httpx() -> None:
    result = run_cli("--help", python=("-X", "importtime"))
    assert result.returncode == 0
    assert "serve" in result.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()]
    assert "ipychat._server" in imported
    assert not [name for name in imported if name.split(".")[0] in ("IPython", "httpx")]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_cli_serve_answers_and_stops_on_signal(signum: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "ipychat", "serve", "--port", "0", "--model", "tutor"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=run_env(),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(
            r"ipychat local server on (http://127\.0\.0\.1:\d+/v1) \(Ctrl-C to stop\)\n", line
        )
        assert match, line
        reply = httpx.post(match[1] + "/chat/completions", json=ask("hi"), timeout=5).json()
        assert reply["choices"][0]["message"]["content"] == "Echo: hi"
        assert httpx.get(match[1] + "/models", timeout=5).json()["data"][0]["id"] == "tutor"
        process.send_signal(signum)
        assert process.wait(timeout=5) == 0
        assert process.stderr is not None and process.stderr.read() == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_serve_reports_a_bad_script(tmp_path: Path) -> None:
    script = tmp_path / "broken.toml"
    script.write_text('[[turn]]\nprompt = "("\nreply = "x"\n', encoding="utf-8")
    result = run_cli("serve", "--port", "0", "--script", str(script))
    assert result.returncode == 1
    assert "broken.toml: turn 1" in result.stderr


def test_stop_closes_idle_keep_alive_connections() -> None:
    server = serve()
    with httpx.Client(base_url=server.base_url, timeout=2) as client:
        assert client.post("/chat/completions", json=chat()).status_code == 200
        server.stop()
        with pytest.raises(httpx.TransportError):
            client.post("/chat/completions", json=chat())
