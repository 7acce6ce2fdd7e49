from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipychat._interpolate import interpolate


class Watched:
    """Records every attribute looked up, to prove what was (not) touched."""

    def __init__(self) -> None:
        object.__setattr__(self, "looked_up", [])

    def __getattr__(self, name: str) -> Any:
        self.looked_up.append(name)
        if name == "boom":
            raise RuntimeError("side effect")
        return f"<{name}>"


NS: dict[str, Any] = {
    "x": 3,
    "name": "Ada",
    "price": 9.5,
    "obj": SimpleNamespace(title="Dune", _secret="hidden", inner=SimpleNamespace(n=7)),
    "d": {"key": "value", 1: "one", "a": {"b": "deep"}},
    "xs": [10, 20, 30],
    "In": ["", "print(1)", "x = 3", "df.head()"],
    "Out": {3: "<DataFrame>"},
    "watched": Watched(),
    "a": "A",
    "b": "B",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{x}", "3"),
        ("Hello {name}, costs {price}.", "Hello Ada, costs 9.5."),
        ("{obj.title}", "Dune"),
        ("{obj.inner.n}", "7"),
        ('{d["key"]}', "value"),
        ("{d['key']}", "value"),
        ("{d[1]}", "one"),
        ('{d["a"]["b"]}', "deep"),
        ("{xs[0]} {xs[-1]}", "10 30"),
        ("Explain: {In[3]} gave {Out[3]}", "Explain: df.head() gave <DataFrame>"),
        ("{a}{b}", "AB"),
        ("{xs}", "[10, 20, 30]"),
    ],
)
def test_references_are_filled(text: str, expected: str) -> None:
    assert interpolate(text, NS) == expected


@pytest.mark.parametrize(
    "text",
    [
        "{nope}",
        "{obj.missing}",
        "{xs[10]}",
        '{d["missing"]}',
        "{x[0]}",  # an int has no items
        "{In[99]}",
        "{Out[1]}",
    ],
)
def test_unknown_references_are_left_as_written(text: str) -> None:
    assert interpolate(text, NS) == text


@pytest.mark.parametrize(
    "text",
    [
        "{'a': 1, 'b': [x]}",
        '{"a": {"b": [1, 2]}, "x": 3}',
        '{"x": 1}',
        'print(f"{x!r} {x:>10} {x + 1} {name.upper()} {x=}")',
        "def f():\n    return {x: 1 for x in xs}",
        "{ x }",
        "{x }",
        "{\nx\n}",
        "{{ x }}",
        "\\frac{1}{2} + \\sqrt{2}",
        "{}",
        "{x",
        "x}",
        "{{",
        "}}",
        "{1}",
        "{x, name}",
        "{*xs}",
        "{xs[0:2]}",
        "{xs[x]}",  # a key that is a name is not looked up
        "{d[1.5]}",
        "{x\0}",
    ],
)
def test_other_braces_are_left_unchanged(text: str) -> None:
    assert interpolate(text, NS) == text


def test_nested_json_with_known_names_inside_is_unchanged() -> None:
    text = '{"a": {"b": {"x": 1}}}'
    assert interpolate(text, NS) == text


def test_doubled_braces_around_a_reference_are_a_literal() -> None:
    assert interpolate("{{x}} is {x}", NS) == "{x} is 3"
    assert interpolate("{{nope}}", NS) == "{nope}"
    assert interpolate("{{obj.title}}", NS) == "{obj.title}"


@pytest.mark.parametrize(
    "text",
    [
        "{__import__('os')}",
        "{__import__('os').system('echo pwned')}",
        "{obj._secret}",
        "{obj.__class__}",
        "{obj.__dict__}",
        "{x.__class__.__mro__}",
        "{name.upper()}",
        "{open('/etc/passwd').read()}",
        "{(lambda: 1)()}",
        "{x if x else name}",
        "{[c for c in name]}",
        "{watched._private}",
        "{watched.__len__}",
    ],
)
def test_nothing_is_evaluated(text: str) -> None:
    NS["watched"].looked_up.clear()
    assert interpolate(text, NS) == text
    assert NS["watched"].looked_up == []


def test_public_attributes_are_looked_up_once_and_errors_leave_text() -> None:
    watched = Watched()
    assert interpolate("{w.title} {w.boom}", {"w": watched}) == "<title> {w.boom}"
    assert watched.looked_up == ["title", "boom"]


def test_pathologically_deep_references_do_not_crash() -> None:
    deep_items = "{x" + "[0]" * 5000 + "}"
    deep_attrs = "{obj" + ".a" * 2000 + "}"
    nested = "{" + "(" * 500 + "x" + ")" * 500 + "}"
    for text in (deep_items, deep_attrs, nested):
        assert interpolate(text, NS) == text


@given(st.text(alphabet=st.characters(blacklist_characters="{"), max_size=50))
def test_text_without_braces_is_unchanged(text: str) -> None:
    assert interpolate(text, NS) == text


@given(st.text(max_size=60))
def test_empty_namespace_changes_only_doubled_references(text: str) -> None:
    out = interpolate(text, {})
    if "{{" not in text:
        assert out == text
    else:
        assert len(out) <= len(text)
