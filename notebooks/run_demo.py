"""The demo: run notebooks/01-quickstart.ipynb offline in a real kernel and print the chat.

    python notebooks/run_demo.py [--out DIR]

It starts ipychat's bundled server in this process, executes the notebook headlessly in a
fresh IPython kernel that runs this same interpreter and talks to that server (through
`IPYCHAT_BASE_URL`; the user's own ipychat settings and IPython profile are kept out), prints
each `%%chat` prompt and its reply as the cells finish, and writes the executed notebook and
an HTML rendering of it to DIR (default: `out/` at the top of the project). It exits 0 when
every `%%chat` cell left a reply, and 1 with one line saying what failed otherwise.

`tests/test_notebooks.py` runs every notebook through `execute_notebook()` from here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "01-quickstart.ipynb"
DEFAULT_OUT = HERE.parent / "out"
KERNEL_NAME = "ipychat-notebooks"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# Settings that would point the kernel somewhere else than the server we choose.
LEAKY_ENV = ("IPYCHAT_", "OPENAI_", "MPLBACKEND")

CellHook = Callable[..., Any]


class DemoError(Exception):
    """The demo ran but its result is wrong; the message is the one line to print."""


@contextmanager
def _kernel(workdir: Path) -> Iterator[AsyncKernelManager]:
    """A kernel manager whose only kernelspec runs this interpreter with ipykernel."""
    spec = workdir / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    kernel = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (ipychat notebooks)",
        "language": "python",
    }
    (spec / "kernel.json").write_text(json.dumps(kernel), encoding="utf-8")
    options: dict[str, Any] = {}
    if sys.platform != "win32":  # local sockets: no TCP ports, and no warning about them
        options = {"transport": "ipc", "ip": str(workdir / "kernel")}
    yield AsyncKernelManager(
        kernel_name=KERNEL_NAME,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(workdir / "kernels")]),
        **options,
    )


def kernel_env(workdir: Path, base_url: str | None) -> dict[str, str]:
    """This process's environment without the user's ipychat settings, profile or config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_ENV)}
    env["IPYCHAT_CONFIG"] = str(workdir / "ipychat-config.toml")  # does not exist
    env["IPYTHONDIR"] = str(workdir / "ipython")  # no startup files from the user's profile
    if base_url is not None:
        env["IPYCHAT_BASE_URL"] = base_url
    return env


def execute_notebook(
    path: Path,
    *,
    base_url: str | None = None,
    on_cell_executed: CellHook | None = None,
    timeout: int = 60,
) -> nbformat.NotebookNode:
    """Execute the notebook at `path` in a fresh kernel, in its own folder, and return it.

    With `base_url` the kernel gets `IPYCHAT_BASE_URL`, so the notebook uses that server;
    without it the notebook starts its own. Raises nbclient's errors when a cell fails.
    """
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="ipychat-nb-") as tmp, _kernel(Path(tmp)) as km:
        client = NotebookClient(
            nb,
            km=km,
            timeout=timeout,
            store_widget_state=False,  # replies end as static HTML; no widget state to keep
            resources={"metadata": {"path": str(path.parent)}},
            on_cell_executed=on_cell_executed,
        )
        client.execute(env=kernel_env(Path(tmp), base_url), cleanup_kc=True)
    return nb


def is_chat_cell(cell: Any) -> bool:
    """A cell that sends one message; a `--map` batch leaves a summary and a table instead."""
    source = cell.source.lstrip()
    first = source.split("\n", 1)[0]
    return cell.cell_type == "code" and source.startswith(("%%chat", "%%ipychat")) and (
        "--map" not in first
    )


def reply_output(cell: Any) -> dict[str, Any] | None:
    """The output holding the cell's reply: ipychat's static HTML with its plain-text twin."""
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if 'class="ipychat-reply"' in data.get("text/html", "") and "text/plain" in data:
            return output
    return None


def reply_text(cell: Any) -> str | None:
    """The reply's text, without the status line ipychat adds to the plain-text output."""
    output = reply_output(cell)
    if output is None:
        return None
    text, _, status = output["data"]["text/plain"].rpartition("\n\n[")
    return text if text else status


