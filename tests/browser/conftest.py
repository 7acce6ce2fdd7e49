"""Fixtures for the browser tests: a shared JupyterLab and a shared Chromium.

Any test module in this folder can use them::

    import pytest

    from .lab import run_notebook_in_lab, write_notebook

    @pytest.mark.browser
    def test_something(lab_server, lab_browser, tmp_path):
        nb = write_notebook(tmp_path / "t.ipynb", ["print('hi')"])
        res = run_notebook_in_lab(lab_server, nb, browser=lab_browser)
        assert not res.script_ran, res.describe()

Outside CI the fixtures skip when Chromium, JupyterLab or Playwright is
missing; with CI set (CI=true) they fail instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .lab import LabServer, launch_browser, require_browser_stack, start_lab


@pytest.fixture(scope="module")
def lab_server() -> Iterator[LabServer]:
    """One JupyterLab per test module; its python3 kernel runs sys.executable."""
    require_browser_stack()
    with start_lab() as lab:
        print(f"JupyterLab up in {lab.startup_seconds:.1f}s at {lab.url}")
        yield lab


@pytest.fixture(scope="module")
def lab_browser() -> Iterator[Any]:
    """One headless Debian Chromium (a Playwright sync ``Browser``) per module."""
    require_browser_stack()
    with launch_browser() as browser:
        yield browser
