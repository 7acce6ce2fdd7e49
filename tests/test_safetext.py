"""Untrusted text never reaches a terminal or a label raw: every control is shown, none obeyed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipychat._safetext import one_line, terminal_safe, visible

PAYLOADS = [
    "\x1b]52;c;ZXZpbA==\x07",  # OSC 52: write the clipboard
    "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\",  # OSC 8 hyperlink
    "\x1b]0;owned\x07",  # window title
    "\x1b[2J\x1b[H",  # clear the screen
    "\x1b[8mhidden\x1b[0m",  # concealed text
    "safe\rEVIL",  # bare CR overwrites the line
    "\x9b31m",  # 8-bit CSI
    "\x9d0;title\x9c",  # 8-bit OSC ... ST
    "\x00\x07\x08\x7f",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_terminal_safe_leaves_no_control_but_newline_and_tab(payload: str) -> None:
    out = terminal_safe(payload)
    assert not any(ord(c) < 0x20 and c not in "\n\t" for c in out)
    assert not any(0x7F <= ord(c) <= 0x9F for c in out)
    assert "\\x" in out  # shown, not dropped


def test_terminal_safe_keeps_text_newlines_tabs_and_emoji() -> None:
    text = "line one\n\tindented 👩\u200d💻 café"
    assert terminal_safe(text) == text
    assert terminal_safe("a\r\nb") == "a\nb"


def test_visible_shows_bidi_and_zero_width() -> None:
    assert visible("paypal.com\u202egnp.exe") == "paypal.com\\u202egnp.exe"
    assert visible("ad\u200bmin") == "ad\\u200bmin"
    assert visible("\u2066x\u2069") == "\\u2066x\\u2069"


def test_one_line_folds_and_cuts() -> None:
    assert one_line("a\n\n  b\tc") == "a b c"
    cut = one_line("word " * 100, limit=20)
    assert len(cut) <= 20 and cut.endswith("…")


@given(st.text())
def test_any_text_comes_out_terminal_safe(text: str) -> None:
    for out in (terminal_safe(text), visible(text), one_line(text)):
        assert not any(
            (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F for c in out
        )
    assert "\n" not in one_line(text)
