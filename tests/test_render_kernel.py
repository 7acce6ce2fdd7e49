"""Hostile replies through a real kernel: rendering ends, and an interrupt gives the kernel back.

Before bounded rendering, a ```` ```scala ```` fence holding `"` and 64 backslashes hung the
kernel for good (Kernel > Interrupt did not help), and a 400 KB table or 200,000 `[` took tens
of seconds. Each reply here is streamed by the bundled server into `%%chat`; the cell must end
(within the `timeout` given to `run`, far above what it needs) and the kernel must answer the
next cell.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from ipychat import LocalServer

from .kernel import Kernel, chat_kernel

pytestmark = pytest.mark.kernel

BACKSLASHES = '"' + "\\" * 64
LANGS = "python javascript bash c rust go java ruby php perl scala fish console ini matlab x"
REPLIES = {
    "scala": f"Here:\n\n```scala\n{BACKSLASHES}\n```\n\nand fish:\n\n```fish\n{BACKSLASHES}\n```\n",
    "table": "| a | b |\n|---|---|\n" + "| x | y |\n" * 40_000,
    "brackets": "[" * 200_000,
    "nested": ">" * 50_000 + " deep\n\n" + "*a " * 30_000 + "\n\n" + "![" * 30_000,
    "lexers": "".join(f"```{x}\n{BACKSLASHES}\n'{'{' * 3000}\n```\n\n" for x in LANGS.split()),
    "math": "$\\style{cursor:url(http://127.0.0.1:9/x),auto}{\\,}$ " * 2000 + "$" * 50_000,
}


@pytest.fixture(scope="module")
def hostile() -> Iterator[LocalServer]:
    script = [{"prompt": f"send {name}", "reply": reply} for name, reply in REPLIES.items()]
    script.append({"prompt": "slow", "reply": "[" * 20_000 + "\n\n" + "| a |\n|---|\n" * 300})
    with LocalServer(script=script, chunk_chars=4000) as srv:
        yield srv


@pytest.fixture(scope="module")
def kernel(hostile, tmp_path_factory) -> Iterator[Kernel]:
    k = chat_kernel(tmp_path_factory.mktemp("render"), hostile.base_url, "%chat warm up")
    yield k
    k.shutdown()


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_a_pathological_reply_renders_and_the_kernel_answers(kernel, name) -> None:
    result = kernel.run(f"%%chat\nsend {name}", timeout=120)
    assert result.status == "ok", result.text()
    final = result.bundles()[-1]
    assert final["text/html"].startswith('<div class="ipychat-reply">')
    assert "mathjax_ignore" in final["text/html"][:120]
    assert "<math" not in final["text/html"] or name == "math"
    assert kernel.value("_chat.text") == REPLIES[name], "the reply is kept whole"
    assert kernel.value("1 + 1") == 2


def test_interrupt_while_streaming_a_pathological_reply_recovers_the_kernel(kernel, hostile):
    # 200 chunks 0.1 s apart, each re-rendering a growing `[[[…`: interrupted 2 s in.
    hostile.chunk_chars, hostile.token_delay = 100, 0.1
    try:
        threading.Timer(2.0, kernel.km.interrupt_kernel).start()
        started = time.monotonic()
        result = kernel.run("%%chat\nslow", timeout=120)
        assert time.monotonic() - started < 15, "the interrupt was honoured (20 s unstopped)"
        assert result.status in ("ok", "error"), result.text()
        assert "KeyboardInterrupt" in result.text() or "interrupt" in result.text().lower()
    finally:
        hostile.chunk_chars, hostile.token_delay = 4000, 0.0
    assert kernel.value("1 + 1") == 2
    again = kernel.run("%%chat\nsend scala", timeout=120)
    assert again.status == "ok", again.text()
