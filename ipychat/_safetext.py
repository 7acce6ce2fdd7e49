"""Untrusted text made visible: control characters and invisible formatting shown, not obeyed.

Model and server text reaches terminals (where ESC starts a sequence that can set the window
title, write the clipboard with OSC 52, or clear the screen) and status lines and link text
(where bidi overrides and zero-width characters let text lie about what it says). Nothing here
removes text: each such character is replaced by a visible escape, so what was sent can still
be read, and nothing that was sent is obeyed.

    >>> terminal_safe("hi\\x1b]52;c;ZXZpbA==\\x07 there\\r\\n")
    'hi\\\\x1b]52;c;ZXZpbA==\\\\x07 there\\n'
    >>> visible("paypal.com\\u202egnp.exe")
    'paypal.com\\\\u202egnp.exe'
"""

from __future__ import annotations

import re

__all__ = ["FORMAT_CHARS", "one_line", "terminal_safe", "visible"]

# C0 controls but tab and newline, DEL, and the C1 controls (0x80-0x9f: CSI, OSC, ST...).
_CONTROL = "\x00-\x08\x0b-\x1f\x7f-\x9f"
# Bidi embeddings, overrides and isolates; marks; zero-width spaces and joiners; word joiner and
# invisible operators; the BOM; interlinear annotation and line/paragraph separators.
FORMAT_CHARS = (
    "\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff\ufff9-\ufffb"
)
_TERMINAL = re.compile(f"[{_CONTROL}]")
_VISIBLE = re.compile(f"[{_CONTROL}{FORMAT_CHARS}]")
_WHITESPACE = re.compile(r"\s+")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def terminal_safe(text: str) -> str:
    """Text that can be written to a terminal: only newline and tab pass as controls.

    CRLF becomes a newline; a bare CR, ESC and every other C0/C1 control is shown as `\\xNN`.
    Format characters (bidi, zero-width) pass: a terminal does not obey them as commands, and
    joiners belong inside emoji. Use `visible` where text must not be able to lie.
    """
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    return _TERMINAL.sub(_escape, text)


def visible(text: str) -> str:
    """Controls and invisible format characters (bidi, zero-width) shown as escapes.

    For text that names something: a model name in the status line, a link's text, a setting.
    Newline and tab are kept; pass the result to `one_line` to fold them too.
    """
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    return _VISIBLE.sub(_escape, text)


def one_line(text: str, limit: int = 300) -> str:
    """`visible` text on one line: whitespace runs folded to a space, cut with an ellipsis."""
    text = _WHITESPACE.sub(" ", visible(text)).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text
