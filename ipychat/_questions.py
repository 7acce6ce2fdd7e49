"""Let `%chat What is Python?` send the question instead of asking IPython for help.

IPython reads a trailing `word?` as a help request (`Object 'Python' not found.`), and its help
transformer runs before the line magic is called. A cleanup transformer runs first: it turns a
`%chat TEXT` / `%ipychat TEXT` line (also `x = %chat TEXT`, also indented inside a function)
into the same `get_ipython().run_line_magic(...)` call IPython itself would make, so the `?`
stays part of the message. `%chat?`, `%chat??` and `%chat ?` with no text stay help requests, and a
`%%chat` cell's body is never touched.
"""

from __future__ import annotations

import re

__all__ = ["protect_questions"]

_LINE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<target>[A-Za-z_][\w.]*(?:\[[^\]\n]*\])?[ \t]*=[ \t]*)?"
    r"%(?P<name>chat|ipychat)[ \t]+(?P<args>\S.*?)(?P<end>\r?\n)?$",
    re.DOTALL,
)


def protect_questions(lines: list[str]) -> list[str]:
    """IPython cleanup transform: rewrite `%chat TEXT` lines whose TEXT ends in `?`."""
    if not lines or lines[0].lstrip().startswith("%%"):
        return lines
    out = []
    quote = ""  # the triple quote of a string that spans lines, while inside one
    for line in lines:
        match = None if quote else _LINE.match(line)
        quote = _open_triple_quote(line, quote)
        args = match["args"].rstrip() if match else ""
        if not args.endswith("?") or not args.strip("?"):  # `%chat ??` stays a help request
            out.append(line)
            continue
        call = f"get_ipython().run_line_magic({match['name']!r}, {match['args']!r})"
        out.append(f"{match['indent']}{match['target'] or ''}{call}{match['end'] or ''}")
    return out


def _open_triple_quote(line: str, quote: str) -> str:
    """The triple quote still open after `line` ("" if none): a `%chat` line inside a
    multi-line string is text, not a magic. Good enough for cells; not a tokenizer."""
    for match in re.finditer(r'"""|\'\'\'|#', line):
        token = match.group()
        if not quote and token == "#":
            break
        if not quote:
            quote = token
        elif token == quote:
            quote = ""
    return quote