def status_text(cell: Any) -> str:
    output = reply_output(cell)
    plain = output["data"]["text/plain"] if output else ""
    _, sep, status = plain.rpartition("\n\n[")
    return status.rstrip("]") if sep else ""


def check_chat_cells(nb: nbformat.NotebookNode) -> int:
    """Raise DemoError unless every %%chat cell ended with a static reply; return their count."""
    chats = [(i, cell) for i, cell in enumerate(nb.cells) if is_chat_cell(cell)]
    for index, cell in chats:
        if reply_text(cell) is None:
            raise DemoError(f"the %%chat cell {index + 1} has no reply in its outputs")
        if any(WIDGET_MIME in output.get("data", {}) for output in cell.outputs):
            raise DemoError(f"the %%chat cell {index + 1} still shows a live widget")
    return len(chats)


def write_outputs(nb: nbformat.NotebookNode, out: Path, stem: str) -> tuple[Path, Path]:
    """Save the executed notebook and its HTML rendering (nbconvert) as out/STEM.*."""
    from nbconvert import HTMLExporter

    out.mkdir(parents=True, exist_ok=True)
    notebook_path, html_path = out / f"{stem}.ipynb", out / f"{stem}.html"
    nbformat.write(nb, notebook_path)
    html, _ = HTMLExporter().from_notebook_node(nb)
    html_path.write_text(html, encoding="utf-8")
    return notebook_path, html_path


class Narrator:
    """Prints each %%chat prompt and reply as its cell finishes, under its section heading."""

    def __init__(self, nb: nbformat.NotebookNode) -> None:
        self.cells = nb.cells
        self.next_heading = 0  # markdown before this index has been considered

    def __call__(self, cell: Any, cell_index: int, **_: Any) -> None:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                print(textwrap.indent(output["text"].rstrip(), "  ! "), flush=True)
        if not is_chat_cell(cell):
            return
        self._heading(cell_index)
        options, _, prompt = cell.source.partition("\n")
        print(f"[{cell_index + 1}] {options.strip()}")
        print(_labelled("you", prompt))
        reply = reply_text(cell)
        if reply is None:
            print("  (no reply)", flush=True)
            return
        print(_labelled("bot", reply))
        print(f"       ({status_text(cell)})\n", flush=True)

    def _heading(self, cell_index: int) -> None:
        headings = [
            line.lstrip("# ").strip()
            for cell in self.cells[self.next_heading : cell_index]
            if cell.cell_type == "markdown"
            for line in cell.source.splitlines()
            if line.startswith("## ")
        ]
        self.next_heading = cell_index + 1
        if headings:
            print(f"-- {headings[-1]} --")


def _labelled(label: str, text: str) -> str:
    """`  you> first line` with the following lines indented under it."""
    first, *rest = text.strip().splitlines() or [""]
    return "\n".join([f"  {label}> {first}", *(f"       {line}" for line in rest)])


def run(out: Path) -> int:
    import ipychat

    nb_name = NOTEBOOK.relative_to(HERE.parent)
    with ipychat.serve(token_delay=0.02) as server:
        print(f"ipychat demo: bundled server at {server.base_url} (offline, no key)")
        print(f"executing {nb_name} in a fresh kernel ({sys.executable})\n", flush=True)
        narrator = Narrator(nbformat.read(NOTEBOOK, as_version=4))
        nb = execute_notebook(NOTEBOOK, base_url=server.base_url, on_cell_executed=narrator)
    count = check_chat_cells(nb)
    notebook_path, html_path = write_outputs(nb, out, NOTEBOOK.stem)
    print(f"ok: {count} %%chat cells replied")
    print(f"wrote {notebook_path}")
    print(f"wrote {html_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    try:
        return run(args.out)
    except CellExecutionError as error:
        reason = f"{error.ename}: {error.evalue}" if error.ename else str(error).splitlines()[0]
        message = f"a cell of the notebook failed: {reason}"
    except (CellTimeoutError, DeadKernelError, DemoError, OSError, RuntimeError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
    print(f"run_demo: error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
