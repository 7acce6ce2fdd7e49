"""A real IPython kernel driven like a front end, and the display benchmark that uses it.

Display cost: the same `%%chat` reply streamed with display on (a kernel picks the widget view)
and with `--quiet`. Counted are the iopub messages the front end receives, the kernel's CPU
seconds (all its threads, so the serialisation of those messages is included) and the wall
time the front end waits. Two streams: as fast as the server can (display's fixed cost shows)
and paced at 1 ms per token (a long reply, where the update rate limit matters).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from .common import Goal, Section, ServerProcess, Spread

__all__ = ["Execution", "Kernel", "run"]

KERNEL_NAME = "ipychat-bench"
TIMEOUT = 300.0
DISPLAY_GOAL = 1.10  # display at most 10% more than --quiet
RATE_GOAL = 20.0  # display updates per second
UPDATE_TYPES = ("display_data", "comm_msg", "update_display_data")
# Each cell's own bookkeeping, the same whatever the cell does: not sent because of display.
_BOOKKEEPING = ("status", "execute_input")


@dataclass
class Execution:
    """One executed cell as the front end saw it."""

    wall: float
    messages: Counter[str]
    expressions: dict[str, Any]
    update_times: list[float]  # when the kernel sent each display update (epoch seconds)

    @property
    def sent(self) -> int:
        """Messages the cell's work sent to the front end (bookkeeping left out)."""
        return sum(n for kind, n in self.messages.items() if kind not in _BOOKKEEPING)

    @property
    def updates(self) -> int:
        return len(self.update_times)

    def peak_rate(self, window: float = 1.0) -> int:
        """The most updates sent within any `window` seconds: what "per second" can mean for
        a cell shorter than a second, whose few fixed updates would look like a high rate.
        """
        times = sorted(self.update_times)
        first = peak = 0
        for last, when in enumerate(times):
            while when - times[first] >= window:
                first += 1
            peak = max(peak, last - first + 1)
        return peak


