"""Run every ipychat benchmark and print a Markdown report.

    python benchmarks/run.py [--quick] [--repeat N] [--json out.json] [--markdown out.md]

`--quick` uses small sizes so the whole run takes well under a minute (the test suite runs it
that way, so the script cannot rot); the full run takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import batch, kernel, load, memory, report, throughput, ttft, wire
from benchmarks.common import Section, machine


@dataclass(frozen=True)
class Sizes:
    """How much work each benchmark does; `repeat` is the number of measured runs."""

    chunks: int  # streamed by each client in the throughput benchmark
    kernel_chunks: int  # the %%chat reply in the display benchmark
    turns: int  # exchanges in the memory benchmark
    ttft_requests: int  # requests per client and run in the time-to-first-token benchmark
    build_calls: int  # request builds timed per run in the memory benchmark
    batch_items: int  # requests per client and run in the batch benchmark
    wire: tuple[tuple[int, ...], tuple[int, ...]]  # reply sizes and token rates streamed
    repeat: int


FULL = Sizes(
    chunks=20_000,
    kernel_chunks=5_000,
    turns=2_000,
    ttft_requests=50,
    build_calls=20,
    batch_items=1_000,
    wire=(wire.SIZES, wire.RATES),
    repeat=5,
)
QUICK = Sizes(
    chunks=2_000,
    kernel_chunks=500,
    turns=200,
    ttft_requests=10,
    build_calls=5,
    batch_items=48,
    wire=((1_000,), (200,)),
    repeat=2,
)


def _benchmarks(sizes: Sizes) -> list[tuple[str, Callable[[], Section]]]:
    return [
        ("throughput", lambda: throughput.run(sizes.chunks, sizes.repeat)),
        ("display", lambda: kernel.run(sizes.kernel_chunks, sizes.repeat)),
        ("load", lambda: load.run(sizes.repeat)),
        ("ttft", lambda: ttft.run(sizes.ttft_requests, sizes.repeat)),
        ("memory", lambda: memory.run(sizes.turns, sizes.repeat, sizes.build_calls)),
        ("batch", lambda: batch.run(sizes.batch_items, sizes.repeat)),
        # A 100 KB reply at 20 tokens a second takes 17 minutes: left out of the full run.
        ("wire", lambda: wire.run(*sizes.wire, skip=frozenset({(100_000, 20)}))),
    ]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--repeat", type=int, metavar="N", help="measured runs per benchmark")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the report")
    parser.add_argument("--only", metavar="A,B", help="run only these benchmarks, e.g. load,wire")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.repeat is not None:
        if args.repeat < 1:
            _parser().error("--repeat must be at least 1")
        sizes = replace(sizes, repeat=args.repeat)
    command = shlex.join(["python", "benchmarks/run.py", *argv])
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    info = machine()  # before the run: the code measured is the code at its start
    sections = []
    started = time.perf_counter()
    only = set(args.only.split(",")) if args.only else None
    for name, bench in _benchmarks(sizes):
        if only is not None and name not in only:
            continue
        print(f"[{time.perf_counter() - started:6.1f} s] {name} ...", file=sys.stderr, flush=True)
        sections.append(bench())
    print(f"[{time.perf_counter() - started:6.1f} s] done", file=sys.stderr, flush=True)
    info["load_average"] = {"start": info["load_average"], "end": machine()["load_average"]}
    text = report.markdown(sections, info, command, when)
    print(text)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    if args.json:
        data = report.to_json(sections, info, command, when)
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
