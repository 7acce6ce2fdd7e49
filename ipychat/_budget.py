"""Per-session budgets: `max_requests_per_session` and `max_tokens_per_session`.

A teacher (or a careful user of a paid key) caps what one session may spend. The check runs
before anything is sent: a request over the request budget, or whose history alone would not
fit in the tokens left, is refused with one clear line; otherwise `max_tokens` is capped to what
is left, so the reply cannot overrun it. Spending is counted per session (a reset does not
refund it) from the server's usage, or estimated (4 characters a token) without one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import ChatError

if TYPE_CHECKING:
    from ._reply import Reply
    from ._resolved import ResolvedSettings

__all__ = ["BudgetError", "admit", "charge", "spent"]


class BudgetError(ChatError):
    """The session's budget does not allow this request; nothing was sent."""


@dataclass(eq=False)
class Spent:
    """What a session has spent. Shared, never copied: a cell's trial copy of the session
    (see `_turn`) spends from the session's own budget, even when its turn is not kept."""

    requests: int = 0
    tokens: int = 0

    def __copy__(self) -> Spent:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Spent:
        return self


def spent(conversation: Any) -> Spent:
    """What this conversation has spent so far (kept on it, so a reset does not refund it)."""
    holder = vars(conversation).get("_budget_spent")
    if holder is None:
        holder = Spent()
        vars(conversation)["_budget_spent"] = holder
    return holder


def estimate(messages: list[dict[str, Any]]) -> int:
    """Tokens a request's messages will take, roughly: 4 characters a token, 4 per message."""
    return sum(math.ceil(len(str(m.get("content") or "")) / 4) + 4 for m in messages)


def admit(
    conversation: Any,
    settings: ResolvedSettings,
    messages: list[dict[str, Any]],
    overrides: dict[str, Any],
) -> dict[str, Any]:
    """Refuse a request the budget cannot take, before sending; else the overrides to send with."""
    max_requests = settings.max_requests_per_session
    max_tokens = settings.max_tokens_per_session
    if max_requests is None and max_tokens is None:
        return overrides
    used = spent(conversation)
    name = getattr(conversation, "name", "default")
    if max_requests is not None and used.requests >= max_requests:
        raise BudgetError(
            f"Session {name!r} has used all {max_requests} requests of its budget "
            "(max_requests_per_session); nothing was sent. Start another session or raise "
            "max_requests_per_session."
        )
    if max_tokens is None:
        return overrides
    left = max_tokens - used.tokens
    needed = estimate(messages)
    if needed >= left:
        raise BudgetError(
            f"Session {name!r} has {max(left, 0)} of its {max_tokens} tokens left "
            f"(max_tokens_per_session) and this request needs about {needed} before any reply; "
            "nothing was sent. Start another session, send less history, or raise the budget."
        )
    cap = left - needed
    current = overrides.get("max_tokens", settings.max_tokens)
    return {**overrides, "max_tokens": cap if current is None else min(current, cap)}


def charge(
    conversation: Any,
    settings: ResolvedSettings,
    messages: list[dict[str, Any]],
    reply: Reply | None,
) -> None:
    """Count one sent request and its tokens; note what is left on the reply's status line."""
    max_requests = settings.max_requests_per_session
    max_tokens = settings.max_tokens_per_session
    if max_requests is None and max_tokens is None:
        return
    used = spent(conversation)
    used.requests += 1
    usage = reply.usage if reply is not None else None
    if usage is not None and usage.total_tokens is not None:
        used.tokens += usage.total_tokens
    else:
        text = (reply.text + reply.reasoning) if reply is not None else ""
        used.tokens += estimate(messages) + math.ceil(len(text) / 4)
    if reply is not None:
        reply.budget_left = left_text(used, max_requests, max_tokens)


def left_text(used: Spent, max_requests: int | None, max_tokens: int | None) -> str:
    """`budget: 3/10 requests, 812/2000 tokens left`."""
    parts = []
    if max_requests is not None:
        parts.append(f"{max(max_requests - used.requests, 0)}/{max_requests} requests")
    if max_tokens is not None:
        parts.append(f"{max(max_tokens - used.tokens, 0)}/{max_tokens} tokens")
    return "budget: " + ", ".join(parts) + " left"
