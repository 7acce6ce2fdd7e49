from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipychat._interpolate import Filled, FillError, fill, interpolate


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


def test_doubled_braces_are_sent_as_written() -> None:
    assert interpolate("{{x}} is {x}", NS) == "{{x}} is 3"
    assert interpolate("{{nope}}", NS) == "{{nope}}"
    assert interpolate("{{{obj.title}}}", NS) == "{{{obj.title}}}"
    assert interpolate('{"a": {x}}', NS) == '{"a": 3}', "a single brace inside JSON is a reference"


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
def test_empty_namespace_changes_nothing(text: str) -> None:
    assert interpolate(text, {}) == text


CODE_AND_MATH = {
    "x": 42,
    "i": 2,
    "name": "Alice",
    "d": {"k": 1},
}


@pytest.mark.parametrize(
    "text",
    [
        '```python\nprint(f"row {i}: {name}")\n```',
        "~~~\n{x}\n~~~",
        "  ```\n{x}\n  ````",  # indented fence, longer closer
        "```\n{x}\n",  # an unclosed fence runs to the end, as in Markdown
        "`'{d}'.format(d=1)`",
        "`` a ` {x} ``",  # a code span holding a backtick
        "```{x}```",  # backticks on one line are inline code, not a fence
        r"$\frac{1}{x}$",
        r"$$\sum_{i} {x}$$",
        r"\(x^{x}\)",
        r"\[{name}\]",
        "$${x}\n{i}$$",  # display math over lines
    ],
)
def test_code_and_math_are_never_filled(text: str) -> None:
    assert fill(text, CODE_AND_MATH) == Filled(text, ())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("costs $5 and {x} and $10", "costs $5 and 42 and $10"),  # prices are not math
        (r"\$ {x} \$", r"\$ 42 \$"),  # escaped dollars are not math
        ("a ` lone backtick {x}", "a ` lone backtick 42"),
        ("```\ncode {x}\n```\nprose {x}", "```\ncode {x}\n```\nprose 42"),
        ("`{x}` but {x}", "`{x}` but 42"),
    ],
)
def test_text_around_code_and_math_is_filled(text: str, expected: str) -> None:
    assert interpolate(text, CODE_AND_MATH) == expected


def test_fill_reports_each_filled_reference_once_in_order() -> None:
    filled = fill("{name} {i} {name} {d['k']} {nope} `{x}`", CODE_AND_MATH)
    assert filled.text == "Alice 2 Alice 1 {nope} `{x}`"
    assert filled.names == ("name", "i", "d['k']")


class BadStr:
    def __str__(self) -> str:
        raise ZeroDivisionError("secret detail")


class SurrogateStr:
    def __str__(self) -> str:
        return "ok \udcff"


class Lying:
    @property
    def title(self) -> str:
        raise RuntimeError("property failed")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (BadStr(), ("{v}", "str() raised ZeroDivisionError", "--no-interpolate")),
        ("a\ud800b", ("{v}", "lone surrogate", "U+D800")),
        (SurrogateStr(), ("{v}", "lone surrogate", "U+DCFF")),
    ],
)
def test_values_that_cannot_be_sent_give_one_line(value: Any, words: tuple[str, ...]) -> None:
    with pytest.raises(FillError) as caught:
        fill("value: {v}", {"v": value})
    message = str(caught.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_a_property_that_raises_leaves_the_reference() -> None:
    assert fill("{o.title}", {"o": Lying()}) == Filled("{o.title}", ())


def test_mapping_namespaces_are_read_with_item_lookup() -> None:
    from collections import ChainMap

    scope = ChainMap({"x": "local"}, {"x": "global", "y": "g"})
    assert interpolate("{x} {y}", scope) == "local g"