def _kernel_env(config: Path) -> dict[str, str]:
    """The environment minus the user's ipychat/OpenAI settings, and no config file."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("IPYCHAT_", "OPENAI_"))
    }
    env["IPYCHAT_CONFIG"] = str(config)
    return env


class Kernel:
    """An ipykernel on this very interpreter (a temporary kernelspec), so it has this venv's
    ipychat, whatever `python3` kernelspec the machine has.
    """

    def __init__(self, env: dict[str, str | None] | None = None) -> None:
        self._env = env or {}  # added to the kernel's environment; None removes a variable
        self._dir: Path | None = None
        self._manager: Any = None
        self.client: Any = None

    def __enter__(self) -> Kernel:
        from jupyter_client import KernelManager
        from jupyter_client.kernelspec import KernelSpecManager

        self._dir = Path(tempfile.mkdtemp(prefix="ipychat-bench-"))
        spec = self._dir / "kernels" / KERNEL_NAME
        spec.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        kernel_json = {"argv": argv, "display_name": "ipychat bench", "language": "python"}
        (spec / "kernel.json").write_text(json.dumps(kernel_json))
        specs = KernelSpecManager(kernel_dirs=[str(self._dir / "kernels")])
        self._manager = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
        self._log = open(self._dir / "kernel.log", "wb")
        env = _kernel_env(self._dir / "absent-config.toml")
        for name, value in self._env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        try:
            self._manager.start_kernel(env=env, stdout=self._log, stderr=self._log)
            self.client = self._manager.client()
            self.client.start_channels()
            self.client.wait_for_ready(timeout=TIMEOUT)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.client is not None:
            self.client.stop_channels()
            self.client = None
        if self._manager is not None:
            if self._manager.has_kernel:
                self._manager.shutdown_kernel(now=True)
            self._manager = None
        if self._dir is not None:
            self._log.close()
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def execute(self, code: str, **expressions: str) -> Execution:
        """Run a cell; count its iopub messages until idle; evaluate `expressions` after it.

        Expression values come back as Python literals; a failing cell raises.
        """
        start = time.perf_counter()
        msg_id = self.client.execute(code, user_expressions=expressions)
        messages: Counter[str] = Counter()
        update_times: list[float] = []
        errors: list[str] = []
        while True:
            message = self.client.get_iopub_msg(timeout=TIMEOUT)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind = message["msg_type"]
            messages[kind] += 1
            if kind in UPDATE_TYPES:
                update_times.append(_sent_at(message["header"]))
            content = message["content"]
            if kind == "stream" and content.get("name") == "stderr":
                errors.append(content["text"])
            if kind == "status" and content["execution_state"] == "idle":
                break
        wall = time.perf_counter() - start
        reply = self._reply(msg_id)
        if reply["status"] != "ok":
            raise RuntimeError(
                f"The cell {code!r} failed in the kernel: {reply.get('ename')}: "
                f"{reply.get('evalue')} {''.join(errors)}"
            )
        values = {}
        for name, result in reply["user_expressions"].items():
            if result["status"] != "ok":
                raise RuntimeError(f"{expressions[name]!r} failed: {result.get('evalue')}")
            values[name] = ast.literal_eval(result["data"]["text/plain"])
        return Execution(wall, messages, values, update_times)

    def _reply(self, msg_id: str) -> dict[str, Any]:
        while True:
            message = self.client.get_shell_msg(timeout=TIMEOUT)
            if message["parent_header"].get("msg_id") == msg_id:
                return message["content"]


def _sent_at(header: dict[str, Any]) -> float:
    """When the kernel sent a message: its header date (parsed by jupyter_client, or text)."""
    date = header["date"]
    if isinstance(date, str):
        date = datetime.fromisoformat(date.replace("Z", "+00:00"))
    return date.timestamp()


CPU = "__import__('time').process_time()"


def _chat(kernel: Kernel, base_url: str, chunks: int, quiet: bool) -> dict[str, Any]:
    """One `%%chat` cell, with the kernel's CPU read just before and just after it."""
    kernel.execute(f"%chat_config base_url={base_url}")
    before = kernel.execute("", cpu=CPU)
    flags = "--no-history --quiet" if quiet else "--no-history"
    cell = kernel.execute(f"%%chat {flags}\n/repeat {chunks} tok")
    after = kernel.execute("", cpu=CPU, words="len(_chat.text.split())")
    return {
        "wall_s": cell.wall,
        "kernel_cpu_s": after.expressions["cpu"] - before.expressions["cpu"],
        "sent": cell.sent,
        "updates": cell.updates,
        "updates_per_s": cell.updates / cell.wall,
        "peak_updates_in_1s": cell.peak_rate(),
        "words": after.expressions["words"],
        "messages": dict(cell.messages),
    }


SCENARIOS = {"fast": 0.0, "paced": 0.001}  # seconds between tokens


def _scenario(kernel: Kernel, base_url: str, chunks: int, repeat: int) -> dict[str, Any]:
    _chat(kernel, base_url, chunks, quiet=False)  # warm-up: widgets, Markdown, httpx imports
    _chat(kernel, base_url, chunks, quiet=True)
    samples: dict[str, list[dict[str, Any]]] = {"display": [], "quiet": []}
    for round_ in range(repeat):
        order = ("display", "quiet") if round_ % 2 == 0 else ("quiet", "display")
        for mode in order:
            samples[mode].append(_chat(kernel, base_url, chunks, quiet=mode == "quiet"))
    return samples


def _values(samples: list[dict[str, Any]], key: str) -> list[float]:
    return [sample[key] for sample in samples]


def _ratio(samples: dict[str, list[dict[str, Any]]], key: str) -> Spread:
    pairs = zip(_values(samples["display"], key), _values(samples["quiet"], key), strict=True)
    return Spread.of([shown / quiet for shown, quiet in pairs])


