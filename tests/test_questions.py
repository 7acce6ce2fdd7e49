"""The input transformer that keeps the `?` of `%chat` lines (see also test_sending_kernel)."""

from __future__ import annotations

import pytest

from ipychat._questions import protect_questions


def transform(cell: str) -> str:
    return "".join(protect_questions(cell.splitlines(keepends=True)))


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("%chat What is Python?\n", "get_ipython().run_line_magic('chat', 'What is Python?')\n"),
        ("%ipychat Why??", "get_ipython().run_line_magic('ipychat', 'Why??')"),
        ("a = %chat  -m x  ok?\n", "a = get_ipython().run_line_magic('chat', '-m x  ok?')\n"),
        ("xs[0] = %chat it's?\n", "xs[0] = get_ipython().run_line_magic('chat', \"it's?\")\n"),
        ("def f():\n  r = %chat f?", "def f():\n  r = get_ipython().run_line_magic('chat', 'f?')"),
    ],
)
def test_chat_lines_ending_in_a_question_mark_become_magic_calls(cell, expected):
    assert transform(cell) == expected


@pytest.mark.parametrize(
    "cell",
    [
        "%chat?\n",  # help for the magic
        "%chat ??\n",
        "%chat no question\n",
        "%chat_config model?\n",  # not %chat
        "%%chat\n%chat inside a cell magic?\n",
        'text = """\n%chat inside a string?\n"""\n',
        "t = '''\n%chat also inside?\n'''\n",
        "x = 1 # %chat a comment?\n",
        "print('%chat not at the start?')\n",
    ],
)
def test_other_lines_are_left_alone(cell):
    assert transform(cell) == cell


def test_after_a_closed_string_lines_are_magics_again():
    cell = 'doc = """\n%chat no?\n"""  # a comment with """ in it\n%chat yes?\n'
    assert transform(cell).splitlines()[-1] == "get_ipython().run_line_magic('chat', 'yes?')"
