from __future__ import annotations

import pytest

from ipychat._reply import CodeBlock, Reply, Usage

FENCED = """Here you go:

```python
print("hi")
```

Then the shell:

~~~bash title="run"
echo {x} && ls
~~~

```
plain
```

```JSON
{"a": 1}
```
"""


def test_str_is_the_text() -> None:
    reply = Reply(text="Hello **world**")
    assert str(reply) == "Hello **world**"
    assert f"{reply}" == "Hello **world**"


def test_repr_summarises() -> None:
    reply = Reply(
        text="short",
        model="qwen",
        finish_reason="stop",
        usage=Usage(1, 2, 3),
    )
    assert repr(reply) == (
        "Reply(model='qwen', finish_reason='stop', total_tokens=3, text='short')"
    )
    long = Reply(text="x" * 100, complete=False)
    text = repr(long)
    assert "complete=False" in text and "total_tokens=None" in text
    assert "x" * 57 + "..." in text and "x" * 58 not in text


def test_truncated_and_filtered() -> None:
    assert Reply(finish_reason="length").truncated
    assert not Reply(finish_reason="stop").truncated
    assert Reply(finish_reason="content_filter").filtered
    assert Reply(finish_reason="content_filter_violence").filtered
    assert not Reply(finish_reason="stop").filtered and not Reply().filtered


def test_code_blocks_with_languages() -> None:
    blocks = Reply(text=FENCED).code_blocks()
    assert blocks == [
        CodeBlock("python", 'print("hi")\n'),
        CodeBlock("bash", "echo {x} && ls\n"),
        CodeBlock("", "plain\n"),
        CodeBlock("JSON", '{"a": 1}\n'),
    ]
    assert str(blocks[0]) == 'print("hi")\n'
    assert Reply(text=FENCED).code_blocks("Python") == [blocks[0]]
    assert Reply(text=FENCED).code_blocks("json") == [blocks[3]]
    assert Reply(text=FENCED).code_blocks("rust") == []
    assert Reply(text="no code, just `inline`").code_blocks() == []


def test_json_of_a_bare_reply() -> None:
    assert Reply(text=' \n{"a": [1, 2], "b": null}\n').json() == {"a": [1, 2], "b": None}
    assert Reply(text="[1, 2]").json() == [1, 2]


def test_json_inside_a_json_fence_among_prose_and_other_blocks() -> None:
    text = 'Sure!\n\n```python\nx = {"no": 1}\n```\n\n```json\n{"ok": true}\n```\nDone.'
    assert Reply(text=text).json() == {"ok": True}


def test_json_inside_a_single_unlabelled_fence() -> None:
    assert Reply(text='Result:\n```\n{"n": 3}\n```').json() == {"n": 3}


def test_json_error() -> None:
    with pytest.raises(ValueError, match="not JSON and holds no ```json block"):
        Reply(text="It is 42.").json()
    with pytest.raises(ValueError, match="not JSON"):
        Reply(text="```json\n{broken\n```").json()


def test_usage_from_json() -> None:
    assert Usage.from_json({"prompt_tokens": 2, "completion_tokens": 3}) == Usage(2, 3, 5)
    assert Usage.from_json({"prompt_tokens": 2, "total_tokens": 9}) == Usage(2, None, 9)
    assert Usage.from_json({"prompt_tokens": True, "completion_tokens": "3"}) is None
    assert Usage.from_json(None) is None
    assert Usage.from_json([1]) is None
    assert Usage.from_json({}) is None


def test_to_dict_is_plain_data() -> None:
    data = Reply(text="t", usage=Usage(1, 2, 3), params={"model": "m"}).to_dict()
    assert data["text"] == "t"
    assert data["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    assert data["params"] == {"model": "m"}


def test_repr_html_is_safe() -> None:
    html = Reply(text="<script>alert(1)</script>", model="m")._repr_html_()
    assert "<script" not in html
    assert "&lt;script&gt;" in html
