"""Where ipychat's streaming loop spends its time, next to the bare loop: cProfile of each.

    python benchmarks/profile_stream.py [--chunks 20000] [--top 15]

For when the throughput goal is missed: the functions at the top of ipychat's list that have
no counterpart in the bare loop's list are its overhead. cProfile slows small functions more
than large ones, so read it for the ranking, and the benchmark for the size of the gap.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ServerProcess, user_message
from benchmarks.throughput import BareLoop, IpychatLoop, Reader


def profile(reader: Reader, messages: list[dict[str, str]], top: int) -> str:
    """The `top` functions by own time while `reader` reads one stream (after a warm-up)."""
    reader.read(messages)
    profiler = cProfile.Profile()
    profiler.enable()
    reader.read(messages)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=20_000, help="chunks in the stream")
    parser.add_argument("--top", type=int, default=15, help="functions to list per loop")
    args = parser.parse_args(argv)
    messages = user_message(f"/repeat {args.chunks} tok")
    with ServerProcess() as base_url:
        for reader in (BareLoop(base_url), IpychatLoop(base_url)):
            try:
                print(f"## {reader.label}\n{profile(reader, messages, args.top)}")
            finally:
                reader.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
