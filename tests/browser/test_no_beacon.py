"""No output of ipychat makes the browser fetch anything: a loopback "attacker" logs every try.

JupyterLab typesets `$…$` in HTML outputs with MathJax, whose `\\style{cursor:url(…)}` makes
Chromium fetch the URL with no click; images, `<video poster>` and CSS `url()` fetch too. Hostile
replies (and a hostile model name, shown in the status line) are streamed into `%%chat`, with
the history table, the `_chat` repr and a Markdown export; the notebook is then reopened
trusted and untrusted, exported with nbconvert and opened, and the export previewed. The
attacker must see no request, no script may run, and math must show as MathML.

The positive controls prove each channel would be caught: an `<img>` in a plain HTML output and
MathJax's `\\style` in a plain HTML output both reach the attacker, an image in a previewed
Markdown file does too, while the same `\\style` inside a `mathjax_ignore` element does not
(that is the class JupyterLab 4's MathJax 3 skips, which ipychat puts on its outputs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .lab import AttackerServer, open_html_file, open_in_lab, run_notebook_in_lab, write_notebook

pytestmark = pytest.mark.browser


def hostile_reply(a: AttackerServer) -> str:
    """Every way we know to make a page fetch, each at its own attacker path."""

    def cursor(name: str) -> str:
        return f"\\style{{cursor:url({a.url(name)}),auto}}{{\\,}}"

    return (
        f"Inline ${cursor('m-dollar')}$ and display $${cursor('m-ddollar')}$$.\n\n"
        f"Paren \\({cursor('m-paren')}\\) and bracket \\[{cursor('m-bracket')}\\].\n\n"
        f"Spaced $ {cursor('m-spaced')} $ and prose $5 then {cursor('m-prose')} $10.\n\n"
        f"\\begin{{equation}}{cursor('m-env')}\\end{{equation}}\n\n"
        f"Link ${{\\href{{{a.url('m-href')}}}{{click}}}}$ and "
        f"$\\style{{background:url({a.url('m-bg')})}}{{x}}$.\n\n"
        f"![beacon]({a.url('img-md')}) <img src=\"{a.url('img-raw')}\">\n\n"
        f"<video poster=\"{a.url('video')}\"></video> "
        f"<div style=\"background:url({a.url('css')})\">x</div>\n\n"
        f"<svg><image href=\"{a.url('svg')}\"/></svg>\n\n"
        f"```html\n<img src=\"{a.url('code')}\">\n```\n"
    )


MATHS = (
    "Euler: $e^{i\\pi} + 1 = 0$, and the area under $x^2$:\n\n"
    "$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$\n\n"
    "Pythagoras \\(a^2 + b^2 = c^2\\) and Basel \\[\\sum_{n=1}^{\\infty} \\frac{1}{n^2} = "
    "\\frac{\\pi^2}{6}\\]\n\n"
    "Prices stay prose: it costs $5 and $10, not $3.50."
)


# One 200,000-character line, in prose, in a fence and in a table: it must wrap.
LONG = (
    "WIDE" + "x" * 200_000 + "\n\n```\n" + "y" * 5_000 + "\n```\n\n"
    "| a |\n|---|\n| " + "z" * 3_000 + " |\n"
)
FAST = {"time_to_first_token": 0.05, "tokens_per_second": 100.0, "tokens": 200}  # 2 s in all


def notebook(path: Path, a: AttackerServer) -> Path:
    script = [
        {"prompt": "maths", "reply": MATHS},
        {"prompt": "hostile", "reply": hostile_reply(a)},
        {"prompt": "long", "reply": LONG, "timing": FAST},
    ]
    model = f"$\\style{{cursor:url({a.url('model')}),auto}}{{\\,}}$"
    return write_notebook(
        path,
        [
            "import ipychat\n"
            f"server = ipychat.serve(script={script!r}, token_delay=0.02, chunk_chars=11)\n"
            "%load_ext ipychat\n"
            "%chat_config base_url={server.base_url}\n"
            f'get_ipython().magics_manager.registry["ChatMagics"].settings.set(model={model!r})',
            "%%chat\nShow me some maths.",
            "%%chat\nNow be hostile.",
            "_chat",
            "%chat_config --history",
            "%chat_config --export transcript.md",
            "%%chat\nOne long line.",
        ],
    )


def output(res, words: str) -> int:
    """The index of the (first) output showing `words`."""
    return next(i for i, text in enumerate(res.outputs) if words in text)


WIDTHS = """() => {
  const out = Array.from(document.querySelectorAll('.jp-OutputArea-output'))
    .find((o) => o.innerText.includes('WIDE'));
  const panel = document.querySelector('.jp-NotebookPanel');
  return {output: out.scrollWidth, panel: panel.clientWidth};
}"""


@pytest.fixture(scope="module")
def attacker():
    with AttackerServer() as a:
        yield a


@pytest.fixture(scope="module")
def ran(lab_server, lab_browser, attacker, tmp_path_factory):
    nb = notebook(tmp_path_factory.mktemp("beacon") / "beacon.ipynb", attacker)
    shot = tmp_path_factory.mktemp("shots") / "maths.png"
    widths: dict[str, int] = {}

    def measure(page) -> None:
        """How wide the long-line output is, against the notebook's own width."""
        page.locator(".jp-OutputArea-output", has_text="WIDE").first.wait_for(timeout=120_000)
        page.wait_for_timeout(1000)
        widths.update(page.evaluate(WIDTHS))

    res = run_notebook_in_lab(
        lab_server, nb, browser=lab_browser, timeout=180, screenshot=shot, save=True,
        settle=2.0, while_running=measure,
    )  # fmt: skip
    res.timings.update(widths)
    if keep := os.environ.get("IPYCHAT_MATH_SCREENSHOT"):  # how docs/maths.png was made
        shutil.copyfile(shot, keep)
    return res


