"""Run notebooks in a real JupyterLab + headless Chromium and report what executed.

The point of this harness is to *prove* (not assume) whether the outputs of an
executed notebook can run script in JupyterLab.  Test notebooks plant canaries
such as ``<img src=x onerror="window.__pwned=1;document.title='PWNED'">`` and
the harness reports every way script could have shown itself:

* ``flags``: every ``window.__pwned*`` global (main page and any popups),
* ``title_changed``: ``document.title`` differed from ``initial_title`` at any
  moment (``titles_seen`` is the history; JupyterLab often resets the title
  right after a payload changed it, so the final ``title`` alone misses it),
* ``dialogs``: ``alert``/``confirm``/``prompt`` dialogs (recorded, dismissed),
* ``console`` / ``page_errors``: browser console messages and uncaught errors,
* ``external_requests``: requests to anything but loopback (always blocked),
* ``outputs`` / ``output_html`` / ``links``: what the output areas contain;
  ``javascript_links`` lists ``javascript:`` hrefs, which are also clicked.

``result.script_ran`` is true if a flag, a title change or a JS dialog was seen.
Also assert ``not result.javascript_links``: JupyterLab gives HTML links
``target=_blank rel=noopener`` and Chromium then does *not* run a clicked
``javascript:`` URL, but another browser or an SVG ``<a>`` (no target) would.

Observed with JupyterLab 4.6 (see test_lab_harness.py): outputs of cells run
in the session are trusted and NOT sanitized, so ``<img onerror>`` runs from
``HTML(...)``, ``Markdown(...)`` (``<script>`` too) and ``ipywidgets.HTML``;
a notebook saved from JupyterLab is signed, so its outputs run again when
reopened; an unsigned notebook's saved outputs are sanitized.

Typical use (see ``conftest.py`` for the ``lab_server``/``lab_browser`` fixtures)::

    from .lab import run_notebook_in_lab, write_notebook

    def test_x(lab_server, lab_browser, tmp_path):
        nb = write_notebook(tmp_path / "x.ipynb", ["print('hi')"])
        res = run_notebook_in_lab(lab_server, nb, browser=lab_browser)
        assert not res.script_ran, res.describe()

Nothing here imports jupyterlab or playwright at import time, so collecting
this package works on machines without them (the fixtures skip or fail).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from playwright.sync_api import Browser, Page

CHROMIUM = Path(os.environ.get("IPYCHAT_CHROMIUM", "/usr/bin/chromium"))

#: Flags for Debian's Chromium.  Without the background-networking ones it
#: hangs on refused connections in the sandbox; host-resolver-rules makes
#: any non-loopback host name unresolvable (the route in run_notebook_in_lab
#: also aborts non-loopback requests, including IP literals).
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
)

#: Network URLs whose host is not loopback.  Used as the Playwright route
#: pattern: a regex is matched inside Playwright's driver, so loopback
#: requests (all of JupyterLab) don't round-trip through Python.
NON_LOOPBACK_URL = re.compile(
    r"^(?:https?|wss?|ftp)://(?!(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?(?:[/?#]|$))",
    re.IGNORECASE,
)

# Settings written into the temporary JUPYTERLAB_SETTINGS_DIR.
_LAB_SETTINGS: dict[str, dict[str, Any]] = {
    # No news / update checks (they would try to reach the internet) and no
    # "Would you like to receive official Jupyter news?" toast.
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    # Attach every cell to the DOM, so off-screen outputs exist and are read.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


def chromium_available() -> bool:
    return CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_requirements() -> list[str]:
    """What the browser tests need but this machine lacks (empty if all there)."""
    import importlib.util

    missing = []
    if not chromium_available():
        missing.append(f"{CHROMIUM} (run .ci/install-browser)")
    for mod in ("jupyterlab", "playwright", "ipykernel"):
        if importlib.util.find_spec(mod) is None:
            missing.append(f"python package {mod!r}")
    return missing


def require_browser_stack() -> None:
    """Skip the calling test unless Chromium and the Python deps are there.

    With ``CI`` set (``CI=true``) a missing piece fails the test instead, so a
    broken install can never turn the browser tests into green skips.
    """
    import pytest

    missing = missing_requirements()
    if not missing:
        return
    reason = "browser tests need " + ", ".join(missing)
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this is an error, not a skip)")
    pytest.skip(reason)


# ---------------------------------------------------------------------------
# JupyterLab server
# ---------------------------------------------------------------------------


@dataclass
class LabServer:
    """A running JupyterLab started by :func:`start_lab`."""

    port: int
    token: str
    root_dir: Path
    base_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    startup_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lab_url(self, relpath: str, *, workspace: str | None = None) -> str:
        quoted = urllib.parse.quote(relpath)
        prefix = f"/lab/workspaces/{workspace}" if workspace else "/lab"
        return f"{self.url}{prefix}/tree/{quoted}?token={self.token}"

    def api(self, method: str, path: str, body: Any = None, *, timeout: float = 10.0) -> Any:
        """Call the Jupyter server REST API; returns decoded JSON (or None)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def shutdown_kernels(self) -> None:
        with contextlib.suppress(Exception):
            for sess in self.api("GET", "/api/sessions"):
                with contextlib.suppress(Exception):
                    self.api("DELETE", f"/api/sessions/{sess['id']}")
        with contextlib.suppress(Exception):
            for kern in self.api("GET", "/api/kernels"):
                with contextlib.suppress(Exception):
                    self.api("DELETE", f"/api/kernels/{kern['id']}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# jsonschema (imported by the server through jupyter_events) imports the
# optional rfc3987_syntax, which builds a Lark grammar at import time: 3-7 s
# on a 2-core machine.  jsonschema guards that import with
# suppress(ImportError) and only loses its "iri" format check without it.
_SLOW_IMPORT_SHIM = (
    '"""Test-harness shim: make the optional, slow rfc3987_syntax unavailable."""\n'
    'raise ImportError("rfc3987_syntax disabled by tests/browser/lab.py")\n'
)


def _prepare_dirs(base: Path, python: str, *, skip_slow_imports: bool) -> dict[str, str]:
    """Create isolated Jupyter/home dirs and a python3 kernelspec -> ``python``."""
    dirs = {
        name: base / name
        for name in ("data", "config", "runtime", "home", "settings", "workspaces", "ipython")
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    spec_dir = dirs["data"] / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
                "metadata": {"debugger": False},
            },
            indent=1,
        )
    )
    for plugin, values in _LAB_SETTINGS.items():
        pkg, name = plugin.rsplit("/", 1)
        target = dirs["settings"] / pkg / f"{name}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JUPYTER", "JPY_", "IPYTHON", "XDG_"))
    }
    home = str(dirs["home"])
    env.update(
        HOME=home,
        XDG_CONFIG_HOME=os.path.join(home, ".config"),
        XDG_CACHE_HOME=os.path.join(home, ".cache"),
        XDG_DATA_HOME=os.path.join(home, ".local", "share"),
        # JUPYTER_PATH is searched before every other data dir, so our
        # python3 kernelspec wins over any kernel.json saying plain "python".
        JUPYTER_PATH=str(dirs["data"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
        IPYTHONDIR=str(dirs["ipython"]),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
        MPLBACKEND="Agg",
    )
    if skip_slow_imports:
        shim = base / "pyshim" / "rfc3987_syntax"
        shim.mkdir(parents=True, exist_ok=True)
        (shim / "__init__.py").write_text(_SLOW_IMPORT_SHIM)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(shim.parent), env.get("PYTHONPATH", "")) if p
        )
    return env


