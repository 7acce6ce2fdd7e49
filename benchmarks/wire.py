"""Wire cost: how many bytes a front end receives to show one streamed reply.

A Markdown reply of a given size (prose, lists and code, as a model writes) is streamed by the
bundled server at a given token rate into `%%chat` in a real kernel. Every iopub message of the
cell is counted as the front end receives it: header, parent header, metadata and content
serialised as JSON, plus any binary buffers (the kernel's `status` and `execute_input`, the same
for any cell, are left out). The final output is the bundle the saved notebook keeps (the last
`update_display_data` of the reply's display id). The goal: at most 3x the final output.

    python benchmarks/wire.py [--sizes 1000,10000] [--rates 20,200] [--json out.json]

Run with `PYTHONPATH` pointing at another checkout to measure that code (the kernel and the
server take ipychat from `PYTHONPATH`); `run.py` measures the code it is run from.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import Goal, Section, ServerProcess, Spread
from benchmarks.kernel import Kernel

__all__ = ["markdown_reply", "measure", "run"]

WIRE_GOAL = 3.0  # bytes received per byte of final output
SIZES = (1_000, 10_000, 100_000)
RATES = (20, 100, 200)
_SKIP = {"status", "execute_input"}

_PARAGRAPH = (
    "The kernel keeps every variable between cells, so a value computed once can be inspected, "
    "plotted and passed on without being computed again. When a result looks wrong, print the "
    "intermediate values, check the shapes of the arrays involved and compare them with what "
    "the formula expects; most mistakes show up as a dimension that is off by one."
)
_LIST = "\n".join(
    f"- Step {i}: load the data, clean the **missing** values and `describe()` it." for i in (1, 2)
)
_CODE = (
    "```python\nimport statistics\n\ndef summary(values):\n"
    '    """Mean and spread of a list of numbers."""\n'
    "    return statistics.mean(values), statistics.stdev(values)\n\n"
    "print(summary([1.5, 2.5, 3.0, 4.25]))\n```"
)


def markdown_reply(size: int) -> str:
    """About `size` characters of Markdown: a heading, then paragraphs, lists and code."""
    blocks = ["## Working in a notebook"]
    pattern = (_PARAGRAPH, _LIST, _PARAGRAPH, _CODE)
    index = 0
    while sum(len(b) + 2 for b in blocks) < size:
        blocks.append(pattern[index % len(pattern)])
        index += 1
    text = "\n\n".join(blocks)
    return text[:size].rstrip() if len(text) > size + 200 else text


def _wire_bytes(message: dict[str, Any]) -> int:
    parts = ("header", "parent_header", "metadata", "content")
    size = sum(len(json.dumps(message[p], default=str, ensure_ascii=False)) for p in parts)
    return size + sum(len(b) for b in message.get("buffers") or ())


def measure(kernel: Kernel, prompt: str) -> dict[str, Any]:
    """Stream one reply and count what the front end receives."""
    client = kernel.client
    msg_id = client.execute(f"%%chat --no-history\n{prompt}")
    total = updates = 0
    by_type: dict[str, list[int]] = {}
    final: dict[str, Any] = {}
    first = last = None
    while True:
        message = client.get_iopub_msg(timeout=3600)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kind = message["msg_type"]
        if kind == "status" and message["content"]["execution_state"] == "idle":
            break
        if kind in _SKIP:
            continue
        size = _wire_bytes(message)
        total += size
        counted = by_type.setdefault(kind, [0, 0])
        counted[0] += 1
        counted[1] += size
        when = message["header"]["date"]
        when = when.timestamp() if hasattr(when, "timestamp") else 0.0
        first = when if first is None else first
        last = when
        if kind in ("comm_msg", "update_display_data", "display_data"):
            updates += 1
        if kind in ("display_data", "update_display_data"):
            final = message["content"]["data"]
    reply = client.get_shell_msg(timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    final_size = len(json.dumps(final, ensure_ascii=False))
    seconds = max((last or 0) - (first or 0), 1e-9)
    return {
        "bytes": total,
        "final_bytes": final_size,
        "ratio": total / final_size if final_size else float("inf"),
        "updates": updates,
        "updates_per_s": updates / seconds,
        "seconds": seconds,
        "by_type": by_type,
    }


def run(
    sizes: tuple[int, ...] = SIZES,
    rates: tuple[int, ...] = RATES,
    repeat: int = 1,
    skip: frozenset[tuple[int, int]] = frozenset(),
) -> Section:
    """Every size at every rate (but `skip`), `repeat` times, one kernel per rate."""
    script = [{"prompt": f"wire-{size}$", "reply": markdown_reply(size)} for size in sizes]
    samples: dict[str, list[dict[str, Any]]] = {}
    for rate in rates:
        with ServerProcess(token_delay=1 / rate, script=script) as base_url, Kernel() as kernel:
            kernel.execute(f"%load_ext ipychat\n%chat_config base_url={base_url}")
            kernel.execute("%%chat --no-history\nwarm up")  # widgets, Markdown, httpx imports
            for size in sizes:
                if (size, rate) in skip:
                    continue
                runs = [measure(kernel, f"wire-{size}") for _ in range(repeat)]
                samples[f"{size}@{rate}"] = runs
    rows, goals = [], []
    worst = 0.0
    for key, runs in samples.items():
        size, rate = key.split("@")
        ratio = Spread.of([r["ratio"] for r in runs])
        worst = max(worst, ratio.max)
        rows.append(
            [
                f"{int(size):,}",
                rate,
                Spread.of([r["bytes"] for r in runs]).format(scale=1 / 1000, unit=" KB"),
                Spread.of([r["final_bytes"] for r in runs]).format(scale=1 / 1000, unit=" KB"),
                f"{ratio.format()}x",
                Spread.of([r["updates_per_s"] for r in runs]).format(digits=2),
            ]
        )
    goals.append(
        Goal(
            f"a front end receives at most {WIRE_GOAL:g}x the final output",
            f"{worst:.2f}x at worst",
            worst <= WIRE_GOAL,
        )
    )
    return Section(
        key="wire",
        title=f"7. Wire cost of a streamed reply ({repeat} run(s) each)",
        method=(
            "A Markdown reply (prose, lists, code) streamed by the bundled server at the given "
            "rate into `%%chat` in a real kernel. Received: every iopub message of the cell but "
            "status and execute_input, header + parent header + metadata + content as JSON plus "
            "buffers. Final output: the mime bundle the saved notebook keeps. Updates: "
            "display_data, update_display_data and comm_msg messages."
        ),
        header=["reply chars", "tokens/s", "received", "final output", "ratio", "updates/s"],
        rows=rows,
        goals=goals,
        data={"samples": samples},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--rates", default=",".join(map(str, RATES)))
    parser.add_argument("--skip", default="", help="size@rate pairs to leave out, e.g. 100000@20")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path, metavar="PATH")
    args = parser.parse_args(argv)
    skip = frozenset(
        (int(s), int(r)) for s, r in (pair.split("@") for pair in args.skip.split(",") if pair)
    )
    section = run(
        tuple(int(s) for s in args.sizes.split(",")),
        tuple(int(r) for r in args.rates.split(",")),
        args.repeat,
        skip,
    )
    for row in [section.header, *section.rows]:
        print(" | ".join(row))
    if args.json:
        args.json.write_text(json.dumps(section.data, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
