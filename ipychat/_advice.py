"""What to do about a failed request, said the notebook way: the magics' tail for an error.

The plain Python API names settings (`timeout`, `history_limit`) and never magics; errors carry
`setting`, `suggested` and `overflow`, and this turns them into `%chat_config ...` or `%%chat`
options for the one-line `UsageError`.
"""

from __future__ import annotations

__all__ = ["with_advice"]

_SETTINGS_WITH_VALUES = ("timeout", "idle_timeout", "base_url", "history_limit")


def with_advice(exc: BaseException) -> str:
    """`str(exc)` plus how to act on it from a notebook, when the error says what decides it."""
    text = str(exc)
    if getattr(exc, "overflow", False):
        return (
            f"{text} In a notebook: %%chat --new starts afresh, %chat_config --undo drops the "
            "last exchange, %chat_config history_limit=4 sends only the last 4."
        )
    setting = getattr(exc, "setting", None)
    suggested = getattr(exc, "suggested", None)
    if setting == "api_key":
        return f"{text} Set it with %chat_config --api-key."
    if setting in _SETTINGS_WITH_VALUES and suggested:
        return f"{text} Change it with %chat_config {setting}={suggested}."
    return text
