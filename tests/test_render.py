from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipychat._render import markdown_to_html, render_reply_html, status_line
from ipychat._reply import Reply, Usage

ALLOWED_TAGS = {
    "p", "em", "strong", "code", "pre", "a", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "hr", "br",
    "table", "thead", "tbody", "tr", "th", "td", "del", "s", "span", "div", "details", "summary",
}  # fmt: skip
MATHML_TAGS = {
    "math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msup", "msub", "msubsup", "mfrac",
    "msqrt", "mroot", "mstyle", "merror", "mpadded", "mphantom", "menclose", "mover", "munder",
    "munderover", "mtable", "mtr", "mtd", "mlabeledtr", "mmultiscripts", "mprescripts", "none",
}  # fmt: skip
ALLOWED_TAGS |= MATHML_TAGS
SAFE_HREF = re.compile(r"^(https?:|mailto:|#)", re.I)


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs


def parse(html: str) -> TagCollector:
    collector = TagCollector()
    collector.feed(html)
    collector.close()
    return collector


def assert_safe(html: str) -> None:
    found = parse(html)
    assert set(found.tags) <= ALLOWED_TAGS, found.tags
    for name, value in found.attrs:
        assert not name.startswith("on"), (name, value)
        if name in ("href", "src"):
            assert value is not None and SAFE_HREF.match(value), value
    lowered = html.lower()
    for raw in ("<script", "<img", "<iframe", "<object", "<embed", "<svg", "<style"):
        assert raw not in lowered
    assert not re.search(r"<[^>]*\son\w+\s*=", html), html
    assert 'href="javascript:' not in lowered


# -- untrusted markup ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "Hi <script src=//evil.example/x.js></script>",
        "<img src=x onerror=alert(1)>",
        "<iframe src=https://evil.example></iframe>",
        "<div onclick='x()'>click</div>",
        "<svg><script>alert(1)</script></svg>",
        "<a href='javascript:alert(1)'>x</a>",
        "text\n\n<script>\nalert(1)\n</script>\n\nmore",
    ],
)
def test_raw_html_comes_out_as_text(text: str) -> None:
    html = markdown_to_html(text)
    assert_safe(html)
    assert "&lt;" in html


@pytest.mark.parametrize(
    "link",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x]( javascript:alert(1) )",
        "[x](<javascript:alert(1)>)",
        "[x](&#106;avascript:alert(1))",
        "[x](java\\script:alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "[x][r]\n\n[r]: javascript:alert(1)",
        "<javascript:alert(1)>",
        "<data:text/html,x>",
    ],
)
def test_script_capable_links_are_not_links(link: str) -> None:
    html = markdown_to_html(link)
    assert_safe(html)
    assert "<a" not in html


def test_safe_links_get_rel_and_target() -> None:
    html = markdown_to_html("[docs](https://example.com/a?b=1&c=2) and <mailto:a@b.example>")
    found = parse(html)
    assert found.tags.count("a") == 2
    assert ("href", "https://example.com/a?b=1&c=2") in found.attrs
    assert ("rel", "noopener noreferrer nofollow") in found.attrs
    assert ("target", "_blank") in found.attrs
    assert_safe(html)


def test_autolink_http_is_a_link_and_bare_urls_are_text() -> None:
    found = parse(markdown_to_html("<https://example.com/x>"))
    assert ("href", "https://example.com/x") in found.attrs
    assert "<a" not in markdown_to_html("see https://example.com/x")


@pytest.mark.parametrize(
    "image",
    [
        "![cat](https://example.com/cat.png)",
        "![cat](https://example.com/cat.png 'a title')",
        "![cat][c]\n\n[c]: https://example.com/cat.png",
        "[![cat](https://example.com/cat.png)](https://example.com)",
    ],
)
def test_images_become_links_never_img(image: str) -> None:
    html = markdown_to_html(image)
    assert_safe(html)
    found = parse(html)
    assert "img" not in found.tags
    assert "[image: cat]" in html
    assert ("href", "https://example.com/cat.png") in found.attrs


@pytest.mark.parametrize(
    "image",
    [
        '![x" onerror="alert(1)](javascript:alert(1))',
        "![x](data:image/png;base64,AAAA)",
        "![<b>x</b>](vbscript:x)",
    ],
)
def test_images_with_unsafe_sources_are_plain_text(image: str) -> None:
    html = markdown_to_html(image)
    assert_safe(html)
    assert parse(html).tags == ["div", "p"]
    assert "![" in html  # left as the Markdown that was written


