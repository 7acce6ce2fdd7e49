"""A hostile reply streamed by %%chat in a real JupyterLab runs nothing and stays readable.

The harness's positive controls (test_lab_harness.py) prove that the same payload shown as
HTML, Markdown or an ipywidgets.HTML value does run here, so a pass means ipychat's rendering
made it inert, not that the detector is blind.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .lab import LabResult, run_notebook_in_lab, write_notebook

pytestmark = pytest.mark.browser

HOSTILE = (
    "Look: <img src=x onerror=\"window.__pwned=1;document.title='PWNED'\"> "
    "<script>window.__pwned_script=1</script>\n\n"
    "[click me](javascript:window.__pwned_link=1) and <javascript:window.__pwned_auto=1>\n\n"
    '<svg><a href="javascript:window.__pwned_svg=1"><text y="10">svg</text></a></svg>\n\n'
    "![beacon](http://203.0.113.9/beacon.png)\n\n"
    '<iframe src="javascript:parent.__pwned_iframe=1"></iframe>\n\n'
    '```html\n<img src=x onerror="window.__pwned_code=1">\n```\n'
)

NORMAL = (
    "A **list comprehension** builds a list in one expression:\n\n"
    "```python\nsquares = [n * n for n in range(5)]\nprint(squares)  # [0, 1, 4, 9, 16]\n```\n\n"
    "| form | result |\n|---|---|\n| `[n for n in xs]` | a list |\n| `{n for n in xs}` | a set |\n"
)


# Long enough to stream into the widget form (finished blocks sent once), ending with the table.
PARAGRAPH = (
    "Each element comes from the expression on the left, evaluated once for every item the "
    "loop on the right produces; a condition at the end keeps only the items that pass it. "
)
LONG_NORMAL = NORMAL.split("| form")[0] + "".join(
    f"Step {i}. {PARAGRAPH * 2}\n\n" for i in range(12)
) + NORMAL[NORMAL.index("| form") :]


def chat_notebook(path: Path, reply: str, prompt: str, delay: float = 0.08) -> Path:
    script = [{"prompt": prompt, "reply": reply, "reasoning": "Thinking about the answer."}]
    return write_notebook(
        path,
        [
            "import ipychat\n"
            f"server = ipychat.serve(script={script!r}, token_delay={delay}, chunk_chars=7)\n"
            "%load_ext ipychat\n"
            "%chat_config base_url={server.base_url}",
            f"%%chat\nPlease {prompt}.",
            "_chat",
        ],
    )


def run(lab_server, lab_browser, nb: Path, screenshot: Path) -> LabResult:
    res = run_notebook_in_lab(
        lab_server, nb, browser=lab_browser, timeout=120, screenshot=screenshot
    )
    assert all(isinstance(c, int) for c in res.execution_counts), res.describe()
    return res


def test_hostile_streamed_reply_runs_nothing(lab_server, lab_browser, tmp_path):
    nb = chat_notebook(tmp_path / "hostile.ipynb", HOSTILE, "be hostile")
    res = run(lab_server, lab_browser, nb, tmp_path / "hostile.png")
    assert not res.script_ran, res.describe()
    assert not res.flags, res.describe()
    assert not res.dialogs and not res.title_changed, res.describe()
    assert not res.javascript_links, res.describe()
    assert not res.external_requests, "no image beacon is fetched: " + res.describe()
    text = res.output_text
    assert "<img src=x onerror=" in text, "the markup is shown as text"
    assert "<script>window.__pwned_script=1</script>" in text
    assert "[image: beacon]" in text


def test_normal_reply_streams_and_renders(lab_server, lab_browser, tmp_path):
    nb = chat_notebook(
        tmp_path / "normal.ipynb", LONG_NORMAL, "explain list comprehensions", delay=0.02
    )
    shot, streaming_shot = tmp_path / "normal.png", tmp_path / "streaming.png"
    seen: dict[str, str] = {}

    def look_while_streaming(page):
        """The widget view shows part of the reply, with the streaming status, before the end."""
        status = page.locator(".jp-OutputArea-output .ipychat-status", has_text="streaming")
        status.first.wait_for(timeout=60_000)
        code = page.locator(".jp-OutputArea-output pre", has_text="squares")  # near the start
        code.first.wait_for(timeout=60_000)
        page.locator(".jp-OutputArea-output .widget-html").first.wait_for(timeout=60_000)
        seen["text"] = page.locator(".jp-OutputArea-output").all_inner_texts()[0]
        seen["widget"] = str(page.locator(".jp-OutputArea-output .widget-html").count())
        page.screenshot(path=str(streaming_shot), full_page=True)

    res = run_notebook_in_lab(
        lab_server,
        nb,
        browser=lab_browser,
        timeout=120,
        screenshot=shot,
        while_running=look_while_streaming,
    )
    assert all(isinstance(c, int) for c in res.execution_counts), res.describe()
    assert seen["widget"] != "0", "the reply streams into an ipywidgets view"
    assert "streaming" in seen["text"] and 0 < len(seen["text"]) < len(res.output_text)
    assert "a set" not in seen["text"], "seen before the whole reply had arrived"
    assert not res.script_ran, res.describe()
    assert "squares = [n * n for n in range(5)]" in res.output_text
    assert "list comprehension" in res.output_text
    assert "ipychat-local" in res.output_text, "the status line is shown"
    assert shot.stat().st_size > 10_000
    if keep := os.environ.get("IPYCHAT_KEEP_SCREENSHOT"):  # how docs/streaming.png was made
        shutil.copyfile(streaming_shot, keep)
