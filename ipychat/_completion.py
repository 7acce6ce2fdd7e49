"""Tab completion for `%%chat`, `%chat` and `%chat_config`: options, settings, sessions.

Completion is data, not parsing: the options come from each magic's argparse parser, the
setting names from `Settings.KEYS`, the session names from the registry. One IPython matcher
(API v2, `IPCompleter.custom_matchers`) answers for lines that start with one of our magics,
and suppresses the Python-name matchers there; other lines it leaves alone.
"""

from __future__ import annotations

from typing import Any

__all__ = ["register", "unregister"]

_SESSION_OPTIONS = ("-s", "--session", "--rename")
_KEYS = {
    "chat": ("%chat", "%%chat", "%ipychat", "%%ipychat"),
    "config": ("%chat_config", "%ipychat_config"),
}


def _options(magic: Any) -> list[str]:
    return sorted(flag for flag in magic.parser._option_string_actions if flag.startswith("--"))


def candidates(magics: Any, which: str, before: str, symbol: str) -> list[str]:
    """What may complete `symbol`, given the line before it (without the magic's name)."""
    words = before.split()
    if words and not before[-1:].isspace():  # the cursor is in the last word
        words.pop()
    previous = words[-1] if words else ""
    magic = magics.ipychat if which == "chat" else magics.ipychat_config
    if previous in _SESSION_OPTIONS:
        return magics.sessions.names()
    if which == "config" and previous == "--unset":
        return list(magics.settings.KEYS)
    if symbol.startswith("-"):
        return _options(magic)
    if which == "config":
        return [f"{key}=" for key in magics.settings.KEYS]
    return []


def _which(line: str) -> str | None:
    """Which of our magics the line calls ("chat" or "config"), or None."""
    first = line.split(None, 1)[0] if line.strip() else ""
    for which, keys in _KEYS.items():
        if first in keys:
            return which
    return None


def _matcher(magics: Any) -> Any:
    from IPython.core.completer import SimpleCompletion, context_matcher

    @context_matcher()
    def ipychat_matcher(context: Any) -> dict[str, Any]:
        line = context.text_until_cursor
        which = _which(line)
        if which is None or " " not in line:  # not ours, or still typing the magic's name
            return {"completions": []}
        before = line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else ""
        found = candidates(magics, which, before, context.token)
        token = context.token
        matches = [SimpleCompletion(c, type="ipychat") for c in found if c.startswith(token)]
        # Only ours: Python names and keywords make no sense in a magic's options.
        return {"completions": matches, "suppress": True}

    return ipychat_matcher


def register(shell: Any, magics: Any) -> None:
    unregister(shell)
    shell.Completer.custom_matchers.append(_matcher(magics))


def unregister(shell: Any) -> None:
    matchers = shell.Completer.custom_matchers
    matchers[:] = [m for m in matchers if getattr(m, "__name__", "") != "ipychat_matcher"]
