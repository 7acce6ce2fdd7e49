"""Math in replies: shown as sanitised MathML, never left for the front end's MathJax."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipychat._math import IGNORE_CLASS, inert_html, tex_to_mathml
from ipychat._render import markdown_to_html, render_reply_html
from ipychat._reply import Reply

from .test_render import MATHML_TAGS, assert_safe, parse

BEACON = "http://127.0.0.1:9/x?d=1"


def maths(html: str) -> list[str]:
    """The <math> elements' display attributes, in order."""
    return re.findall(r'<math display="(inline|block)">', html)


@pytest.mark.parametrize(
    ("text", "displays"),
    [
        ("Euler: $e^{i\\pi} + 1 = 0$.", ["inline"]),
        ("$$\\sum_{i=1}^n i = \\frac{n(n+1)}{2}$$", ["block"]),
        ("before\n\n$$\n\\int_0^1 x\\,dx\n$$\n\nafter", ["block"]),
        ("inline $$x^2$$ display in a paragraph", ["block"]),
        ("\\(a^2 + b^2 = c^2\\) and \\[\\sqrt{2}\\]", ["inline", "block"]),
        ("two: $a$ and $b$", ["inline", "inline"]),
        ("$x$", ["inline"]),
        ("- item $y_1$\n- item \\(y_2\\)", ["inline", "inline"]),
        ("> quoted $z$", ["inline"]),
        ("| h |\n|---|\n| $t$ |", ["inline"]),
    ],
)
def test_math_is_mathml(text: str, displays: list[str]) -> None:
    html = markdown_to_html(text)
    assert maths(html) == displays, html
    assert_safe(html)


@pytest.mark.parametrize(
    "text",
    [
        "It costs $5 and $10.",
        "costs $3.50, not $4",
        "$5 or $6 or $7",
        "Between $ 5 and $ 6",
        "a $ b $ c",  # spaces inside the delimiters: prose, as in pandoc
        "price: $20$30",
        "\\$x\\$ is escaped",
        "US$5, A$6 and $ 7",
    ],
)
def test_dollar_amounts_stay_prose(text: str) -> None:
    html = markdown_to_html(text)
    assert "<math" not in html, html
    assert "$" in html


def test_bracket_delimiters_keep_their_backslashes_when_not_math() -> None:
    html = markdown_to_html("an unclosed \\( stays, and \\[ too")
    assert "\\(" in html and "\\[" in html
    assert "<math" not in html


@pytest.mark.parametrize(
    "text",
    [
        "`$x^2$` and `\\(y\\)`",
        "```\n$x^2$ \\(y\\) \\[z\\]\n```",
        "```python\nprice = '$5' + '$x$'\n```",
        "    $indented$ code",
    ],
)
def test_math_inside_code_stays_code(text: str) -> None:
    html = markdown_to_html(text)
    assert "<math" not in html
    assert "$" in html or "\\(" in html


@pytest.mark.parametrize(
    "tex",
    [
        f"\\style{{cursor:url({BEACON}),auto}}{{\\,}}",
        f"\\href{{{BEACON}}}{{click}}",
        "\\class{mathjax_process}{x}",
        "\\cssId{x}{y}",
        f"\\url{{{BEACON}}}",
        f"\\includegraphics{{{BEACON}}}",
        f"\\style{{background:url({BEACON})}}{{x}}",
        "\\text{<img src=x onerror=alert(1)>}",
        "\\text{<script>alert(1)</script>}",
        "\\mathrm{<b>}",
        '\\text{"><svg onload=alert(1)>}',
        "\\color{red;background:url(x)}{y}",
        "\\hspace{100000em}",
        "\\rule{9999cm}{9999cm}",
        "\\unknown{x}",
    ],
)
def test_hostile_latex_makes_no_link_style_or_fetch(tex: str) -> None:
    for delimited in (f"${tex}$", f"$${tex}$$", f"\\({tex}\\)", f"\\[{tex}\\]"):
        html = markdown_to_html(f"Look: {delimited} there")
        assert_safe(html)
        found = parse(html)
        names = {name for name, _ in found.attrs}
        assert not names & {"href", "style", "src", "id"} or "<math" not in html
        for tag, attrs in _math_elements(html):
            assert tag in MATHML_TAGS
            assert not {"href", "style", "class", "id", "src", "xlink:href"} & set(attrs)
        assert BEACON not in _attribute_values(html)
        assert "<img" not in html and "<script" not in html and "<svg" not in html


def _math_elements(html: str) -> list[tuple[str, dict[str, str]]]:
    out = []
    for math in re.findall(r"<math\b.*?</math>", html, re.S):
        for tag, attrs in re.findall(r"<([a-z]+)([^>]*)>", math):
            out.append((tag, dict(re.findall(r'(\S+?)="([^"]*)"', attrs))))
    return out


def _attribute_values(html: str) -> str:
    return " ".join(re.findall(r'="([^"]*)"', html))


def test_lengths_are_bounded_and_colours_are_words() -> None:
    assert "100000em" not in (tex_to_mathml("\\hspace{100000em}") or "")
    assert 'width="1em"' in (tex_to_mathml("\\hspace{1em}") or "")
    assert 'mathcolor="red"' in (tex_to_mathml("\\color{red}{x}") or "")


def test_latex_errors_fall_back_to_escaped_text() -> None:
    html = markdown_to_html("bad: $x^2^3$ and $\\frac{<b>}{$ end")
    assert "<b>" not in html
    assert "x^2^3" in html
    assert_safe(html)


def test_very_long_formula_is_shown_as_written() -> None:
    tex = "x+" * 1500 + "x"
    html = markdown_to_html(f"${tex}$")
    assert "<math" not in html and tex in html


def test_every_output_is_marked_for_mathjax_to_skip() -> None:
    assert IGNORE_CLASS.split() == ["mathjax_ignore", "tex2jax_ignore"]
    for html in (
        markdown_to_html("costs $5 and $ \\style{x}{y} $"),
        render_reply_html(Reply(text="$x$", model="$\\style{a}{b}$")),
        inert_html("<table></table>"),
    ):
        assert html.startswith("<div class=") and "mathjax_ignore tex2jax_ignore" in html[:80]
        assert html.endswith("</div>")


@given(st.text(alphabet=st.sampled_from(list("$\\()[]{}^_ xa1<>&\"'`\n")), max_size=60))
def test_any_math_like_text_renders_to_allowlisted_html(text: str) -> None:
    assert_safe(markdown_to_html(text))
