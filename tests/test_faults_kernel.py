"""Every fault a server or the network can show, driven through a real kernel.

For each fault: the cell ends within its timeout plus the retry budget; the user sees one
`UsageError` line and no traceback; text that had arrived stays in `_chat` and in the final
output; the next `%%chat` works and sends correctly alternating roles; retries happen only
where the server cannot have started the work (no connection, 408/429/5xx, a connection that
broke before any byte of the answer), never after a read timeout or once the answer began,
and each one leaves a 'retrying in' note. The real servers' behaviours are reproduced by the
bundled server's faults: keep-alive comments during a slow generation, idle connections
closed, several-line errors with a traceback, context overflow, redirects, an empty 200
stream, a JSON body for a stream, odd chunk shapes. Only loopback addresses are ever contacted.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ipychat import Fault

from .kernel import Execution, Kernel, chat_kernel, usage_error

pytestmark = pytest.mark.kernel

MAX_RETRIES = 1
RETRY_WAIT = 1.0  # the longest wait before a retry here: backoff (<= 0.5 s) or Retry-After 1
SLACK = 1.5  # kernel round trips and display work on a slow machine
PROMPT = "one two three four five"
FULL = "Echo: one two three four five"
PARTIAL = "Echo: one "  # the first two chunks: every mid-stream fault here comes after them


@pytest.fixture(scope="module")
def kernel(server, tmp_path_factory):
    # The first chat imports httpx, Markdown and widgets: do it before anything is timed.
    k = chat_kernel(tmp_path_factory.mktemp("kernel"), server.base_url, "%chat warm")
    yield k
    k.shutdown()


@pytest.fixture(autouse=True)
def fresh(server, kernel):
    """Each test: an empty default session, a well-behaved server, short timeouts."""
    server.clear()
    server.token_delay = 0.0
    server.first_token_delay = 0.0
    server.chunk_chars = None
    configure(kernel, server.base_url)
    result = kernel.run("import ipychat; ipychat.sessions.clear()")
    assert result.status == "ok", result.text()


def configure(kernel: Kernel, base_url: str, timeout: float = 2.0, more: str = "") -> None:
    result = kernel.run(
        f"%chat_config --reset\n"
        f"%chat_config base_url={base_url} timeout={timeout} max_retries={MAX_RETRIES} {more}"
    )
    assert result.status == "ok", result.text()


def retry_notes(result: Execution) -> list[str]:
    """The 'retrying in' notes; stderr holds nothing else but the one error line."""
    lines = result.stderr.splitlines()
    notes = [line for line in lines if line.startswith("ipychat: ") and "retrying in" in line]
    others = [line for line in lines if line not in notes and not line.startswith("UsageError")]
    assert not others, result.stderr
    return notes


def assert_alternating(messages: list[dict]) -> None:
    roles = [m["role"] for m in messages]
    assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"], roles
    assert all(m["content"].strip() for m in messages), messages


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port


@contextlib.contextmanager
def blackhole_port() -> Iterator[int]:
    """A loopback port whose accept queue is full: a connect gets no answer (connect timeout).

    The listener has backlog 0 and never accepts; one connection fills its queue, so Linux
    drops every further SYN, exactly as a firewall that drops packets would.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(2):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        with socket.socket() as probe:
            probe.settimeout(0.3)
            try:
                probe.connect(("127.0.0.1", port))
            except TimeoutError:
                pass
            else:
                pytest.skip("this system accepts connections past a full backlog")
        yield port
    finally:
        for sock in [*fillers, listener]:
            sock.close()


@dataclass(frozen=True)
class Case:
    id: str
    faults: tuple[Fault, ...] = ()
    error: str | None = None  # part of the one UsageError line; None: the cell succeeds
    partial: str | None = None  # text that had arrived before the fault and must be kept
    requests: int | None = 1  # requests the server saw for the cell (None: not our server)
    retries: int = 0  # 'retrying in' notes
    timeout: float = 2.0
    options: str = ""
    endpoint: str = ""  # "refused" or "blackhole": a loopback address that is not the server
    note: str = ""  # part of the retry note
    settings: str = ""  # more key=value settings for the cell
    text: str = FULL  # the reply when the cell succeeds
    same_body: bool = True  # every request sent the same body
    absent: tuple[str, ...] = ()  # never in the error line


URL = "{url}"  # replaced by the server's chat completions URL

