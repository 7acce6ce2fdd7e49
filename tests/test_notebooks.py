"""The example notebooks run top to bottom, offline, in a real kernel, and show what they should.

Each notebook is executed once per test run (a module fixture), in a fresh kernel running this
interpreter, against the bundled server it starts itself. The demo command runs 01 again
through `notebooks/run_demo.py`, against a server the demo passes in through the environment.
"""

from __future__ import annotations

import html
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import pytest
from nbconvert import HTMLExporter

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _load(name: str) -> ModuleType:
    """Import a script from notebooks/ (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"notebooks_{name}", NOTEBOOKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run_demo = _load("run_demo")
make_notebooks = _load("make_notebooks")

# What each %%chat cell's reply must contain, in the order of the cells: the echo of the
# bundled server, or the reply of the notebook's script (analysis.toml, lesson.toml, inline).
EXPECTED_REPLIES = {
    "01-quickstart.ipynb": [
        "Echo: Hello! In one sentence, what is Jupyter?",
        "Echo: Who started it, and when?",
        "Echo: What is a kernel?",
        "Echo: Give me three tips for writing clear notebooks.",
        "Echo: Write a haiku about the sea.",
    ],
    "02-capture-and-analyze.ipynb": [
        "It tries every divisor up to the square root of n.",
        "Mercury",
        "Yes: 2, 3, 5, 7, 11, 13, 17 and 19 are all the primes below 20.",
    ],
    "03-teaching.ipynb": [
        "Welcome to today's lesson: strings in Python.",
        "Slicing takes part of a string by position",
        "An f-string puts values into text",
        "Here is an exercise.",
        "One solution:",
        "it is not part of today's lesson on strings",
        "Quick quiz: what is",
        "A list comprehension builds a list in one line",
        "A list comprehension builds a list in one line",
        "Next lesson: lists.",
    ],
    "04-providers.ipynb": [
        "Echo: Describe the ocean in",
        "No. 91 is 7 times 13, so it is not a prime number.",
    ],
    "05-batch.ipynb": [],  # its %%chat --map cell leaves a summary and a table, checked below
}
# What socketserver prints for an exception in a request handler thread, and the one known
# case: a client resetting a kept-alive connection (see test_no_tracebacks).


@pytest.fixture(scope="module")
def executed() -> dict[str, Any]:
    """Every notebook, executed: name -> the executed notebook, or the error that stopped it."""
    results: dict[str, Any] = {}
    for name in EXPECTED_REPLIES:
        try:
            results[name] = run_demo.execute_notebook(NOTEBOOKS / name)
        except Exception as error:  # reported by the test of that notebook
            results[name] = error
    return results


def notebook(executed: dict[str, Any], name: str) -> nbformat.NotebookNode:
    result = executed[name]
    if isinstance(result, Exception):
        pytest.fail(f"{name} did not run to the end: {type(result).__name__}: {result}")
    return result


def chat_cells(nb: nbformat.NotebookNode) -> list[Any]:
    return [cell for cell in nb.cells if run_demo.is_chat_cell(cell)]


def outputs_text(cell: Any) -> str:
    """Everything a cell printed or displayed as text, joined."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        else:
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def cell_after(nb: nbformat.NotebookNode, source_start: str) -> Any:
    """The first code cell whose source starts with `source_start`."""
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith(source_start):
            return cell
    raise AssertionError(f"no code cell starts with {source_start!r}")


names = pytest.mark.parametrize("name", list(EXPECTED_REPLIES))


def test_the_notebooks_are_generated_and_saved_without_outputs() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(EXPECTED_REPLIES)
    assert make_notebooks.main(["--check"]) == 0, "run python notebooks/make_notebooks.py"
    for name in EXPECTED_REPLIES:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name
        assert "widgets" not in nb.metadata, name


@pytest.mark.kernel
@names
def test_every_cell_runs_without_an_error(executed: dict[str, Any], name: str) -> None:
    nb = notebook(executed, name)
    for index, cell in enumerate(nb.cells, start=1):
        if cell.cell_type == "code":
            assert cell.execution_count is not None, f"{name}: cell {index} did not run"
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert not errors, f"{name}: cell {index} raised {errors[0].ename}"


@pytest.mark.kernel
@names
def test_every_chat_cell_shows_its_reply(executed: dict[str, Any], name: str) -> None:
    cells = chat_cells(notebook(executed, name))
    expected = EXPECTED_REPLIES[name]
    assert len(cells) == len(expected), f"{name}: update EXPECTED_REPLIES for its %%chat cells"
    for cell, reply in zip(cells, expected, strict=True):
        output = run_demo.reply_output(cell)
        assert output is not None, f"{name}: no reply output for {cell.source!r}"
        assert reply in output["data"]["text/plain"], cell.source
        assert html.escape(reply, quote=False) in output["data"]["text/html"], cell.source


@pytest.mark.kernel
@names
def test_chat_cells_end_as_static_html_without_widgets(executed: dict[str, Any], name: str) -> None:
    for cell in chat_cells(notebook(executed, name)):
        for output in cell.outputs:
            assert run_demo.WIDGET_MIME not in output.get("data", {}), cell.source
        final = [o for o in cell.outputs if o.output_type != "stream"][-1]
        assert final.output_type == "display_data"
        kept = set(final.data) - {"application/vnd.ipychat.exchange+json"}  # for --restore
        assert kept == {"text/html", "text/plain"}, cell.source
        assert final.data["text/html"].startswith('<div class="ipychat-reply">')


@pytest.mark.kernel
@names
def test_the_html_export_contains_the_replies(executed: dict[str, Any], name: str) -> None:
    page, _ = HTMLExporter().from_notebook_node(notebook(executed, name))
    for reply in EXPECTED_REPLIES[name]:
        assert html.escape(reply, quote=False) in page, reply
    assert page.count('class="ipychat-reply"') == len(EXPECTED_REPLIES[name])


