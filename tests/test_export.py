"""The Markdown export is inert when previewed: no raw HTML, no images, no math delimiters."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipychat._conversation import Conversation, Message
from ipychat._export import HEADER, preview_safe

BEACON = "http://127.0.0.1:9/x?d=1"
HOSTILE = [
    f"$\\style{{cursor:url({BEACON}),auto}}{{\\,}}$",
    f"$$\\href{{{BEACON}}}{{x}}$$",
    f"\\(\\style{{background:url({BEACON})}}{{x}}\\)",
    f"\\\\(\\style{{background:url({BEACON})}}{{x}}\\\\)",
    f"\\begin{{align}}\\style{{cursor:url({BEACON})}}{{x}}\\end{{align}}",
    f"![cat]({BEACON})",
    f"![cat][r]\n\n[r]: {BEACON}",
    f'<img src="{BEACON}">',
    f'<video poster="{BEACON}"></video>',
    f'<div style="background:url({BEACON})">x</div>',
    f"<{BEACON}>",
    "`$x$` and `\\(y\\)` then ``a`b`` $\\style{c}{d}$",
    f"    indented $code$ and \\(math\\) {BEACON}",
]


def outside_code(text: str) -> str:
    """The export without its fenced code blocks (which must be left at the margin)."""
    return re.sub(r"^(`{3,})[^\n]*\n.*?^\1$", "", text, flags=re.S | re.M)


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_markdown_is_inert_outside_code(payload: str) -> None:
    safe = outside_code(preview_safe(payload))
    assert "$" not in safe and "\\" not in safe
    assert "<" not in safe, "no raw HTML or autolink"
    assert "![" not in safe, "no image"


def test_images_become_links_and_text_stays_readable() -> None:
    out = preview_safe("See ![a cat](https://example.com/cat.png) <b>bold</b> costs $5 C:\\tmp")
    assert "[image: a cat](https://example.com/cat.png)" in out
    assert "&lt;b>bold&lt;/b>" in out
    assert "＄5" in out and "C:⧵tmp" in out


def test_fenced_code_is_kept_exactly_with_a_fence_no_line_can_close() -> None:
    code = "price = '$5'\nprint(f'{a}\\\\n')\nx = '````'\n<img src=x>\n"
    out = preview_safe(f"text $x$\n\n  ```python\n{code}```\n\nafter")
    fence = re.search(r"^(`{5,})python$", out, re.M)
    assert fence, out
    assert f"{fence[1]}python\n{code}{fence[1]}" in out
    assert out.endswith("after")


def test_an_unclosed_fence_is_closed_so_later_messages_stay_prose() -> None:
    conv = Conversation(name="n")
    conv.messages += [Message("user", "q"), Message("assistant", "```\n$x$ open")]
    hostile = f"$\\style{{a}}{{b}}$ ![i]({BEACON})"
    conv.messages += [Message("user", hostile), Message("assistant", "ok")]
    text = conv.to_markdown()
    assert text.count("## User") == 2 and text.count("## Assistant") == 2
    assert "```\n$x$ open\n```" in text
    assert "$" not in outside_code(text) and "![" not in text


def test_export_header_says_it_is_sanitised_and_names_are_safe_too() -> None:
    conv = Conversation(name="<img src=x> $a$")
    conv.system = f"![s]({BEACON}) $\\style{{x}}{{y}}$"
    conv.messages += [Message("user", "q"), Message("assistant", "a")]
    text = conv.to_markdown()
    assert HEADER in text and "Sanitised for previewing" in text
    assert "<img" not in text and "$" not in outside_code(text) and "![" not in text


@given(st.text(alphabet=st.sampled_from(list("`~$\\<!()[] ax\n")), max_size=80))
def test_any_text_keeps_delimiters_only_inside_fences(text: str) -> None:
    out = outside_code(preview_safe(text))
    assert "$" not in out and "\\" not in out and "<" not in out and "![" not in out
