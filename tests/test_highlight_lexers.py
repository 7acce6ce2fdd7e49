"""Every allowlisted lexer lexes adversarial input of the highlighting size cap, in a subprocess.

A catastrophic regular expression cannot be interrupted (not by a time check between tokens,
not by SIGINT), so each lexer runs in its own process, killed past `LIMIT` seconds, and the
longest wait for a single token is measured: the renderer checks its time budget between
tokens, so one slow token is the only thing that can overrun it. A sound lexer's longest token
takes milliseconds; `scala` on `"` and 30 backslashes takes minutes (64: never), `fish` on `"`
and 50 never ends, `ini` on 5,000 `=` takes seconds. Run this file to print the figures:

    PYTHONPATH=. python tests/test_highlight_lexers.py [NAME ...]
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ipychat._highlight import BUDGET, LEXERS, MAX_CODE, highlight_code, lexer_for

LIMIT = 60.0  # seconds for all inputs of one lexer (a sound one needs a few)
GAP = 0.5  # seconds: no token may take longer than this to come
SIZE = MAX_CODE  # characters of each input: the most the renderer highlights
SPAN = BUDGET  # seconds each input is lexed for: a slow token comes early (it scans ahead)
ROOT = Path(__file__).resolve().parents[1]


def adversarial(size: int = MAX_CODE) -> dict[str, str]:
    """Inputs that make backtracking lexers explode: each close to `size` characters."""
    n = size - 8
    rng = random.Random(9)
    printable = "".join(chr(c) for c in range(32, 127)) + "\n\t"
    cases = {
        "dq+backslashes": '"' + "\\" * n,
        "sq+backslashes": "'" + "\\" * n,
        "bt+backslashes": "`" + "\\" * n,
        "dq+escaped-quotes": '"' + '\\"' * (n // 2),
        "unclosed-block-comment": "/*" + " x" * (n // 2),
        "unclosed-html-comment": "<!--" + "-x" * (n // 2),
        "unclosed-triple-quote": '"""' + "x\n" * (n // 2),
        "unclosed-heredoc": "cat <<EOF\n" + "x $y\n" * (n // 5),
        "nested-parens": "(" * (n // 2) + ")" * (n // 2),
        "nested-mixed": "[{(" * (n // 3),
        "nested-tags": "<a>" * (n // 3),
        "random": "".join(rng.choice(printable) for _ in range(n)),
        "quotes-and-backslashes": "\"\\'" * (n // 3),
        "number": "1e" + "9" * n,
        "hex": "0x" + "f" * n,
        "dollar-braces": "${" * (n // 2),
        "hash-lines": "#" * n,
        "slashes": "/" * n,
        "spaces-then-x": " " * n + "x",
        "tabs": "\t" * n,
        "newlines": "\n" * n,
    }
    for char in "a*_-=<{[($@%|;:.!":
        cases[f"run:{char}"] = char * n
    return cases


def probe(name: str) -> dict[str, float]:
    """The longest wait for one token of `name`'s lexer on each input (run in a child process).

    Each input is lexed for at most `SPAN` seconds, longer than the renderer ever lets a block
    take, so every position the renderer can reach is reached here too.
    """
    from pygments.lexers import find_lexer_class_by_name

    lexer = find_lexer_class_by_name(name)(stripnl=False, ensurenl=False)
    gaps = {}
    for case, text in adversarial(SIZE).items():
        start = last = time.perf_counter()
        gap = 0.0
        for _ in lexer.get_tokens(text):
            now = time.perf_counter()
            gap, last = max(gap, now - last), now
            if now - start > SPAN:
                break
        gaps[case] = max(gap, time.perf_counter() - last)
    return gaps


def run_probe(name: str) -> tuple[str, dict[str, float] | None, float]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--json", name],
            capture_output=True,
            text=True,
            timeout=LIMIT,
            env={**os.environ, "PYTHONPATH": path},
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return name, None, time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-2000:]
    return name, json.loads(done.stdout), time.perf_counter() - start


@pytest.mark.timeout(900)
def test_every_allowlisted_lexer_lexes_adversarial_input_quickly() -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run_probe, sorted(LEXERS)))
    hung = [name for name, gaps, _ in results if gaps is None]
    assert not hung, f"these lexers did not finish within {LIMIT} s: {hung}"
    slow = {
        (name, case): round(gap, 2)
        for name, gaps, _ in results
        for case, gap in (gaps or {}).items()
        if gap > GAP
    }
    assert not slow, f"a token took longer than {GAP} s: {slow}"
    assert len(results) == len(LEXERS) >= 40


@pytest.mark.parametrize("lang", ["scala", "fish", "markdown", "rst", "nosuchlang", "Scala"])
def test_unlisted_lexers_are_never_run(lang: str) -> None:
    assert lexer_for(lang) is None
    assert highlight_code('"' + "\\" * 64, lang) is None


def test_the_known_hangs_are_not_listed() -> None:
    """scala (64 backslashes) and fish hang for good: the probe proves it, in a child."""
    for name in ("scala", "fish"):
        assert name not in LEXERS


def test_a_block_over_the_cap_is_not_highlighted() -> None:
    assert highlight_code("x = 1\n" * (MAX_CODE // 6 + 1), "python") is None
    assert highlight_code("x = 1\n", "python")


def test_the_time_budget_is_checked_between_tokens() -> None:
    # A budget already spent: the first check (before the first token) gives up.
    assert highlight_code("x = 1\n" * 100, "python", budget=-1.0) is None


if __name__ == "__main__":
    if sys.argv[1:2] == ["--json"]:
        print(json.dumps(probe(sys.argv[2])))
    else:
        for name, times, wall in map(run_probe, sys.argv[1:] or sorted(LEXERS)):
            if times is None:
                print(f"{name:16s} did not finish in {LIMIT} s")
            else:
                worst = max(times, key=times.__getitem__)
                print(f"{name:16s} {wall:5.1f} s; longest token {times[worst]:6.3f} s ({worst})")