@pytest.mark.kernel
@names
def test_no_tracebacks(executed: dict[str, Any], name: str) -> None:
    """No cell prints a traceback, not even the bundled server's thread inside the kernel."""
    stderr = "".join(
        output.text
        for cell in notebook(executed, name).cells
        for output in cell.get("outputs", [])
        if output.output_type == "stream" and output.name == "stderr"
    )
    assert "Traceback" not in stderr and "Exception occurred" not in stderr, stderr


@pytest.mark.kernel
def test_capture_notebook_pulls_code_json_and_rows_out_of_replies(
    executed: dict[str, Any],
) -> None:
    nb = notebook(executed, "02-capture-and-analyze.ipynb")
    primes = "[2, 3, 5, 7, 11, 13, 17, 19]"
    assert primes in outputs_text(cell_after(nb, "namespace = {}"))
    assert "Mercury  0 moon(s)" in outputs_text(cell_after(nb, "planets = "))
    assert primes in outputs_text(cell_after(nb, "check_reply.prompt"))  # {primes} was filled
    rows = outputs_text(cell_after(nb, "conversation = ipychat.sessions.get()"))
    assert "(0, 'user'" in rows and "(5, 'assistant'" in rows
    table = cell_after(nb, "from IPython.display import display")
    assert "first token (ms)" in outputs_text(table) or any(
        "first token (ms)" in o.get("data", {}).get("text/html", "") for o in table.outputs
    )


@pytest.mark.kernel
def test_batch_notebook_classifies_the_table_plots_it_and_reruns_from_the_cache(
    executed: dict[str, Any],
) -> None:
    nb = notebook(executed, "05-batch.ipynb")
    batch = cell_after(nb, "%%chat --map tickets")
    shown = [o for o in batch.outputs if o.output_type == "display_data"]
    assert "8 of 8 done" in shown[0].data["text/plain"], "the static summary is kept"
    assert run_demo.WIDGET_MIME not in shown[0].data, "the saved notebook needs no widget"
    assert not [o for o in batch.outputs if o.output_type == "execute_result"]
    table = outputs_text(cell_after(nb, "table = labels.to_pandas()"))
    assert "billing" in table and "bug" in table and "account" in table
    plot = cell_after(nb, "import matplotlib.pyplot as plt")
    assert any("image/png" in o.get("data", {}) for o in plot.outputs), "a chart is drawn"
    again = outputs_text(cell_after(nb, "again = ipychat.map("))
    assert "8 from the cache" in again and "failed: {}" in again
    assert "Ticket(category='bug'" in again


@pytest.mark.kernel
def test_teaching_notebook_shows_reasoning_and_refuses_a_broken_script(
    executed: dict[str, Any],
) -> None:
    nb = notebook(executed, "03-teaching.ipynb")
    exercise = run_demo.reply_output(chat_cells(nb)[3])
    assert exercise is not None and "<summary>Reasoning</summary>" in exercise["data"]["text/html"]
    assert "is not a valid regex" in outputs_text(cell_after(nb, "try:"))
    assert "[[turn]]" in outputs_text(cell_after(nb, "from pathlib import Path"))
    recorded = outputs_text(cell_after(nb, "print(recorded.read_text"))
    assert 'match = "text"' in recorded and "[turn.timing]" in recorded
    assert "reasoning = " in recorded and "[turn.usage]" in recorded
    replayed = run_demo.reply_output(chat_cells(nb)[7])
    assert replayed is not None and "<summary>Reasoning</summary>" in replayed["data"]["text/html"]
    refused = outputs_text(cell_after(nb, "import httpx"))
    assert refused.startswith("404 This prompt is not part of the lesson")


@pytest.mark.kernel
def test_providers_notebook_sets_values_masks_the_key_and_returns_to_the_local_server(
    executed: dict[str, Any],
) -> None:
    nb = notebook(executed, "04-providers.ipynb")
    # host= adds /compatible-mode/v1 (read from the HTML table: the text table wraps values)
    outputs = cell_after(nb, "%chat_config host=").outputs
    host = "".join(output.get("data", {}).get("text/html", "") for output in outputs)
    assert "opensearch.aliyuncs.com/compatible-mode/v1" in host
    assert "sk-demo-not-a-real-key-7f3a" not in json.dumps(
        [cell.get("outputs", []) for cell in nb.cells]
    )
    assert "****7f3a" in outputs_text(cell_after(nb, "%chat_config api_key="))
    back = outputs_text(cell_after(nb, "%chat_config --reset"))
    assert "'http://127.0.0.1:" in back and "'ipychat-local'" in back
    truncated = run_demo.reply_output(chat_cells(nb)[0])
    assert truncated is not None and "cut off at max_tokens" in truncated["data"]["text/plain"]
    assert "twenty" not in run_demo.reply_text(chat_cells(nb)[0])
    assert "reasoning: 91 is odd." in outputs_text(cell_after(nb, 'print("reasoning:"'))


@pytest.mark.kernel
def test_the_demo_command_runs_the_quickstart_and_writes_both_files(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, str(NOTEBOOKS / "run_demo.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "you> Hello! In one sentence, what is Jupyter?" in result.stdout
    assert "bot> Echo: Hello! In one sentence, what is Jupyter?" in result.stdout
    assert "ok: 5 %%chat cells replied" in result.stdout
    executed_nb = nbformat.read(out / "01-quickstart.ipynb", as_version=4)
    assert run_demo.check_chat_cells(executed_nb) == 5
    page = (out / "01-quickstart.html").read_text(encoding="utf-8")
    assert "Echo: Write a haiku about the sea." in page
