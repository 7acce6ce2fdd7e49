"""The reply: what the model said, how the generation ended, and what it cost.

A `Reply` is a plain value, kept in kernel variables for analysis. It never holds the API key:
`params` are the request's generation parameters only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CodeBlock", "Reply", "Usage"]


@dataclass(frozen=True)
class Usage:
    """Token counts as the server reported them."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None

    @classmethod
    def from_json(cls, data: object) -> Usage | None:
        if not isinstance(data, dict):
            return None
        values = {k: data.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        counts = {
            k: v if isinstance(v, int) and not isinstance(v, bool) else None
            for k, v in values.items()
        }
        if counts["total_tokens"] is None and None not in (
            counts["prompt_tokens"],
            counts["completion_tokens"],
        ):
            counts["total_tokens"] = counts["prompt_tokens"] + counts["completion_tokens"]  # type: ignore[operator]
        if all(v is None for v in counts.values()):
            return None
        return cls(**counts)


@dataclass(frozen=True)
class CodeBlock:
    """A fenced code block found in a reply."""

    language: str
    code: str

    def __str__(self) -> str:
        return self.code


@dataclass
class Reply:
    """One assistant reply. `str(reply)` is its text; `complete` is False for a broken stream.

    `finish_reason` is `stop`, `length` (max_tokens reached), something starting with
    `content_filter`, or None when the stream ended before the server said why.
    """

    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    id: str | None = None
    model: str | None = None
    created: int | None = None
    time_to_first_token: float | None = None
    elapsed: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    prompt: str = ""
    complete: bool = True
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    budget_left: str | None = None  # what the session's budget has left, for the status line
    data: Any = None  # with a schema: the validated value (a model instance for a model class)
    filled: list[str] = field(default_factory=list)  # `{name}` references filled into the prompt

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        tokens = self.usage.total_tokens if self.usage else None
        preview = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        state = "" if self.complete else ", complete=False"
        return (
            f"Reply(model={self.model!r}, finish_reason={self.finish_reason!r}, "
            f"total_tokens={tokens!r}{state}, text={preview!r})"
        )

    @property
    def truncated(self) -> bool:
        """True when generation stopped at max_tokens."""
        return self.finish_reason == "length"

    @property
    def filtered(self) -> bool:
        """True when a content safety filter stopped or changed the reply."""
        return bool(self.finish_reason and self.finish_reason.startswith("content_filter"))

    def code_blocks(self, language: str | None = None) -> list[CodeBlock]:
        """The fenced code blocks, in order; only those of `language` when given."""
        from ._render import fenced_blocks

        blocks = [CodeBlock(lang, code) for lang, code in fenced_blocks(self.text)]
        if language is not None:
            blocks = [b for b in blocks if b.language.lower() == language.lower()]
        return blocks

    def json(self) -> Any:
        """The reply parsed as JSON; a ```json fence (or a single fence) around it is accepted."""
        text = self.text.strip()
        try:
            return json.loads(text)
        except ValueError:
            pass
        blocks = self.code_blocks()
        candidates = [b for b in blocks if b.language.lower() in ("json", "jsonc")] or blocks
        for block in candidates:
            try:
                return json.loads(block.code)
            except ValueError:
                continue
        raise ValueError("The reply is not JSON and holds no ```json block that parses.")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for export and analysis."""
        return asdict(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """What IPython prints for `%chat hi` in a terminal: the text, then its status line.

        Model text never reaches a terminal raw: escapes and controls are shown, not obeyed.
        """
        from ._render import status_line
        from ._safetext import one_line, terminal_safe

        printer.text(f"{terminal_safe(self.text)}\n\n[{one_line(status_line(self))}]")

    def _repr_html_(self) -> str:
        from ._render import render_reply_html

        return render_reply_html(self)
