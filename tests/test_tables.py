"""`%chat_config` tables: wrapped, never cut, and inert in terminals and in HTML."""

from __future__ import annotations

import pytest

from ipychat._tables import Table

LONG = "word " * 40 + "x" * 130


@pytest.mark.parametrize("width", [40, 60, 100, 200])
def test_long_values_wrap_within_the_width_and_nothing_is_lost(width):
    table = Table(["#", "role", "content"], [("0", "assistant", LONG), ("1", "user", "short")])
    text = table.text(width)
    assert all(len(line) <= width for line in text.splitlines()), text
    content_start = text.splitlines()[0].index("content")
    rebuilt = "".join(line[content_start:] for line in text.splitlines()[1:-1])
    assert rebuilt.replace(" ", "") == LONG.replace(" ", "")
    assert text.splitlines()[-1].split() == ["1", "user", "short"]


def test_narrow_terminals_keep_a_readable_minimum():
    text = Table(["a", "b", "c"], [("1" * 30, "2" * 30, "3" * 30)]).text(10)
    assert all(len(line) <= 3 * 8 + 4 for line in text.splitlines())
    assert text.count("1") == 30 and text.count("3") == 30


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("title\x1b]0;pwned\x07", "title\\x1b]0;pwned\\x07"),
        ("clip\x1b]52;c;ZXZpbA==\x07", "\\x1b]52;c;ZXZpbA==\\x07"),
        ("over\rwrite", "over\\x0dwrite"),
        ("csi\x9b2J", "csi\\x9b2J"),
        ("bidi \u202egnp.exe", "bidi \\u202egnp.exe"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
    ],
)
def test_control_and_invisible_characters_are_shown_not_obeyed(value, shown):
    text = repr(Table(["value"], [(value,)]))
    assert shown in text
    assert not any((ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F for c in text)


def test_lines_inside_a_cell_stay_in_their_column():
    text = Table(["k", "v"], [("a", "one\ntwo"), ("b", "three")]).text(80)
    assert text.splitlines() == ["k  v", "a  one", "   two", "b  three"]


def test_html_cells_are_escaped():
    rendered = Table(["<b>h</b>"], [("<script>alert(1)</script>&",)])._repr_html_()
    assert "<script>" not in rendered and "<b>" not in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;" in rendered