ERROR_SHAPES = {
    "openai": (
        lambda s: {"error": {"message": f"Bad {s}", "type": "invalid_request_error", "code": "c"}},
        "Bad {status} (c).",
    ),
    "flat": (
        lambda s: {
            "request_id": "r-1",
            "latency": 3,
            "code": "InvalidParameter",
            "message": f"Bad {s}",
        },
        "Bad {status} (InvalidParameter).",
    ),
    "fastapi": (lambda s: {"detail": f"Bad {s}"}, "Bad {status}."),
}
HINTS = {
    400: "Check the request's parameters.",
    401: "Check api_key. Set it with %chat_config --api-key.",
    403: "Check api_key and that it may use this model. Set it with %chat_config --api-key.",
    404: "Check base_url and model.",
    500: "The server failed; try again later. Tried 2 times over",
}
LLAMA_SERVER_OVERFLOW = {
    "error": {
        "code": 400,
        "message": "request (5000 tokens) exceeds the available context size (4096 tokens)",
        "type": "exceed_context_size_error",
    }
}
ODD_TEXT = "Echo: one parts string-delta 42 dict-choices endtwo three four five"
NOTEBOOK_OVERFLOW = "In a notebook: %%chat --new starts afresh, %chat_config --undo drops"


def status_cases() -> list[Case]:
    cases = []
    for status, hint in HINTS.items():
        retried = status >= 500  # a server error may pass; a client error will not
        for shape, (body, message) in ERROR_SHAPES.items():
            text = message.format(status=status)
            cases.append(
                Case(
                    f"{status}-{shape}",
                    (Fault("status", status=status, body=body(status), times=1 + retried),),
                    error=f"UsageError: {status} from {URL}: {text} {hint}",
                    requests=1 + retried,
                    retries=int(retried),
                )
            )
    return cases


