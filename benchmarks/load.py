"""Load cost: `%load_ext ipychat` in a fresh kernel, against the same cell doing nothing.

A fresh kernel per run, because a second load would find its modules imported already. The
baseline cell is the same code with `pass` in place of the magic, run just before it, so the
difference is what loading adds to the wait of a user who runs that cell. As an extra,
`python -X importtime` shows what `import ipychat` itself costs outside a kernel.

Two series: kernels with the environment as it is (where PYTHONDONTWRITEBYTECODE is set, as
on the team's machine, every import compiles its source), and kernels that keep bytecode in a
temporary cache warmed by one kernel first, as an installed package has its `.pyc` files. The
goal is judged on the second: it is what a user's fresh kernel does.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from .common import Goal, Section, Spread
from .kernel import Kernel

__all__ = ["run"]

ADDED_GOAL_MS = 25.0
CELL = """\
import time as _bench_time
_bench_start = _bench_time.perf_counter()
{statement}
_bench_seconds = _bench_time.perf_counter() - _bench_start
"""
EXPRESSIONS = {
    "seconds": "_bench_seconds",
    "modules": "sorted(__import__('sys').modules)",
}


@dataclass(frozen=True)
class LoadRun:
    """One fresh kernel: the bare cell, then the loading cell."""

    bare_wall_s: float
    load_wall_s: float
    load_in_kernel_s: float
    modules_before: int
    added_modules: list[str]

    @property
    def added_wall_s(self) -> float:
        return self.load_wall_s - self.bare_wall_s

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "added_wall_s": self.added_wall_s,
            "modules_added": len(self.added_modules),
        }


def _one_kernel(env: dict[str, str | None] | None = None) -> LoadRun:
    with Kernel(env) as kernel:
        kernel.execute("pass")  # the kernel's own first-cell work is not ipychat's
        bare = kernel.execute(CELL.format(statement="pass"), **EXPRESSIONS)
        loaded = kernel.execute(CELL.format(statement="%load_ext ipychat"), **EXPRESSIONS)
    before = bare.expressions["modules"]
    return LoadRun(
        bare_wall_s=bare.wall,
        load_wall_s=loaded.wall,
        load_in_kernel_s=loaded.expressions["seconds"],
        modules_before=len(before),
        added_modules=sorted(set(loaded.expressions["modules"]) - set(before)),
    )


_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def _import_time_ms(code: str, module: str) -> float:
    """`module`'s cumulative import time in a fresh interpreter running `code`."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    for match in _IMPORTTIME.finditer(result.stderr):
        if match[4] == module:
            return int(match[2]) / 1000
    raise RuntimeError(f"-X importtime did not report {module}.")


def _top_packages(modules: list[str], limit: int = 8) -> str:
    counts = Counter(name.split(".")[0] for name in modules)
    return ", ".join(f"{name} ({n})" for name, n in counts.most_common(limit))


def run(repeat: int) -> Section:
    """Load ipychat in `repeat` fresh kernels; time `import ipychat` in `repeat` interpreters."""
    runs = [_one_kernel() for _ in range(repeat)]
    with tempfile.TemporaryDirectory(prefix="ipychat-pyc-") as cache:
        cached_env: dict[str, str | None] = {
            "PYTHONDONTWRITEBYTECODE": None,
            "PYTHONPYCACHEPREFIX": cache,
        }
        _one_kernel(cached_env)  # writes the bytecode
        cached = [_one_kernel(cached_env) for _ in range(repeat)]
    door = [_import_time_ms("import ipychat", "ipychat") for _ in range(repeat)]
    magics = [
        _import_time_ms("import IPython, traitlets; import ipychat._magics", "ipychat._magics")
        for _ in range(repeat)
    ]

    def ms(values: list[float]) -> str:
        return Spread.of(values).format(scale=1000, unit=" ms")

    added = Spread.of([run.added_wall_s for run in cached])
    counts = Spread.of([len(run.added_modules) for run in runs])
    rows = [
        ["cell with `pass` (bare kernel)", ms([run.bare_wall_s for run in runs]), ""],
        [
            "cell with `%load_ext ipychat`",
            ms([run.load_wall_s for run in runs]),
            f"{counts.median:g} modules added",
        ],
        [
            "added by loading",
            ms([run.added_wall_s for run in runs]),
            _top_packages(runs[0].added_modules),
        ],
        [
            "added by loading, bytecode cached (the goal's figure)",
            ms([run.added_wall_s for run in cached]),
            "sources compiled once, as installed",
        ],
        [
            "`%load_ext ipychat` timed inside the kernel",
            ms([run.load_in_kernel_s for run in runs]),
            "",
        ],
        [
            "`import ipychat` (python -X importtime)",
            Spread.of(door).format(unit=" ms"),
            "names load lazily",
        ],
        [
            "`import ipychat._magics` after IPython (python -X importtime)",
            Spread.of(magics).format(unit=" ms"),
            "what `%load_ext` imports",
        ],
    ]
    goals = [
        Goal(
            f"`%load_ext ipychat` adds under {ADDED_GOAL_MS:g} ms",
            f"{added.median * 1000:.0f} ms (range {added.min * 1000:.0f}–{added.max * 1000:.0f})",
            added.median * 1000 < ADDED_GOAL_MS,
        )
    ]
    return Section(
        key="load",
        title=f"3. Load cost ({repeat} fresh kernels)",
        method=(
            "Execute round trips as the front end sees them (send to idle) in a fresh kernel: "
            "the same cell with `pass`, then with `%load_ext ipychat`; modules are `sys.modules` "
            "after each. Largest groups of added modules are listed by top-level package. "
            "Kernels run with the environment as it is, then with bytecode kept in a temporary "
            "cache (warmed by one kernel): an installed package has its .pyc files, so the "
            "goal is judged on that series."
        ),
        header=["measure", "time", "notes"],
        rows=rows,
        goals=goals,
        data={
            "repeat": repeat,
            "runs": [run.to_json() for run in runs],
            "cached_runs": [run.to_json() for run in cached],
            "import_ipychat_ms": door,
            "import_magics_ms": magics,
            "added_wall_s": added.to_json(),
            "modules_added": counts.to_json(),
        },
    )
