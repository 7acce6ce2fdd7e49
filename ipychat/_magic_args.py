"""Reading magic lines: options vs message, quotes, and `key=value` assignments.

Options are split the way a shell splits a command line, minus backslash escapes (Windows
paths and `\\n` in a stop sequence stay as typed): words are separated by spaces, and quotes
group a value and are removed, also inside a word (`--system="Be kind."`). A line magic's
message starts at the first word that is not an option (or after `--`) and is kept exactly
as written, quotes and all. `%chat_config` values stay Python literals (quotes, brackets).
"""

from __future__ import annotations

import re
from collections import ChainMap
from collections.abc import Callable, Iterator
from typing import Any

from IPython.core.error import UsageError

__all__ = [
    "Filler",
    "help_text",
    "one_line_error",
    "parse",
    "split_assignment",
    "split_config_line",
    "split_line_magic",
    "words",
]

# An option next to which argparse would echo a value that may be the key (`--api-key=sk-...`).
_KEY_OPTION = re.compile(r"(?:^|\s)--(?:a|[\w-]*key)")
_LOOKS_LIKE_OPTION = re.compile(r"-[A-Za-z-]")


def _words(line: str) -> Iterator[tuple[str, int, int]]:
    """(word without its quotes, start, end) for each word, read lazily left to right."""
    i, n = 0, len(line)
    while i < n:
        if line[i].isspace():
            i += 1
            continue
        start, value = i, []
        while i < n and not line[i].isspace():
            if line[i] in "\"'":
                close = line.find(line[i], i + 1)
                if close == -1:
                    raise UsageError(
                        f"Unbalanced quotes in the options (a {line[i]} is not closed); check them."
                    )
                value.append(line[i + 1 : close])
                i = close + 1
            else:
                value.append(line[i])
                i += 1
        yield "".join(value), start, i


def words(line: str) -> list[str]:
    """The option words of `line`, quotes removed: `-s "my notes" -m x` -> [-s, my notes, -m, x]."""
    return [word for word, _, _ in _words(line)]


def _takes_value(action: Any) -> bool:
    return action.nargs != 0


def parse(magic: Any, line: str | list[str], *, fill: Callable[[str], str] | None = None) -> Any:
    """The magic's arguments from `line` (or its words); each word is filled by `fill` if given.

    Filling word by word keeps a filled value in one piece: `--system {prompt}` is one value
    however many spaces the prompt holds.
    """
    tokens = words(line) if isinstance(line, str) else list(line)
    if fill is not None:
        tokens = [fill(token) for token in tokens]
    try:
        return magic.parser.parse_args(tokens)
    except UsageError:
        if _KEY_OPTION.search(" ".join(tokens)):
            raise UsageError(
                "Could not read the options; the message is not shown as it may hold the key. "
                "--api-key takes no value: run %chat_config --api-key alone and type the key."
            ) from None
        raise


def help_text(magic: Any) -> str:
    """What `-h` / `--help` prints: the usage line and every option, as `%magic?` shows them."""
    text = str(magic.parser.format_help())
    return text.removeprefix("::\n\n").replace("%ipychat", "%chat", 1)


def split_line_magic(method: Any, line: str) -> tuple[str, str]:
    """`%chat -m x -t 0.2 what is {x}?` -> ("-m x -t 0.2", "what is {x}?").

    The message starts at the first word that is not an option, or after `--`
    (`%chat -- -v means?` sends "-v means?"), and is not read for quotes: it may hold an
    apostrophe. A word that looks like an unknown option is refused rather than sent as
    text: a typo in an option must not become the message.
    """
    actions = method.parser._option_string_actions
    i, n = 0, len(line)
    end = 0
    expect_value = False
    while i < n:
        if line[i].isspace():
            i += 1
            continue
        if not expect_value and not _LOOKS_LIKE_OPTION.match(line, i):
            break
        word, start, stop = next(_words(line[i:]))
        start, stop = start + i, stop + i
        i = end = stop
        if expect_value:
            expect_value = False
            continue
        if word == "--":
            return line[:start], line[stop:].lstrip(" ")
        action = actions.get(word.split("=")[0])
        if action is None:
            raise UsageError(
                f"Unknown option {word.split('=')[0]!r}; see %chat -h. To send text that "
                "starts with a dash, put -- before it: %chat -- -v means?"
            )
        expect_value = _takes_value(action) and "=" not in word
    return line[:end], line[end:].lstrip(" ")