def test_image_alt_and_url_are_escaped() -> None:
    html = markdown_to_html('![a "<b>" & c](https://example.com/x.png?a=1&b="2")')
    assert_safe(html)
    assert "<b>" not in html
    found = parse(html)
    assert found.tags == ["div", "p", "a"]


def test_code_fence_is_highlighted_and_escaped() -> None:
    html = markdown_to_html("```python\nif a < b:\n    print('<script>')\n```")
    assert_safe(html)
    assert '<code class="language-python"' in html
    assert "<span style=" in html  # Pygments inline styles
    assert "&lt;script&gt;" in html
    assert parse(html).tags.count("span") >= 3


@pytest.mark.parametrize("fence", ["```\n<script>x</script>\n```", "```nolang\n<b>x</b>\n```"])
def test_code_fence_without_a_known_language_is_escaped(fence: str) -> None:
    html = markdown_to_html(fence)
    assert_safe(html)
    assert "<span" not in html
    assert "&lt;" in html


def test_code_fence_language_cannot_inject_attributes() -> None:
    html = markdown_to_html('```python" onmouseover="alert(1)\nx\n```')
    assert_safe(html)


def test_markdown_features_render() -> None:
    text = "# T\n\n*e* **s** ~~d~~ `c`\n\n- a\n1. b\n\n> q\n\n---\n\n| h |\n|---|\n| v |\n"
    tags = set(parse(markdown_to_html(text)).tags)
    assert {"h1", "em", "strong", "s", "code", "ul", "ol", "li", "blockquote", "hr"} <= tags
    assert {"table", "thead", "tbody", "tr", "th", "td"} <= tags


_fragments = st.sampled_from(
    [
        "<script>", "</script>", "<img src=x onerror=alert(1)>", "<iframe", "<", ">", "/",
        "![", "[", "]", "(", ")", "](", "javascript:", "JAVASCRIPT:", "vbscript:", "data:",
        "http://x.example", "mailto:a@b", "&#106;", "&amp;", "&", '"', "'", "onerror=",
        "```", "```python\n", "```html\n", "~~~", "\n", "\n\n", " ", "    ", "*", "_", "`",
        "|", "---", "-", "#", "> ", "1. ", "\\", ":", "<http://a.example>", "<a href=",
    ]
)  # fmt: skip


@given(st.lists(_fragments | st.text(max_size=8), max_size=25).map("".join))
def test_any_text_renders_to_allowlisted_html(text: str) -> None:
    assert_safe(markdown_to_html(text))


@given(st.text(max_size=200))
def test_any_unicode_text_renders_to_allowlisted_html(text: str) -> None:
    assert_safe(markdown_to_html(text))


# -- the reply view ------------------------------------------------------------------------------


def test_reply_view_with_reasoning_and_status() -> None:
    reply = Reply(
        text="<b>Answer</b>",
        reasoning="<script>think</script>",
        model="qwen",
        usage=Usage(1, 2, 3),
        time_to_first_token=0.25,
        elapsed=1.5,
        finish_reason="stop",
    )
    html = render_reply_html(reply)
    assert_safe(html)
    assert "<details" in html and "<summary>Reasoning</summary>" in html
    assert "<details open" not in html
    assert "qwen · 3 tokens · first token 0.25 s · total 1.50 s" in html
    assert "--jp-warn-color0" not in html
    assert "<details open" in render_reply_html(Reply(reasoning="r"), streaming=True)


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (Reply(model="m", finish_reason="length"), "cut off at max_tokens"),
        (Reply(model="m", finish_reason="content_filter"), "filtered by the content safety"),
        (Reply(model="m", complete=False), "incomplete"),
    ],
)
def test_status_line_warnings(reply: Reply, words: str) -> None:
    assert words in status_line(reply)
    assert "--jp-warn-color0" in render_reply_html(reply)
    assert words not in status_line(reply, streaming=True)
    assert "streaming…" in status_line(reply, streaming=True)


def test_status_line_without_anything_known() -> None:
    assert status_line(Reply()) == "?"


# -- streaming preview: only the last block is re-rendered ----------------------------------


STREAMED = (
    "# Title\n\nFirst paragraph with **bold**.\n\n```python\nx = 1\n\n\ny = 2\n```\n\n"
    "1. one\n2. two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~~\n````\n~~~\n\nLast <b>words</b>"
)


def test_split_blocks_keeps_fenced_code_whole():
    from ipychat._render import split_blocks

    blocks = split_blocks(STREAMED)
    assert blocks[2] == "```python\nx = 1\n\n\ny = 2\n```", "blank lines inside a fence stay"
    assert blocks[5] == "~~~\n````\n~~~", "a fence closes only on its own kind"
    assert blocks[-1] == "Last <b>words</b>"
    assert split_blocks("") == [] and split_blocks("\n\n") == []


