"""The classroom benchmark runs end to end at a small size; counts only, no timing goal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ipychat._server import HTTPServer

ROOT = Path(__file__).resolve().parents[1]


def test_a_class_connecting_at_once_is_not_refused(tmp_path: Path) -> None:
    out = tmp_path / "class.json"
    command = [sys.executable, "benchmarks/classroom.py", "--students", "60", "--tokens", "10"]
    done = subprocess.run(
        [*command, "--rate", "50", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert (summary["completed"], summary["refused"], summary["errors"]) == (60, 0, 0)
    ttft = summary["ttft_s"]
    assert 0 < ttft["p50"] <= ttft["p95"] <= ttft["p99"] <= ttft["max"]
    assert HTTPServer.request_queue_size >= 200  # with 5, a class waits on handshake retries
