"""Results as Markdown (for the README) and as JSON (for the test and for comparisons)."""

from __future__ import annotations

from typing import Any

from .common import Goal, Section

__all__ = ["markdown", "to_json"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _result(goal: Goal) -> str:
    return "PASS" if goal.passed else "**MISS**"


def _machine(info: dict[str, Any]) -> list[str]:
    packages = ", ".join(f"{name} {version}" for name, version in info["packages"].items())
    lines = [
        f"- Code: {info['source']}",
        f"- Platform: {info['platform']}",
        f"- CPU: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable)",
        f"- Python: {info['python']}",
        f"- Packages: {packages}",
    ]
    load = info.get("load_average")
    if isinstance(load, dict) and None not in load.values():
        lines.append(
            f"- Load average (1 min) from other work: {load['start']:.2f} at the start, "
            f"{load['end']:.2f} at the end"
        )
    return lines


def markdown(sections: list[Section], machine: dict[str, Any], command: str, when: str) -> str:
    """The whole report: how to reproduce it, where it ran, every goal, then each benchmark."""
    lines = [
        "# ipychat benchmarks",
        "",
        f"Reproduce with `{command}` (from the repository root; `--quick` for a smoke run). "
        "Each benchmark runs against the bundled server (no network) in the same run on the "
        "same machine; values are medians over the runs with (min–max). Goals are "
        "informational: nothing here fails a build.",
        "",
        f"Run on {when}:",
        "",
        *_machine(machine),
        "",
        "## Goals",
        "",
        *_table(
            ["benchmark", "goal", "measured", "result"],
            [
                [section.title.split(" (")[0], goal.text, goal.measured, _result(goal)]
                for section in sections
                for goal in section.goals
            ],
        ),
    ]
    for section in sections:
        lines += ["", f"## {section.title}", "", section.method, ""]
        lines += _table(section.header, section.rows)
        for note in section.notes:
            lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def to_json(
    sections: list[Section], machine: dict[str, Any], command: str, when: str
) -> dict[str, Any]:
    return {
        "command": command,
        "when": when,
        "machine": machine,
        **{section.key: section.to_json() for section in sections},
    }
