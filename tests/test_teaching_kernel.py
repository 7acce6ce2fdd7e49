"""Teaching in a real kernel: `%chat_config --record`, and session budgets with their status."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipychat import LocalServer
from ipychat._lesson import load_script

from .kernel import chat_kernel, usage_error

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def kernel(server, tmp_path_factory):
    k = chat_kernel(tmp_path_factory.mktemp("kernel"), server.base_url)
    yield k
    k.shutdown()


def test_record_this_kernels_replies_then_replay_them(kernel, server, tmp_path: Path) -> None:
    lesson = tmp_path / "lesson.toml"
    started = kernel.run(f"%chat_config --record {lesson}")
    assert started.status == "ok" and f"Recording each %%chat reply to {lesson}" in started.stdout
    for prompt in ("What is a list?", "And a dict?"):
        assert kernel.run(f"%%chat\n{prompt}").status == "ok"
    stopped = kernel.run("%chat_config --record off")
    assert "Stopped recording: 2 turns" in stopped.stdout
    assert kernel.run("%%chat\nnot recorded").status == "ok"
    turns = load_script(lesson)
    assert [t.reply for t in turns] == ["Echo: What is a list?", "Echo: And a dict?"]
    assert turns[0].usage is not None and turns[0].timing is not None
    assert server.base_url not in lesson.read_text(encoding="utf-8")
    with LocalServer(script=lesson, strict=True) as replay:
        kernel.run(f"%chat_config base_url={replay.base_url}")
        again = kernel.run("%%chat\nwhat is  a LIST?")
        kernel.run(f"%chat_config base_url={server.base_url}")
    final = again.bundles()[-1]["text/plain"]
    assert final.startswith("Echo: What is a list?")
    missing = usage_error(kernel.run(f"%chat_config --record {tmp_path / 'no' / 'x.toml'}"))
    assert "its folder does not exist" in missing


def test_session_budget_refuses_in_one_line_and_the_status_shows_what_is_left(
    kernel, server
) -> None:
    assert kernel.run("%chat_config max_requests_per_session=2").status == "ok"
    try:
        first = kernel.run("%%chat -s budgeted\nhello")
        status = first.bundles()[-1]["text/plain"]
        assert "budget: 1/2 requests left" in status
        assert kernel.run("%%chat -s budgeted\nagain").status == "ok"
        asked = len(server.requests)
        line = usage_error(kernel.run("%%chat -s budgeted\nonce more"))
        assert "has used all 2 requests" in line and "nothing was sent" in line
        assert len(server.requests) == asked
    finally:
        kernel.run("%chat_config max_requests_per_session=None")
