"""The benchmark script runs end to end (small sizes), so it cannot rot.

Nothing here checks a timing goal: timings depend on the machine and its load. Only relations
that hold on any machine are asserted, such as every chunk requested having arrived.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("throughput", "display", "load", "ttft", "memory", "batch", "wire")

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    command = [
        sys.executable,
        "benchmarks/run.py",
        "--quick",
        "--json",
        str(out / "results.json"),
        "--markdown",
        str(out / "results.md"),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((out / "results.json").read_text())
    data["_markdown"] = (out / "results.md").read_text()
    data["_stdout"] = done.stdout
    return data


def numbers(value: object) -> Iterator[float]:
    """Every number in a JSON value."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from numbers(item)


def test_every_section_with_goals_and_machine(results: dict[str, Any]) -> None:
    for key in SECTIONS:
        assert key in results, key
        for goal in results[key]["goals"]:
            assert isinstance(goal["passed"], bool)
            assert goal["goal"] and goal["measured"]
    assert results["machine"]["cores"] >= 1
    assert results["machine"]["packages"]["ipychat"] != "not installed"
    assert results["command"].startswith("python benchmarks/run.py --quick")


def test_markdown_report_is_printed_and_written(results: dict[str, Any]) -> None:
    report = results["_markdown"]
    assert results["_stdout"].strip() == report.strip()
    for title in ("## Goals", "## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6.", "## 7."):
        assert title in report
    assert "PASS" in report or "MISS" in report
    assert results["command"] in report


def test_throughput_every_chunk_arrives(results: dict[str, Any]) -> None:
    section = results["throughput"]
    requested = section["chunks_requested"]
    samples = section["samples"]
    clients = ["bare", "ipychat", *(["openai"] if "openai" in samples else [])]  # a bench extra
    for client in clients:
        assert samples[client]["chunks"] == [requested] * section["repeat"], client
        assert all(value > 0 for value in numbers(samples[client]["wall_s"]))
        assert all(value > 0 for value in numbers(samples[client]["cpu_s"]))
    assert section["ipychat"]["cpu_vs_bare"]["median"] > 0


def test_display_sends_messages_and_quiet_sends_none(results: dict[str, Any]) -> None:
    section = results["display"]
    for scenario in ("fast", "paced"):
        samples = section["samples"][scenario]
        for shown, quiet in zip(samples["display"], samples["quiet"], strict=True):
            assert shown["sent"] > quiet["sent"] == 0
            # The output itself, with the first text or (if all came at once) the final one.
            assert shown["updates"] >= 1 and shown["messages"]["display_data"] == 1
            assert shown["words"] == quiet["words"] == section["chunks"]
            for sample in (shown, quiet):
                assert sample["wall_s"] > 0 and sample["kernel_cpu_s"] > 0


def test_load_adds_ipychat_modules(results: dict[str, Any]) -> None:
    for run in results["load"]["runs"]:
        assert run["modules_added"] > 0
        assert "ipychat._magics" in run["added_modules"]
        assert run["load_wall_s"] > 0 and run["load_in_kernel_s"] > 0
    assert all(value > 0 for value in results["load"]["import_ipychat_ms"])


def test_ttft_medians_are_positive(results: dict[str, Any]) -> None:
    medians = results["ttft"]["median_s"]
    for client in ("bare", "ipychat", "conversation"):
        assert len(medians[client]) == results["ttft"]["repeat"]
        assert all(value > 0 for value in medians[client])


def test_memory_holds_bytes_per_turn(results: dict[str, Any]) -> None:
    section = results["memory"]
    assert section["bytes_per_turn"]["ipychat"] > 0
    assert section["bytes_per_turn"]["plain"] > 0
    assert section["text_bytes_per_turn"] > 0
    for key in ("build_ipychat_ms", "send_ipychat_ms", "send_plain_ms"):
        assert section[key]["median"] > 0


def test_batch_every_request_is_answered(results: dict[str, Any]) -> None:
    section = results["batch"]
    clients = ["ipychat", *(["openai"] if "openai" in section["samples"] else [])]
    for client in clients:
        samples = section["samples"][client]
        assert samples["done"] == [section["items"]] * section["repeat"], client
        assert all(value > 0 for value in samples["wall_s"] + samples["cpu_s"])
    assert section["ideal_wall_s"] > 0


def test_wire_counts_more_than_the_final_output(results: dict[str, Any]) -> None:
    for runs in results["wire"]["samples"].values():
        for run in runs:
            assert run["bytes"] > run["final_bytes"] > 0, "the final output is part of what is sent"
            assert run["updates"] >= 1 and run["ratio"] == run["bytes"] / run["final_bytes"]
