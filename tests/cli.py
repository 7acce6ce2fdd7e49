"""Running `python -m ipychat` from tests: with this checkout importable and no user settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_env(**extra: str) -> dict[str, str]:
    """The environment: this checkout first on PYTHONPATH, no IPYCHAT_API_KEY unless given."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("IPYCHAT_API_KEY", None)
    env.update(extra)
    return env


def run_cli(*args: str, python: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run `python [python...] -m ipychat ARGS` to its end, with no stdin."""
    return subprocess.run(
        [sys.executable, *python, "-m", "ipychat", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=run_env(),
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
