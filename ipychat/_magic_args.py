"""Reading magic lines: options vs message, quotes, and `key=value` assignments.

IPython's `parse_argstring` does the option parsing; these helpers cover what it does not: a
line magic's message follows its options on the same line, quotes are kept by IPython's
splitter, and `%chat_config` values may be any Python literal with spaces inside.
"""

from __future__ import annotations

import re
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import parse_argstring

__all__ = ["parse", "split_assignments", "split_line_magic", "unquote"]

# An option next to which argparse would echo a value that may be the key (`--api-key=sk-...`).
_KEY_OPTION = re.compile(r"(?:^|\s)--(?:a|[\w-]*key)")


def parse(magic: Any, line: str) -> Any:
    """`parse_argstring`, with unbalanced quotes and a misplaced key turned into clear errors."""
    try:
        return unquote(parse_argstring(magic, line))
    except ValueError as exc:  # from shlex: "No closing quotation"
        raise UsageError(f"Unbalanced quotes in the options ({exc}); check them.") from None
    except UsageError:
        if _KEY_OPTION.search(line):
            raise UsageError(
                "Could not read the options; the message is not shown as it may hold the key. "
                "--api-key takes no value: run %chat_config --api-key alone and type the key."
            ) from None
        raise


def _strip_quotes(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] in "\"'":
        return value[1:-1]
    return value


def unquote(args: Any) -> Any:
    """IPython's argument splitter keeps quotes: `--system "Be brief."` -> `Be brief.`."""
    for name, value in vars(args).items():
        if isinstance(value, list):
            setattr(args, name, [_strip_quotes(v) for v in value])
        else:
            setattr(args, name, _strip_quotes(value))
    return args


def split_line_magic(method: Any, line: str) -> tuple[str, str]:
    """`%chat -m x -t 0.2 what is {x}?` -> ("-m x -t 0.2", "what is {x}?")."""
    parser = method.parser
    words = line.split(" ")
    taken = 0
    while taken < len(words):
        word = words[taken]
        if not word:
            taken += 1
            continue
        if not word.startswith("-") or word == "-" or word[1:2].isdigit():
            break
        action = parser._option_string_actions.get(word.split("=")[0])
        if action is None:
            break
        taken += 1
        if action.nargs != 0 and "=" not in word:
            taken += 1
    return " ".join(words[:taken]), " ".join(words[taken:])


def split_assignments(line: str) -> list[tuple[str, str]]:
    """`a=1 b="x y" c={"k": [1, 2]}` -> [("a", "1"), ("b", '"x y"'), ("c", '{"k": [1, 2]}')].

    Splits on spaces outside quotes and brackets, so values may be any Python literal.
    """
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
    assignments = []
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq or not key.strip().isidentifier():
            # Next to `api_key= ` the stray word may be the key itself: never echo it then.
            shown = "a word that is not key=value" if "api_key" in line else repr(part)
            raise UsageError(
                f"Expected key=value, got {shown}; quote values that contain spaces, "
                "e.g. %chat_config model=ops-qwen-turbo system='Be brief.'."
            )
        assignments.append((key.strip(), value))
    return assignments