CASES = [
    Case("connection-refused", error="Could not connect to", requests=None, retries=1,
         endpoint="refused"),
    Case("connect-timeout", error="within 1 s (connect timeout)", requests=None, retries=1,
         timeout=1.0, endpoint="blackhole"),
    Case("read-timeout-not-resent", (Fault("hang", seconds=4),),
         error="within 1 s (read timeout); not resent, as the server may still be working on it. "
         "If it needs longer, raise timeout. Change it with %chat_config timeout=120.",
         timeout=1.0),
    Case("read-timeout-no-stream-not-resent", (Fault("hang", seconds=4),),
         error="within 1 s (read timeout); not resent", timeout=1.0, options="--no-stream"),
    Case("503-then-read-timeout", (Fault("status", status=503), Fault("hang", seconds=4)),
         error="(read timeout); not resent", requests=2, retries=1, timeout=1.0,
         note="503 from"),
    Case("stall-midway", (Fault("stall", after_chunks=2, seconds=3),),
         error="stalled (no data for 1 s) after part of the reply", partial=PARTIAL, timeout=1.0),
    Case("drop-midway", (Fault("drop", after_chunks=2),), error="was cut off after part",
         partial=PARTIAL),
    Case("drop-before-text", (Fault("drop"),),
         error="was cut off before any reply; not resent, as the server may have started."),
    # A close before any byte of the answer, on the connection kept from the cell before, is
    # what a server's idle close looks like: resent at once, without a note or a used retry.
    Case("drop-no-stream-resent-silently", (Fault("drop"),), requests=2, options="--no-stream"),
    Case("drop-no-stream-twice", (Fault("drop", times=2),), requests=3, retries=1,
         options="--no-stream", note="broke before an answer"),
    Case("drop-no-stream-thrice", (Fault("drop", times=3),), error="broke before an answer",
         requests=3, retries=1, options="--no-stream"),
    Case("truncated-json", (Fault("truncated_json", after_chunks=2),),
         error="ended after part of the reply", partial=PARTIAL),
    Case("non-json-data-line", (Fault("bad_data", after_chunks=2),)),
    Case("non-json-body-no-stream", (Fault("bad_data"),),
         error="200 from {url}, but the body is not JSON: this is not json.",
         options="--no-stream"),
    Case("error-event", (Fault("error_event", after_chunks=2),),
         error="error in the stream from {url}: Injected stream error (stream_error).",
         partial=PARTIAL),
    Case("html-502", (Fault("html", times=2),),
         error="UsageError: 502 from {url}: 502 Bad Gateway. The server failed; try again later.",
         requests=2, retries=1),
    Case("empty-200-stream-asked-unstreamed", (Fault("empty"),), requests=2, same_body=False),
    Case("empty-200-no-stream", (Fault("empty"),), error="but the body is not JSON: an empty body",
         options="--no-stream"),
    Case("no-done", (Fault("no_done"),)),
    Case("429-retry-after", (Fault("status", status=429, headers={"Retry-After": "1"}),),
         requests=2, retries=1, note="retrying in 1.0 s"),
    Case("429-retry-after-ms", (Fault("status", status=429, headers={"retry-after-ms": "300"}),),
         requests=2, retries=1, note="retrying in 0.3 s"),
    Case("429-retry-after-too-long",
         (Fault("status", status=429, headers={"Retry-After": "120"}),),
         error="429 from {url}: Injected error (injected). Rate limited", requests=1),
    Case("503-then-answer", (Fault("status", status=503),), requests=2, retries=1),
    Case("keepalives-only-after-text", (Fault("keepalive", after_chunks=2, seconds=8, every=0.2),),
         error="sent only keep-alives and no text for 1 s after part of the reply: stopped "
         "waiting (idle_timeout=1). Change it with %chat_config idle_timeout=2.",
         partial=PARTIAL, settings="idle_timeout=1"),
    Case("keepalives-only-before-text", (Fault("keepalive", seconds=8, every=0.2),),
         error="sent only keep-alives and no text for 1 s before any reply",
         settings="idle_timeout=1"),
    Case("keepalives-then-text", (Fault("keepalive", after_chunks=1, seconds=1.2, every=0.2),),
         settings="idle_timeout=2"),
    Case("stale-pooled-connection", (Fault("stale"),), requests=2),
    Case("traceback-500", (Fault("traceback", times=2),),
         error="500 from {url}: 1 validation error for CreateChatCompletionRequest temperature "
         "Input should be less than or equal to 2 [type=less_than_equal, input_value=5] "
         "(internal_server_error).", requests=2, retries=1,
         absent=("Traceback", "File ", "errors.py")),
    Case("litellm-suffix", (Fault("litellm", status=400),),
         error="400 from {url}: litellm.RateLimitError: RateLimitError: OpenAIException - Rate "
         "limit reached for requests (429).", absent=("model group", "Model Group", "xxx")),
    Case("overflow-stream", (Fault("overflow", times=2),),
         error="maximum context length is 2048 tokens", requests=2, same_body=False,
         absent=("Check the",)),
    Case("overflow-no-stream", (Fault("overflow"),), error=NOTEBOOK_OVERFLOW,
         options="--no-stream"),
    Case("overflow-llama-server", (Fault("status", status=400, body=LLAMA_SERVER_OVERFLOW),),
         error="exceeds the available context size (4096 tokens) (exceed_context_size_error). "
         "The conversation no longer fits the model's context", absent=("(400)",)),
    Case("redirect", (Fault("redirect"),),
         error="307 from {url}: redirected to {root}/v2/chat/completions, which ipychat does not "
         "follow. If that is the right server, set base_url to {root}/v2. Change it with "
         "%chat_config base_url={root}/v2."),
    Case("json-body-for-a-stream", (Fault("unstreamed"),)),
    Case("odd-chunk-shapes", (Fault("odd_chunks", after_chunks=2),), text=ODD_TEXT),
    Case("odd-body-shape-no-stream", (Fault("odd_chunks"),), text="parts", options="--no-stream"),
    *status_cases(),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault(kernel, server, case: Case):
    assert kernel.run("%%chat\nwarm up").status == "ok"
    url = f"{server.base_url}/chat/completions"
    with contextlib.ExitStack() as stack:
        base_url = server.base_url
        if case.endpoint:
            make = refused_port if case.endpoint == "refused" else blackhole_port
            port = stack.enter_context(make())
            base_url = url = f"http://127.0.0.1:{port}/v1/chat/completions"
        configure(kernel, base_url, case.timeout, case.settings)
        server.clear()
        for fault in case.faults:
            server.push_fault(fault)
        result = kernel.run(f"%%chat {case.options}\n{PROMPT}")

    budget = case.timeout * (MAX_RETRIES + 1) + RETRY_WAIT * MAX_RETRIES + SLACK
    assert result.wall < budget, f"took {result.wall:.1f} s, budget {budget:.1f} s"
    notes = retry_notes(result)
    assert len(notes) == case.retries, notes
    assert all(case.note in n for n in notes), notes
    if case.requests is not None:
        assert len(server.requests) == case.requests, "retried only where safe"
        if case.same_body:
            assert all(r.body == server.requests[0].body for r in server.requests), "as is"
    final = result.bundles()[-1] if result.bundles() else {}

    if case.error is None:
        assert result.status == "ok", result.text()
        assert kernel.value("_chat.text") == case.text
        assert kernel.value("_chat.complete") is True
        assert final["text/plain"].startswith(case.text)
    else:
        line = usage_error(result)
        expected = case.error.replace(URL, url).replace("{root}", server.url)
        assert expected in line, line
        assert "\n" not in line
        assert not [word for word in case.absent if word in line], line
        if case.partial:
            assert f"kept the partial reply ({len(case.partial)} characters) in _chat" in line
            assert kernel.value("_chat.text") == case.partial
            assert kernel.value("_chat.complete") is False
            assert final["text/plain"].startswith(case.partial), "the text stays visible"
            assert "incomplete" in final["text/plain"]
            assert case.partial.strip() in final["text/html"]
        else:  # no output, or (after a wait long enough to show one) what happened
            assert final.get("text/plain", "no reply after") != "", "no empty output is left"
            assert "no reply after" in final.get("text/plain", "no reply after")

    if case.endpoint:
        configure(kernel, server.base_url)
    server.clear()
    after = kernel.run("%%chat\nnext")
    assert after.status == "ok", after.text()
    assert len(server.requests) == 1
    sent = server.requests[0].body["messages"]
    assert_alternating(sent)
    kept = case.text if case.error is None else case.partial
    expected = ["warm up", "Echo: warm up"]
    if kept:
        expected += [PROMPT, kept]
    assert [m["content"] for m in sent] == [*expected, "next"]


def test_non_json_data_line_is_noted_on_the_reply(kernel, server):
    server.push_fault(Fault("bad_data", after_chunks=2))
    assert kernel.run(f"%%chat\n{PROMPT}").status == "ok"
    assert kernel.value("_chat.warnings") == [
        "Skipped a data line that is not JSON: 'this is not json'"
    ]


def test_one_megabyte_reply_arrives_whole_and_coalesced(kernel, server):
    words = 100_000
    expected_len = 10 * words - 1  # 'abcdefghi' and a space, a million characters
    result = kernel.run(f"%%chat\n/repeat {words} abcdefghi", timeout=60)
    assert result.status == "ok", result.text()
    check = f"_chat.text == ' '.join(['abcdefghi'] * {words}) and len(_chat.text)"
    assert kernel.value(check) == expected_len
    assert kernel.value("_chat.complete") is True
    assert kernel.value("_chat.usage.completion_tokens") == words
    updates = len(result.of_type("comm_msg", "update_display_data"))
    assert updates <= 20 * result.wall + 2, (updates, result.wall)
    assert len(result.of_type("display_data")) == 1, "one output"
    assert not result.of_type("execute_result")
    final = result.bundles()[-1]["text/plain"]
    assert final.startswith("abcdefghi abcdefghi") and len(final) > expected_len


def test_one_character_trickle(kernel, server):
    server.chunk_chars = 1
    server.token_delay = 0.004
    result = kernel.run("%%chat\n/repeat 40 tick")
    assert result.status == "ok", result.text()
    text = " ".join(["tick"] * 40)
    assert kernel.value("_chat.text") == text
    assert kernel.value("_chat.usage.completion_tokens") == len(text)
    widget_updates = len(result.of_type("comm_msg"))
    assert widget_updates <= 20 * result.wall + 2, (widget_updates, result.wall)
    assert widget_updates < len(text) / 2, "characters are batched into updates"
    assert result.bundles()[-1]["text/plain"].startswith(text)


def test_a_server_that_closes_idle_connections_costs_no_retry(kernel, server):
    """Real servers close keep-alive connections after a while; the next cell must not notice."""
    server.push_fault(Fault("close_idle", seconds=0.2))
    first = kernel.run(f"%%chat\n{PROMPT}")
    assert first.status == "ok", first.text()
    kernel.run("import time; time.sleep(0.6)")  # past the server's keep-alive timeout
    server.clear()
    result = kernel.run("%%chat\nnext")
    assert result.status == "ok", result.text()
    assert retry_notes(result) == [] and result.stderr == ""
    assert len(server.requests) == 1
    assert kernel.value("_chat.text") == "Echo: next"