def test_live_outputs_fetch_nothing_and_show_math(ran, attacker):
    assert all(isinstance(c, int) for c in ran.execution_counts), ran.describe()
    assert attacker.hits() == [], ran.describe()
    assert not ran.script_ran and not ran.external_requests, ran.describe()
    maths = output(ran, "Euler")
    assert ran.output_html[maths].count("<math") >= 4, "inline, display, \\( and \\[ are MathML"
    assert "costs $5 and $10, not $3.50" in ran.outputs[maths], "prices stay prose"
    assert "mjx-container" not in "".join(ran.output_html), "MathJax typeset nothing of ours"
    hostile = [i for i, text in enumerate(ran.outputs) if "[image: beacon]" in text]
    assert len(hostile) == 2, "the streamed reply and the _chat repr show the payloads as text"
    assert "<img src=" in ran.outputs[hostile[0]]
    assert "be hostile" in ran.outputs[output(ran, "Now be hostile")], "the history table"
    assert "\\u" not in ran.output_text.replace("\\u202e", ""), "nothing was mangled"


def test_a_200000_character_line_wraps(ran):
    assert 0 < ran.timings["output"] <= ran.timings["panel"], ran.timings


def test_saved_notebook_reopened_trusted_and_untrusted_fetches_nothing(
    ran, lab_server, lab_browser, attacker
):
    saved = lab_server.root_dir / ran.notebook
    trusted = run_notebook_in_lab(lab_server, saved, browser=lab_browser, run_all=False)
    assert "<math" in trusted.output_html[output(trusted, "Euler")], "signed: still MathML"
    data = json.loads(saved.read_text())
    data["metadata"]["edited_elsewhere"] = True  # a changed notebook is no longer signed
    untrusted_path = saved.with_name("untrusted.ipynb")
    untrusted_path.write_text(json.dumps(data))
    untrusted = run_notebook_in_lab(lab_server, untrusted_path, browser=lab_browser, run_all=False)
    for res in (trusted, untrusted):
        assert not res.script_ran and not res.external_requests, res.describe()
        assert "Euler" in res.output_text
    assert attacker.hits() == []


def test_html_export_fetches_nothing(ran, lab_server, lab_browser, attacker, tmp_path):
    saved = lab_server.root_dir / ran.notebook
    copy = tmp_path / "export.ipynb"
    copy.write_text(saved.read_text())
    subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "html", str(copy)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    page = open_html_file(tmp_path / "export.html", browser=lab_browser)
    assert not page.flags and not page.dialogs
    assert page.math_elements >= 4, "the export shows MathML too"
    assert "mathjax_ignore tex2jax_ignore" in page.html, "marked for MathJax 2 and 3 alike"
    assert attacker.hits() == []


def test_markdown_export_previewed_in_lab_fetches_nothing(ran, lab_server, lab_browser, attacker):
    transcript = (lab_server.root_dir / ran.notebook).with_name("transcript.md")
    text = transcript.read_text()
    assert "Sanitised for previewing" in text
    page = open_in_lab(lab_server, transcript, browser=lab_browser)
    assert "Euler" in page.text and "image: beacon" in page.text, page.text[:3000]
    assert "<img" not in page.html and "mjx-container" not in page.html
    assert not page.flags and not page.dialogs
    assert attacker.hits() == []


# -- positive controls: the same channels, unprotected, do reach the attacker --------------------


def test_positive_controls_reach_the_attacker(lab_server, lab_browser, tmp_path):
    with AttackerServer() as a:

        def cursor(name: str) -> str:
            return f"$\\style{{cursor:url({a.url(name)}),auto}}{{\\,}}$"

        img = f'<img src="{a.url("control-img")}">'
        plain = f"<p>Math: {cursor('control-math')} here</p>"
        ignored = f"<div class='mathjax_ignore'><p>{cursor('ignored')}</p></div>"
        cells = [
            f"from IPython.display import HTML, display\ndisplay(HTML({img!r}))",
            f"display(HTML({plain!r}))",
            f"display(HTML({ignored!r}))",
        ]
        nb = write_notebook(tmp_path / "controls.ipynb", cells)
        res = run_notebook_in_lab(lab_server, nb, browser=lab_browser, timeout=120, settle=3.0)
        md = tmp_path / "control.md"
        md.write_text(f"![x]({a.url('control-md')})\n\n{cursor('md-math')}\n")
        open_in_lab(lab_server, md, browser=lab_browser, settle=3.0)
        hits = " ".join(a.hits())
    assert "control-img" in hits, "an <img> in a plain HTML output is fetched"
    assert "control-math" in hits, "MathJax's \\style in a plain HTML output is fetched"
    assert "control-md" in hits, "an image in a previewed Markdown file is fetched"
    assert "ignored" not in hits, "MathJax skips a mathjax_ignore element"
    assert "mjx-container" in res.output_html[1], "MathJax typeset the unprotected output"
