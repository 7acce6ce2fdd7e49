"""`python -m ipychat lesson NOTEBOOK.ipynb`: a saved notebook's chats as a lesson script.

Each `%%chat` cell becomes a turn. Where the reply's output carries the saved exchange
(`application/vnd.ipychat.exchange+json`: the user message as sent, reply, reasoning, usage,
timings), that is used; otherwise what the outputs show: the cell's text after the `%%chat`
line as the prompt, and the reply's Markdown or plain text. Reads the notebook as JSON (stdlib).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._lesson_write import HEADER, dumps_turns, turn_table

__all__ = ["EXCHANGE_MIME", "lesson_from_notebook", "turns_from_notebook"]

EXCHANGE_MIME = "application/vnd.ipychat.exchange+json"
_USAGE = ("prompt_tokens", "completion_tokens", "total_tokens")


def lesson_from_notebook(path: str | Path) -> str:
    """The lesson script's text for the notebook at `path`."""
    turns = turns_from_notebook(path)
    if not turns:
        raise ValueError("it has no %%chat cell with a saved reply.")
    return HEADER.format(name="LESSON.toml") + dumps_turns(turns)


def turns_from_notebook(path: str | Path) -> list[dict[str, Any]]:
    try:
        notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"not a notebook (not JSON: {error})") from None
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        raise ValueError("not a notebook (no cells list)")
    turns = []
    for cell in cells:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            turn = _turn(_text(cell.get("source")), cell.get("outputs") or [])
            if turn is not None:
                turns.append(turn)
    return turns


def _turn(source: str, outputs: list[Any]) -> dict[str, Any] | None:
    first, _, body = source.lstrip().partition("\n")
    if not first.startswith("%%chat"):
        return None
    datas = [o.get("data") for o in outputs if isinstance(o, dict)]
    datas = [d for d in datas if isinstance(d, dict)]
    for data in reversed(datas):
        if EXCHANGE_MIME in data:
            turn = _from_exchange(data[EXCHANGE_MIME])
            if turn is not None:
                return turn
    prompt = body.strip()
    for data in reversed(datas):
        reply = _text(data.get("text/markdown") or data.get("text/plain")).strip()
        if prompt and reply:
            return turn_table(prompt, reply)
    return None


def _from_exchange(data: Any) -> dict[str, Any] | None:
    if isinstance(data, (str, list)):
        try:
            data = json.loads(_text(data))
        except ValueError:
            return None
    if not isinstance(data, dict) or data.get("incomplete"):
        return None
    user, reply = data.get("user"), data.get("reply")
    if not (isinstance(user, str) and user.strip() and isinstance(reply, str) and reply.strip()):
        return None
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    counts = {key: usage.get(key) for key in _USAGE}
    whole = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values())
    reasoning = data.get("reasoning") if isinstance(data.get("reasoning"), str) else ""
    finish = data.get("finish_reason") if isinstance(data.get("finish_reason"), str) else None
    return turn_table(
        user,
        reply,
        reasoning=reasoning,
        finish_reason=finish,
        usage=counts if whole else None,
        timing=_timing(data.get("timings"), counts["completion_tokens"] if whole else None),
    )


def _timing(timings: Any, tokens: int | None) -> dict[str, Any] | None:
    """The saved time to first token and elapsed time as a lesson's timing, when both are there.

    The notebook keeps no chunk count, so the completion tokens stand for it.
    """
    if not isinstance(timings, dict) or not tokens:
        return None
    first, elapsed = timings.get("time_to_first_token"), timings.get("elapsed")
    if not all(isinstance(v, (int, float)) and v >= 0 for v in (first, elapsed)):
        return None
    span = elapsed - first
    rate = (tokens - 1) / span if tokens > 1 and span > 0 else 0.0
    return {
        "time_to_first_token": round(first, 4),
        "tokens_per_second": round(rate, 3),
        "tokens": tokens,
    }


def _text(value: Any) -> str:
    """nbformat keeps multi-line text as one string or as a list of lines."""
    if isinstance(value, list):
        return "".join(str(part) for part in value)
    return value if isinstance(value, str) else ""
