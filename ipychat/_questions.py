"""Let `%chat What is Python?` send the question instead of asking IPython for help.

IPython reads a trailing `word?` as a help request (`Object 'Python' not found.`), and its help
transformer runs before the line magic is called. A cleanup transformer runs first: it turns a
`%chat TEXT` / `%ipychat TEXT` line (also `x = %chat TEXT`, also indented inside a function)
into the same `get_ipython().run_line_magic(...)` call IPython itself would make, so the `?`
stays part of the message. `%chat?` and `%chat??` with no text stay help requests, and a
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
    for line in lines:
        match = _LINE.match(line)
        if match is None or not match["args"].rstrip().endswith("?"):
            out.append(line)
            continue
        call = f"get_ipython().run_line_magic({match['name']!r}, {match['args']!r})"
        out.append(f"{match['indent']}{match['target'] or ''}{call}{match['end'] or ''}")
    return out