def split_config_line(parser: Any, line: str) -> tuple[list[str], list[str], list[str]]:
    """A `%chat_config` line as (option words, `key=value` parts, bare setting names).

    Parts are split on spaces outside quotes and brackets, so values may be any Python literal
    (`b="x y"`, `c={"k": [1, 2]}`); an option's value is the next part, quotes removed.
    """
    options: list[str] = []
    assignments: list[str] = []
    names: list[str] = []
    parts = _config_parts(line)
    actions = parser._option_string_actions
    i = 0
    while i < len(parts):
        part = parts[i]
        i += 1
        if part.startswith("-"):
            options.append(part)
            action = actions.get(part.split("=")[0])
            if action is None or "=" in part or not _takes_value(action):
                continue
            many = action.nargs in ("+", "*")
            while i < len(parts) and not parts[i].startswith("-"):
                if many and "=" in parts[i]:
                    break
                options.append(words(parts[i])[0] if words(parts[i]) else "")
                i += 1
                if not many:
                    break
        elif "=" in part:
            assignments.append(part)
        elif part.isidentifier():
            names.append(part)
        else:
            # `temperature 0.3`: show the pair, so the fix (`temperature=0.3`) is plain to see.
            if names and parts[i - 2] == names[-1]:
                part = f"{names[-1]} {part}"
            # Next to a key option or setting the stray word may be the key: never echo it then.
            shown = "a word that is not key=value" if "key" in line.lower() else repr(part)
            raise UsageError(
                f"Expected key=value, got {shown}; quote values that contain spaces, "
                "e.g. %chat_config model=ops-qwen-turbo system='Be brief.'."
            )
    return options, assignments, names


def _config_parts(line: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    quote = ""
    for char in line.strip():
        if quote:
            current.append(char)
            if char == quote and (len(current) < 2 or current[-2] != "\\"):
                quote = ""
            continue
        if char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char.isspace() and depth <= 0:
            if current:
                parts.append("".join(current))
                current = []
            continue
        current.append(char)
    if quote or depth > 0:
        raise UsageError("Unbalanced quotes or brackets in %chat_config; check the values.")
    if current:
        parts.append("".join(current))
    return parts


def split_assignment(part: str) -> tuple[str, str]:
    """`b="x y"` -> ("b", '"x y"'); the key must be a name."""
    key, eq, value = part.partition("=")
    if not eq or not key.strip().isidentifier():
        shown = "a word that is not key=value" if "key" in part.lower() else repr(part)
        raise UsageError(
            f"Expected key=value, got {shown}; quote values that contain spaces, "
            "e.g. %chat_config model=ops-qwen-turbo system='Be brief.'."
        )
    return key.strip(), value


class Filler:
    """Fills `{name}` from the caller's scope: a function's locals first, then the user's names.

    Callable on each piece of text (the message, each option value); `names` collects what was
    filled, for the status line. A value that cannot become text is one `UsageError` line.
    """

    def __init__(self, magics: Any, local_ns: Any) -> None:
        user_ns = magics.shell.user_ns if magics.shell is not None else {}
        local = local_ns is not None and local_ns is not user_ns
        self.scope = ChainMap(local_ns, user_ns) if local else user_ns
        self.names: tuple[str, ...] = ()

    def __call__(self, text: str) -> str:
        from ._interpolate import FillError, fill
        from ._safetext import one_line

        try:
            filled = fill(text, self.scope)
        except FillError as exc:
            raise UsageError(one_line(str(exc))) from None
        self.names += tuple(name for name in filled.names if name not in self.names)
        return filled.text


def one_line_error(error: object) -> str:
    """An error's text as one safe line, with the notebook's way to act on it (`_advice`)."""
    from ._advice import with_advice
    from ._safetext import one_line  # error paths only: %load_ext need not load it

    return one_line(with_advice(error), limit=2000)