def _mode_row(label: str, mode: str, runs: list[dict[str, Any]]) -> list[str]:
    kinds = Counter[str]()
    for sample in runs:
        kinds.update(sample["messages"])
    by_type = ", ".join(f"{kinds[kind] / len(runs):g} {kind}" for kind in sorted(kinds))
    return [
        label,
        mode,
        Spread.of(_values(runs, "wall_s")).format(scale=1000, unit=" ms"),
        Spread.of(_values(runs, "kernel_cpu_s")).format(scale=1000, unit=" ms"),
        f"{Spread.of(_values(runs, 'sent')).median:g}",
        Spread.of(_values(runs, "updates_per_s")).format(digits=2),
        Spread.of(_values(runs, "peak_updates_in_1s")).format(digits=2),
        by_type,
    ]


def run(chunks: int, repeat: int) -> Section:
    """Stream a `chunks`-word reply `repeat` times per mode and scenario in one kernel."""
    with ExitStack() as stack:
        urls = {
            name: stack.enter_context(ServerProcess(token_delay=d)) for name, d in SCENARIOS.items()
        }
        kernel = stack.enter_context(Kernel())
        kernel.execute("%load_ext ipychat")
        results = {name: _scenario(kernel, url, chunks, repeat) for name, url in urls.items()}
    rows, goals, summary = [], [], {}
    for name, samples in results.items():
        label = "fast" if SCENARIOS[name] == 0 else f"paced {SCENARIOS[name] * 1000:g} ms/token"
        rows += [_mode_row(label, mode, runs) for mode, runs in samples.items()]
        wall, cpu = _ratio(samples, "wall_s"), _ratio(samples, "kernel_cpu_s")
        rows.append([label, "display / quiet", f"{wall.format()}x", f"{cpu.format()}x"] + [""] * 4)
        summary[name] = {"wall_ratio": wall.to_json(), "cpu_ratio": cpu.to_json()}
        peak = Spread.of(_values(samples["display"], "peak_updates_in_1s"))
        goals += _goals(label, wall, cpu, peak)
    return Section(
        key="display",
        title=f"2. Display cost in a kernel ({chunks:,}-chunk reply, {repeat} runs per mode)",
        method=(
            "`%%chat --no-history` with display on (widget view) versus `--quiet`, in one real "
            "kernel. Wall: from sending the cell to the kernel going idle, as the front end "
            "sees it. Kernel CPU: `time.process_time()` in the kernel just before and after the "
            "cell (all kernel threads). Messages: iopub messages of the cell except status and "
            "execute_input, per run; updates are display_data + comm_msg + update_display_data."
        ),
        header=[
            "stream",
            "mode",
            "wall",
            "kernel CPU",
            "messages",
            "updates/s (cell mean)",
            "peak updates in 1 s",
            "messages by type (per run)",
        ],
        rows=rows,
        goals=goals,
        data={"chunks": chunks, "repeat": repeat, "samples": results, "summary": summary},
    )


def _goals(label: str, wall: Spread, cpu: Spread, peak: Spread) -> list[Goal]:
    added = f"under {DISPLAY_GOAL - 1:.0%}"
    return [
        Goal(
            f"{label}: display adds {added} kernel CPU",
            f"{cpu.median - 1:+.0%} (range {cpu.min - 1:+.0%} to {cpu.max - 1:+.0%})",
            cpu.median < DISPLAY_GOAL,
        ),
        Goal(
            f"{label}: display adds {added} wall time",
            f"{wall.median - 1:+.0%} (range {wall.min - 1:+.0%} to {wall.max - 1:+.0%})",
            wall.median < DISPLAY_GOAL,
        ),
        Goal(
            f"{label}: at most about {RATE_GOAL:g} display updates in any second",
            f"{peak.max:g} at most (median run {peak.median:g})",
            peak.max <= RATE_GOAL * 1.1,
        ),
    ]