@contextlib.contextmanager
def start_lab(
    root_dir: Path | None = None,
    *,
    python: str | None = None,
    startup_timeout: float = 60.0,
    extra_env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    skip_slow_imports: bool = True,
) -> Iterator[LabServer]:
    """Start JupyterLab on 127.0.0.1 as a subprocess; stop it (process group) on exit.

    ``python`` (default ``sys.executable``) runs both the server and the
    ``python3`` kernel.  ``root_dir`` defaults to a fresh temp dir.
    ``extra_env`` is added to the server's (and so the kernels') environment,
    e.g. ``{"IPYCHAT_BASE_URL": ...}``; a ``PYTHONPATH`` given there replaces
    the shim path (see ``skip_slow_imports``), so include it if you want both.
    ``skip_slow_imports`` hides the optional ``rfc3987_syntax`` package from
    the server and kernels (saves seconds of startup; see _SLOW_IMPORT_SHIM).
    """
    python = python or sys.executable
    base = Path(tempfile.mkdtemp(prefix="ipychat-lab-"))
    root = Path(root_dir) if root_dir is not None else base / "root"
    root.mkdir(parents=True, exist_ok=True)
    env = _prepare_dirs(base, python, skip_slow_imports=skip_slow_imports)
    if extra_env:
        env.update(extra_env)
    token = secrets.token_hex(24)
    log_path = base / "jupyterlab.log"
    server: LabServer | None = None
    t0 = time.monotonic()
    try:
        last_error = ""
        for _attempt in range(3):
            port = _free_port()
            cmd = [
                python,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                "--ServerApp.open_browser=False",
                "--ServerApp.terminals_enabled=False",
                "--ServerApp.shutdown_no_activity_timeout=0",
                "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.expose_app_in_browser=True",
                "--LabServerApp.extra_labextensions_path=[]",
                "--LanguageServerManager.autodetect=False",
                "--Application.log_level=WARN",
                *extra_args,
            ]
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                cmd.append("--allow-root")  # CI runs as root
            log_start = log_path.stat().st_size if log_path.exists() else 0
            log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
            try:
                proc = subprocess.Popen(
                    cmd,
                    cwd=str(root),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            finally:
                log.close()
            server = LabServer(
                port=port,
                token=token,
                root_dir=root,
                base_dir=base,
                env=env,
                process=proc,
                log_path=log_path,
            )
            deadline = time.monotonic() + startup_timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    last_error = f"exited with {proc.returncode}"
                    break
                try:
                    server.api("GET", "/api/status", timeout=2)
                    server.startup_seconds = time.monotonic() - t0
                    break
                except (urllib.error.URLError, OSError, ValueError):
                    time.sleep(0.1)
            else:
                last_error = f"no answer on /api/status after {startup_timeout:.0f}s"
            if server.startup_seconds:
                break
            _stop(server)
            server = None
            attempt_log = log_path.read_bytes()[log_start:].decode(errors="replace")
            if "already in use" not in attempt_log:
                break  # only a lost race for the port is worth another try
        if server is None:
            tail = log_path.read_text(errors="replace")[-4000:] if log_path.exists() else ""
            raise RuntimeError(f"JupyterLab did not start ({last_error}). Log tail:\n{tail}")
        yield server
    finally:
        if server is not None:
            _stop(server)
        if os.environ.get("IPYCHAT_KEEP_LAB_DIR"):  # keep logs/settings for debugging
            print(f"JupyterLab dir kept: {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


def _stop(server: LabServer) -> None:
    proc = server.process
    if proc.poll() is None:
        server.shutdown_kernels()
        with contextlib.suppress(Exception):
            server.api("POST", "/api/shutdown", timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


# ---------------------------------------------------------------------------
# Browser
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def launch_browser(*, executable_path: Path | str = CHROMIUM) -> Iterator[Browser]:
    """Launch Debian's headless Chromium through Playwright (sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(executable_path),
            headless=True,
            args=list(CHROMIUM_ARGS),
        )
        try:
            yield browser
        finally:
            browser.close()


# ---------------------------------------------------------------------------
# Notebooks
# ---------------------------------------------------------------------------


def write_notebook(path: Path | str, cells: Sequence[str | tuple[str, str]]) -> Path:
    """Write an nbformat 4.5 notebook (no outputs) with the ``python3`` kernelspec.

    Each cell is source code, or ``("markdown" | "code" | "raw", source)``.
    Written as plain JSON: importing nbformat costs seconds (see start_lab).
    """
    nb_cells: list[dict[str, Any]] = []
    for cell in cells:
        kind, source = ("code", cell) if isinstance(cell, str) else cell
        if kind not in ("code", "markdown", "raw"):
            raise ValueError(f"unknown cell type {kind!r}")
        entry: dict[str, Any] = {
            "cell_type": kind,
            "id": uuid.uuid4().hex[:12],
            "metadata": {},
            "source": source,
        }
        if kind == "code":
            entry.update(execution_count=None, outputs=[])
        nb_cells.append(entry)
    nb = {
        "cells": nb_cells,
        "metadata": {
            "kernelspec": {
                "name": "python3",
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
            },
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1) + "\n")
    return path


@dataclass
class LabResult:
    """What happened while a notebook ran in JupyterLab (see module doc)."""

    notebook: str
    initial_title: str
    title: str
    titles_seen: list[str]
    flags: dict[str, Any]
    dialogs: list[dict[str, str]]
    console: list[dict[str, str]]
    page_errors: list[str]
    outputs: list[str]
    output_html: list[str]
    links: list[str]
    clicked_links: list[str]
    popups: list[str]
    external_requests: list[str]
    lab_dialogs: list[str]
    execution_counts: list[int | None]
    screenshot: Path | None
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def title_changed(self) -> bool:
        """Title differs now, or differed at any moment while the notebook ran.

        JupyterLab rewrites ``document.title`` itself (e.g. right after an
        output set it), so the final title alone misses payloads.
        """
        return self.title != self.initial_title or any(
            t != self.initial_title for t in self.titles_seen
        )

    @property
    def javascript_links(self) -> list[str]:
        """Output links whose href is a ``javascript:`` URL (clicked or not)."""
        return [h for h in self.links if _is_javascript_url(h)]

    @property
    def script_ran(self) -> bool:
        """True if any canary fired: a flag, a title change or a JS dialog."""
        return bool(self.flags) or self.title_changed or bool(self.dialogs)

    @property
    def output_text(self) -> str:
        return "\n".join(self.outputs)

    def describe(self) -> str:
        """Multi-line summary for assertion messages."""
        keys = [
            "notebook",
            "initial_title",
            "title",
            "titles_seen",
            "flags",
            "dialogs",
            "page_errors",
            "outputs",
            "links",
            "clicked_links",
            "popups",
            "external_requests",
            "lab_dialogs",
            "execution_counts",
        ]
        lines = [f"{k}: {getattr(self, k)!r}" for k in keys]
        lines.append(f"console: {self.console[-20:]!r}")
        return "\n".join(lines)


# JS helpers evaluated in the page.  `__H` (window.__ipychat_harness) keeps state.
_JS_FIND_PANEL = """
(path) => {
  const app = window.jupyterapp;
  if (!app) return null;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === path && w.sessionContext) return w;
  }
  return null;
}
"""

_JS_KERNEL_READY = f"""
(path) => {{
  const w = ({_JS_FIND_PANEL})(path);
  if (!w) return false;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle' && k.connectionStatus === 'connected'
         && w.content.widgets.length > 0;
}}
"""

_JS_RUN_ALL = f"""
(path) => {{
  const app = window.jupyterapp;
  const w = ({_JS_FIND_PANEL})(path);
  app.shell.activateById(w.id);
  const H = window.__ipychat_harness = {{done: false, result: null}};
  app.commands.execute('notebook:run-all-cells').then(
    (r) => {{ H.done = true; H.result = String(r); }},
    (e) => {{ H.done = true; H.result = 'error: ' + e; }});
  return true;
}}
"""

_JS_SAVE = f"""
async (path) => {{
  const w = ({_JS_FIND_PANEL})(path);
  await w.context.save();
}}
"""

_JS_RUN_DONE = f"""
(path) => {{
  const H = window.__ipychat_harness;
  const w = ({_JS_FIND_PANEL})(path);
  if (!H || !H.done || !w) return false;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  if (!k || k.status !== 'idle') return false;
  for (const p of w.node.querySelectorAll('.jp-CodeCell .jp-InputPrompt')) {{
    if (p.textContent.includes('*')) return false;
  }}
  for (const img of w.node.querySelectorAll('.jp-OutputArea-output img')) {{
    if (!img.complete) return false;
  }}
  return true;
}}
"""

_JS_COLLECT = f"""
(path) => {{
  const w = ({_JS_FIND_PANEL})(path);
  const node = w ? w.node : document;
  // Top-level outputs only: an ipywidgets Output nests a whole output area.
  const outs = Array.from(node.querySelectorAll('.jp-OutputArea-output'))
    .filter((o) => !o.parentElement.closest('.jp-OutputArea-output'));
  const counts = [];
  if (w) {{
    const cells = w.content.model.cells;
    for (let i = 0; i < cells.length; i++) {{
      const c = cells.get(i);
      if (c.type === 'code') counts.push(c.executionCount ?? null);
    }}
  }}
  return {{
    outputs: outs.map((o) => o.innerText),
    output_html: outs.map((o) => o.innerHTML),
    links: Array.from(node.querySelectorAll('.jp-OutputArea-output a'))
                .map((a) => a.getAttribute('href')
                  ?? a.getAttributeNS('http://www.w3.org/1999/xlink', 'href'))
                .filter((h) => h !== null),
    lab_dialogs: Array.from(document.querySelectorAll('.jp-Dialog'))
                .map((d) => d.innerText),
    counts: counts,
  }};
}}
"""

# Installed in every page of the context before any page script runs: keeps
# every value document.title takes, because JupyterLab resets the title.
_JS_INIT = """
(() => {
  const titles = [];
  Object.defineProperty(window, '__ipychat_harness_titles', {value: titles});
  const note = () => {
    if (titles[titles.length - 1] !== document.title) titles.push(document.title);
  };
  new MutationObserver(note).observe(document, {
    subtree: true, childList: true, characterData: true,
  });
})();
"""

_JS_FLAGS = """
() => {
  const out = {};
  for (const k of Object.keys(window)) {
    if (k.startsWith('__pwned')) {
      try { out[k] = JSON.parse(JSON.stringify(window[k]) ?? 'null'); }
      catch (e) { out[k] = String(window[k]); }
    }
  }
  return out;
}
"""


def _is_javascript_url(href: str) -> bool:
    # As the URL parser does: strip leading/trailing C0 controls and spaces,
    # then drop every tab/newline, before reading the scheme.
    c0_and_space = "".join(chr(i) for i in range(0x21))
    cleaned = "".join(ch for ch in href.strip(c0_and_space) if ch not in "\t\n\r")
    return cleaned.lower().startswith("javascript:")


def _relpath_in_root(lab: LabServer, nb_path: Path) -> str:
    nb_path = Path(nb_path).resolve()
    root = lab.root_dir.resolve()
    try:
        return nb_path.relative_to(root).as_posix()
    except ValueError:
        dest_dir = root / f"run-{uuid.uuid4().hex[:8]}"
        dest_dir.mkdir(parents=True)
        shutil.copy2(nb_path, dest_dir / nb_path.name)
        return f"{dest_dir.name}/{nb_path.name}"


def run_notebook_in_lab(
    lab: LabServer,
    nb_path: Path | str,
    *,
    timeout: float = 120.0,
    screenshot: Path | str | None = None,
    browser: Browser | None = None,
    settle: float = 0.75,
    click_javascript_links: bool = True,
    run_all: bool = True,
    save: bool = False,
    shutdown_kernel: bool = True,
    viewport: tuple[int, int] = (1280, 900),
    while_running: Callable[[Page], None] | None = None,
) -> LabResult:
    """Open ``nb_path`` in JupyterLab, Run All Cells, and report what executed.

    A notebook outside ``lab.root_dir`` is copied into a fresh subfolder of it.
    ``browser`` is a Playwright browser (e.g. the ``lab_browser`` fixture); if
    omitted, one is launched for this call (not allowed while another sync
    Playwright is active in this thread).  After execution the harness waits
    ``settle`` seconds for asynchronous payloads (img onerror, setTimeout), then
    clicks every ``javascript:`` link in the outputs (if
    ``click_javascript_links``), waits ``settle`` again, and reads the canaries.
    ``screenshot`` saves a full-page PNG there.  ``run_all=False`` only opens
    the notebook (to see how *saved* outputs render, which JupyterLab treats
    as untrusted unless the notebook is signed).  ``save=True`` saves the
    notebook after running (into ``lab.root_dir / result.notebook``), e.g. to
    reopen it with ``run_all=False``.
    """
    if browser is None:
        with launch_browser() as own:
            return run_notebook_in_lab(
                lab,
                nb_path,
                timeout=timeout,
                screenshot=screenshot,
                browser=own,
                settle=settle,
                click_javascript_links=click_javascript_links,
                run_all=run_all,
                save=save,
                shutdown_kernel=shutdown_kernel,
                viewport=viewport,
            )

    from playwright.sync_api import Error as PlaywrightError

    t0 = time.monotonic()
    timings: dict[str, float] = {}
    deadline = t0 + timeout

    def remaining_ms() -> float:
        return max(1000.0, (deadline - time.monotonic()) * 1000)

    relpath = _relpath_in_root(lab, Path(nb_path))
    dialogs: list[dict[str, str]] = []
    console: list[dict[str, str]] = []
    page_errors: list[str] = []
    popups: list[Page] = []
    external: list[str] = []

    context = browser.new_context(
        viewport={"width": viewport[0], "height": viewport[1]},
        service_workers="block",
    )

    def on_dialog(dialog: Any) -> None:
        dialogs.append({"type": dialog.type, "message": dialog.message})
        with contextlib.suppress(PlaywrightError):
            dialog.dismiss()

    def watch(page: Page) -> None:
        page.on("dialog", on_dialog)
        page.on("console", lambda m: console.append({"type": m.type, "text": m.text}))
        page.on("pageerror", lambda e: page_errors.append(str(e)))

    def block(r: Any) -> None:
        external.append(r.request.url)
        r.abort("blockedbyclient")

    context.route(NON_LOOPBACK_URL, block)
    context.add_init_script(_JS_INIT)
    page = context.new_page()
    watch(page)
    # Registered after new_page(): only pages opened by the notebook count.
    context.on("page", lambda p: (popups.append(p), watch(p)))
    page.set_default_timeout(remaining_ms())

    try:
        # Start the kernel while the frontend boots; JupyterLab then attaches
        # to this session (matched by path) instead of starting its own.
        with contextlib.suppress(Exception):
            lab.api(
                "POST",
                "/api/sessions",
                {"path": relpath, "type": "notebook", "name": "", "kernel": {"name": "python3"}},
            )
        workspace = f"h{uuid.uuid4().hex[:12]}"
        page.goto(lab.lab_url(relpath, workspace=workspace), wait_until="domcontentloaded")
        page.wait_for_function("() => !!window.jupyterapp", timeout=min(remaining_ms(), 60_000))
        timings["load"] = time.monotonic() - t0
        page.wait_for_function(_JS_KERNEL_READY, arg=relpath, timeout=remaining_ms())
        timings["kernel"] = time.monotonic() - t0 - timings["load"]
        initial_title = page.title()
        title_mark = page.evaluate("() => window.__ipychat_harness_titles.length")
        initial_flags = page.evaluate(_JS_FLAGS)
        if run_all and initial_flags:
            # Canaries must start unset; a stray global would make results meaningless.
            raise AssertionError(f"window.__pwned* set before running: {initial_flags}")

        t1 = time.monotonic()
        if run_all:
            page.evaluate(_JS_RUN_ALL, relpath)
            if while_running is not None:  # e.g. look at a reply while it streams
                while_running(page)
            page.wait_for_function(_JS_RUN_DONE, arg=relpath, timeout=remaining_ms(), polling=100)
        else:
            page.evaluate("() => { window.__ipychat_harness = {done: true}; }")
            page.wait_for_function(_JS_RUN_DONE, arg=relpath, timeout=remaining_ms())
        timings["run"] = time.monotonic() - t1
        page.wait_for_timeout(settle * 1000)
        if save:
            page.evaluate(_JS_SAVE, relpath)

        collected = page.evaluate(_JS_COLLECT, relpath)
        clicked: list[str] = []
        if click_javascript_links:
            # Includes SVG <a> (no target=_blank is added to those by JupyterLab).
            anchors = page.locator(".jp-OutputArea-output a")
            for i in range(anchors.count()):
                a = anchors.nth(i)
                href = a.evaluate(
                    "(a) => a.getAttribute('href')"
                    " ?? a.getAttributeNS('http://www.w3.org/1999/xlink', 'href') ?? ''"
                )
                if not _is_javascript_url(href):
                    continue
                clicked.append(href)
                with contextlib.suppress(PlaywrightError):
                    a.scroll_into_view_if_needed(timeout=5000)
                    a.click(timeout=5000, no_wait_after=True)
            if clicked:
                page.wait_for_timeout(settle * 1000)

        flags: dict[str, Any] = page.evaluate(_JS_FLAGS)
        popup_urls: list[str] = []
        for i, p in enumerate(popups):
            popup_urls.append(p.url)
            with contextlib.suppress(PlaywrightError):
                for k, v in p.evaluate(_JS_FLAGS).items():
                    flags[f"popup{i}:{k}"] = v
        title = page.title()
        titles_seen = page.evaluate("() => window.__ipychat_harness_titles")[title_mark:]
        shot: Path | None = None
        if screenshot is not None:
            shot = Path(screenshot)
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
        if not collected["lab_dialogs"]:
            collected["lab_dialogs"] = page.evaluate(
                "() => Array.from(document.querySelectorAll('.jp-Dialog')).map(d => d.innerText)"
            )
    except PlaywrightError as exc:
        diag = ""
        with contextlib.suppress(Exception):
            diag = page.evaluate("() => document.body.innerText.slice(0, 2000)")
        raise RuntimeError(
            f"running {relpath} in JupyterLab failed: {exc}\n"
            f"dialogs={dialogs} page_errors={page_errors}\n"
            f"console={console[-20:]}\npage text:\n{diag}\n"
            f"server log tail:\n{lab.log_text()[-3000:]}"
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            context.close()
        if shutdown_kernel:
            with contextlib.suppress(Exception):
                for sess in lab.api("GET", "/api/sessions"):
                    if sess.get("path") == relpath:
                        lab.api("DELETE", f"/api/sessions/{sess['id']}")

    return LabResult(
        notebook=relpath,
        initial_title=initial_title,
        title=title,
        titles_seen=titles_seen,
        flags=flags,
        dialogs=dialogs,
        console=console,
        page_errors=page_errors,
        outputs=collected["outputs"],
        output_html=collected["output_html"],
        links=collected["links"],
        clicked_links=clicked,
        popups=popup_urls,
        external_requests=external,
        lab_dialogs=collected["lab_dialogs"],
        execution_counts=collected["counts"],
        screenshot=shot,
        seconds=time.monotonic() - t0,
        timings=timings,
    )


# ---------------------------------------------------------------------------
# A loopback "attacker": every request the page makes to it is logged
# ---------------------------------------------------------------------------


class AttackerServer:
    """An HTTP server on 127.0.0.1 (free port) that logs every request and answers a 1x1 PNG.

    Payloads point at ``url(name)``; ``hits()`` lists the paths requested so far.  Loopback,
    so the harness's block of non-loopback hosts does not stop these requests: a test that
    sees no hit proves the page never asked.  Use as a context manager.
    """

    PNG = bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d4944415478da63f8ffff3f0005fe02fea7d6a4a20000000049454e44ae426082"
    )

    def __init__(self) -> None:
        import http.server
        import threading

        self.requests: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(owner.PNG)))
                self.end_headers()
                self.wfile.write(owner.PNG)

            do_POST = do_HEAD = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def hits(self) -> list[str]:
        return list(self.requests)

    def __enter__(self) -> AttackerServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@dataclass
class PageResult:
    """What a page showed and did: for documents opened without running anything."""

    flags: dict[str, Any]
    dialogs: list[dict[str, str]]
    external_requests: list[str]
    html: str
    text: str
    math_elements: int
    screenshot: Path | None


def _watched_page(browser: Browser, external: list[str], dialogs: list[dict[str, str]]) -> Any:
    """A fresh context and page: non-loopback requests blocked and listed, dialogs listed."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    context.route(NON_LOOPBACK_URL, lambda r: (external.append(r.request.url), r.abort()))
    page = context.new_page()

    def on_dialog(dialog: Any) -> None:
        dialogs.append({"type": dialog.type, "message": dialog.message})
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return context, page


def _look(
    page: Page,
    selector: str,
    settle: float,
    screenshot: Path | str | None,
    external: list[str],
    dialogs: list[dict[str, str]],
) -> PageResult:
    """After `settle` seconds: what `selector` shows, the canaries, and a screenshot."""
    page.wait_for_timeout(settle * 1000)
    found = page.evaluate(
        """(sel) => {
          const nodes = Array.from(document.querySelectorAll(sel));
          return {html: nodes.map((n) => n.innerHTML).join('\\n'),
                  text: nodes.map((n) => n.innerText).join('\\n'),
                  math: nodes.reduce((k, n) => k + n.querySelectorAll('math').length, 0)};
        }""",
        selector,
    )
    if screenshot is not None:
        Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    shot = Path(screenshot) if screenshot is not None else None
    flags = page.evaluate(_JS_FLAGS)
    return PageResult(flags, dialogs, external, found["html"], found["text"], found["math"], shot)


def open_in_lab(
    lab: LabServer,
    path: Path | str,
    *,
    browser: Browser,
    factory: str = "Markdown Preview",
    selector: str = ".jp-MarkdownViewer .jp-RenderedMarkdown",
    settle: float = 2.0,
    screenshot: Path | str | None = None,
    timeout: float = 90.0,
) -> PageResult:
    """Open a file in JupyterLab with a document ``factory`` (e.g. the Markdown preview)."""
    relpath = _relpath_in_root(lab, Path(path))
    external: list[str] = []
    dialogs: list[dict[str, str]] = []
    context, page = _watched_page(browser, external, dialogs)
    page.set_default_timeout(timeout * 1000)
    try:
        workspace = f"h{uuid.uuid4().hex[:12]}"  # a fresh workspace: nothing else reopens
        url = f"{lab.url}/lab/workspaces/{workspace}?token={lab.token}"
        page.goto(url, wait_until="domcontentloaded")
        page.wait_for_function("() => !!window.jupyterapp && window.jupyterapp.shell")
        page.evaluate(
            "async ([path, factory]) => { await window.jupyterapp.restored;"
            " await window.jupyterapp.commands.execute('docmanager:open', {path, factory}); }",
            [relpath, factory],
        )
        page.locator(selector).first.wait_for()
        return _look(page, selector, settle, screenshot, external, dialogs)
    finally:
        with contextlib.suppress(Exception):
            context.close()


def open_html_file(
    path: Path | str,
    *,
    browser: Browser,
    selector: str = "body",
    settle: float = 2.0,
    screenshot: Path | str | None = None,
) -> PageResult:
    """Open a local HTML file (e.g. an nbconvert export) the way a person would."""
    external: list[str] = []
    dialogs: list[dict[str, str]] = []
    context, page = _watched_page(browser, external, dialogs)
    try:
        page.goto(Path(path).resolve().as_uri(), wait_until="load")
        return _look(page, selector, settle, screenshot, external, dialogs)
    finally:
        with contextlib.suppress(Exception):
            context.close()