@given(st.text(alphabet=st.sampled_from(list("ab `~#*-1.|\n<>")), max_size=200))
def test_streaming_preview_matches_a_whole_render_block_by_block(text):
    from ipychat._render import StreamingMarkdown, markdown_to_html, split_blocks

    preview = StreamingMarkdown()
    for end in range(0, len(text) + 1, 7):  # the text as it grows, rendered repeatedly
        preview(text[:end])
    expected = "".join(markdown_to_html(block) for block in split_blocks(text) or [""])
    assert preview(text) == expected


def test_streaming_preview_parses_only_the_last_block(monkeypatch):
    from ipychat import _render

    preview = _render.StreamingMarkdown()
    preview(STREAMED)
    parsed: list[str] = []
    real = _render.markdown_to_html
    monkeypatch.setattr(_render, "markdown_to_html", lambda t: parsed.append(t) or real(t))
    html_out = preview(STREAMED + " and more")
    assert parsed == ["Last <b>words</b> and more"], "finished blocks come from the cache"
    assert "<b>" not in html_out and "&lt;b&gt;words&lt;/b&gt; and more" in html_out


# -- bounded rendering ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "| a | b |\n|---|---|\n" + "| x | y |\n" * 40_000,  # a 400 KB table
        "[" * 200_000,
        "![" * 50_000,
        "*a " * 50_000,
        "x" * 200_000,  # one long line
        ">" * 100_000 + " deep",
    ],
)
def test_pathological_blocks_are_shown_as_plain_text(text: str) -> None:
    from ipychat._render import fenced_blocks

    html = markdown_to_html(text)
    assert 'class="ipychat-plain"' in html
    assert "white-space: pre-wrap; overflow-wrap: anywhere" in html, "long lines wrap"
    assert html.count(text[:50].replace(">", "&gt;")) >= 1, "the text is all there"
    assert_safe(html)
    assert fenced_blocks(text + "\n\n```python\nx = 1\n```") == [("python", "x = 1\n")]


def test_past_the_allowance_blocks_render_plain_one_by_one(monkeypatch) -> None:
    from ipychat import _render

    text = "# Title\n\nsome *prose*\n\n```python\nx = 1\n```"
    assert "ipychat-plain" not in markdown_to_html(text)
    monkeypatch.setattr(_render, "ALLOWANCE_BASE", -1.0)
    html = markdown_to_html(text)
    assert html.count('class="ipychat-plain"') == 3
    assert "# Title" in html and "some *prose*" in html and "x = 1" in html
    assert_safe(html)


@pytest.mark.parametrize("lang", ["scala", "fish", "Scala", "markdown"])
def test_fences_naming_a_hanging_lexer_are_escaped_text(lang: str) -> None:
    payload = '"' + "\\" * 64
    html = markdown_to_html(f"```{lang}\n{payload}\n```")
    assert "<span" not in html and payload in html


def test_highlighting_uses_theme_variables_with_fallbacks() -> None:
    html = markdown_to_html("```python\ndef f(x):\n    return 'a'  # c\n```")
    for var in ("keyword", "def", "string", "comment"):
        assert f"var(--jp-mirror-editor-{var}-color, #" in html, var
    assert "background" not in html, "the theme's background stays"


# -- text that lies about itself -----------------------------------------------------------------


@pytest.mark.parametrize("hidden", ["\u202e", "\u200b", "\u2066", "\u200f", "\ufeff", "\x1b"])
def test_link_text_shows_bidi_and_zero_width_characters(hidden: str) -> None:
    text = f"[paypal.com{hidden}evil](https://example.com) and ![a{hidden}b](https://x.example/i.png)"
    html = markdown_to_html(text)
    assert hidden not in html
    escape = f"\\u{ord(hidden):04x}" if ord(hidden) > 0xFF else f"\\x{ord(hidden):02x}"
    assert html.count(escape) == 2


def test_status_line_model_name_cannot_lie() -> None:
    reply = Reply(model="gpt\u202e4-mini\u200b\x1b[2J\nfake · 9 tokens", elapsed=1.0)
    line = status_line(reply)
    assert "\u202e" not in line and "\u200b" not in line and "\x1b" not in line
    assert "\n" not in line
    assert "\\u202e" in line and "\\x1b" in line
    assert len(status_line(Reply(model="m" * 500))) < 100
