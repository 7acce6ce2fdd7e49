"""What a cell sends, in a real kernel: questions, `{name}` filling, options, `--dry-run`, and
session changes that apply only when the exchange is recorded."""

from __future__ import annotations

import json

import pytest

from ipychat import Fault

from . import test_magics_kernel as base
from .kernel import usage_error

pytestmark = pytest.mark.kernel
kernel = base.kernel  # the same fixtures: one kernel per module, an empty session per test
fresh = base.fresh

CANARY = "sk-canary-5e1d7a9b3c0f2468"


@pytest.fixture(autouse=True)
def interpolating(fresh, kernel):
    """After `fresh` (an empty default session, default settings): filling switched on."""
    assert kernel.run("%config ChatMagics.interpolate = True").status == "ok"


def sent(server) -> str:
    return server.requests[-1].body["messages"][-1]["content"]


# -- questions ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("%chat What is Python?", "What is Python?"),
        ("%ipychat What is Python??", "What is Python??"),
        ("answer = %chat Is 7 prime?", "Is 7 prime?"),
        ("xs = [0]\nxs[0] = %chat  -t 0.2  Why?", "Why?"),
        ("def ask():\n    r = %chat Inside a function?\n    return r\nanswer = ask()", None),
    ],
)
def test_a_question_mark_is_part_of_the_message(kernel, server, code, message):
    result = kernel.run(code)
    assert result.status == "ok", result.text()
    assert "not found" not in result.text()
    assert len(server.requests) == 1, "the question was sent"
    assert sent(server) == (message or "Inside a function?")


def test_help_requests_stay_help(kernel, server):
    result = kernel.run("%chat?")
    assert result.status == "ok", result.text()
    assert not server.requests
    shown = json.dumps(result.reply["content"].get("payload", [])) + result.text()
    assert "--dry-run" in shown, "IPython's help for the magic, with its options"


# -- {name} filling ----------------------------------------------------------------------------
def test_code_and_math_are_sent_as_written_and_the_status_names_what_was_filled(kernel, server):
    kernel.run("i = 2\nname = 'Alice'\nd = {'k': 1}\nx = 42")
    cell = (
        "Row {i} is {name}.\n"
        "```python\n"
        'print(f"row {i}: {name}")\n'
        "```\n"
        "Inline `'{d}'.format(d=1)`, math $\\frac{1}{x}$ and \\({x}\\), {{x}} stays."
    )
    result = kernel.run(f"%%chat\n{cell}")
    assert result.status == "ok", result.text()
    expected = cell.replace("Row {i} is {name}.", "Row 2 is Alice.", 1)
    assert sent(server) == expected
    final = result.bundles()[-1]
    assert "filled: i, name" in final["text/plain"]
    assert "filled: i, name" in final["text/html"]
    assert kernel.value("_chat.filled") == ["i", "name"]


def test_a_function_sees_its_own_locals(kernel, server):
    code = (
        "topic = 'global'\n"
        "def ask(topic):\n"
        "    reply = %chat Tell me about {topic}\n"
        "    return reply\n"
        "reply = ask('local')"
    )
    assert kernel.run(code).status == "ok"
    assert sent(server) == "Tell me about local"
    assert kernel.run("r = %chat About {topic}").status == "ok"
    assert sent(server) == "About global"


def test_options_are_filled_unless_interpolation_is_off(kernel, server):
    kernel.run("style = 'Be brief, please.'\nx = 7")
    assert kernel.run("%%chat --system {style} -s a\nq {x}").status == "ok"
    assert server.requests[-1].body["messages"][0]["content"] == "Be brief, please."
    assert kernel.run("%%chat --no-interpolate --system '{style}' -s b\nq {x}").status == "ok"
    assert [m["content"] for m in server.requests[-1].body["messages"]] == ["{style}", "q {x}"]
    kernel.run("%config ChatMagics.interpolate = False")
    assert kernel.run("%%chat --system '{style}' -s c\nq {x}").status == "ok"
    assert [m["content"] for m in server.requests[-1].body["messages"]] == ["{style}", "q {x}"]


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        ("class B:\n    def __str__(self):\n        raise KeyError('no')\nv = B()", "str() raised"),
        ("v = 'half \\ud83d emoji'", "lone surrogate (U+D83D)"),
    ],
)
def test_values_that_cannot_be_sent_are_one_line(kernel, server, setup, words):
    assert kernel.run(setup).status == "ok"
    for code in ("%%chat\nvalue {v}", "%chat value {v}", "%%chat --system {v}\nhi"):
        line = usage_error(kernel.run(code))
        assert words in line and "{v}" in line, line
        assert "Traceback" not in kernel.run(code).text()
    assert not server.requests


# -- option parsing ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "system", "model", "message"),
    [
        ('%chat --system "Be brief." hello', "Be brief.", None, "hello"),
        ("%chat --system 'Be brief.' -m m2 hello there", "Be brief.", "m2", "hello there"),
        ("%chat  -m  m3  hi  there", None, "m3", "hi  there"),
        ('%%chat --system="Be kind."\nhey', "Be kind.", None, "hey"),
        ("%%chat --system='Be kind.' --model=m4\nhey", "Be kind.", "m4", "hey"),
        ("%chat what's up?", None, None, "what's up?"),
        ("%chat -- -v means?", None, None, "-v means?"),
        ("%chat -5 degrees is cold", None, None, "-5 degrees is cold"),
    ],
)
def test_options_parse_as_on_a_command_line(kernel, server, code, system, model, message):
    result = kernel.run(code)
    assert result.status == "ok", result.text()
    body = server.requests[-1].body
    assert body["messages"][-1]["content"] == message
    assert body["model"] == (model or "ipychat-local")
    first = body["messages"][0]
    assert (first["content"] if first["role"] == "system" else None) == system


@pytest.mark.parametrize("code", ["%chat -h", "%chat --help", "%%chat -h\nhi", "%chat_config -h"])
def test_help_is_printed_and_nothing_is_sent(kernel, server, code):
    result = kernel.run(code)
    assert result.status == "ok", result.text()
    assert "usage" not in result.stderr.lower() and not result.stderr
    assert "-h, --help" in result.stdout
    assert not server.requests


def test_stream_option_overrides_the_setting(kernel, server):
    kernel.run("%chat_config stream=False")
    assert kernel.run("%%chat\nwhole").status == "ok"
    assert "stream" not in server.requests[-1].body
    assert kernel.run("%%chat --stream\nstreamed").status == "ok"
    assert server.requests[-1].body["stream"] is True
    assert kernel.value("_chat.text") == "Echo: streamed"


# -- --dry-run ---------------------------------------------------------------------------------
def test_dry_run_shows_the_request_and_sends_nothing(kernel, server):
    kernel.run(f"%chat_config api_key={CANARY} extra_headers={{'X-Token': 'tok-9f8e7d6c5b4a'}}")
    assert kernel.run("%%chat\nfirst").status == "ok"
    server.clear()
    kernel.run("x = 3\n_chat_before = _chat")
    result = kernel.run("%%chat --dry-run -t 0.3 --system 'Be exact.'\nwhat is {x}?")
    assert result.status == "ok", result.text()
    out = result.stdout
    assert not server.requests, "nothing was sent"
    assert out.startswith(f"POST {server.base_url}/chat/completions\n")
    assert "Authorization: Bearer ****" + CANARY[-4:] in out
    assert "X-Token: ****" in out and "tok-9f8e7d6c" not in out
    assert CANARY[:12] not in result.text()
    body = json.loads(out[out.index("{") : out.rindex("}") + 1])
    assert body["temperature"] == 0.3 and body["stream"] is True
    contents = [m["content"] for m in body["messages"]]
    assert contents == ["Be exact.", "first", "Echo: first", "what is 3?"]
    assert "filled: x" in out and "nothing was sent or recorded" in out
    assert kernel.value("_chat is _chat_before") is True, "_chat is not replaced"
    assert kernel.value("len(ipychat.sessions.get())") == 1, "nothing recorded"
    assert kernel.value("ipychat.sessions.get().system") is None, "--system not applied"
    assert kernel.run("%chat --dry-run -s brand-new hi?").status == "ok"
    assert kernel.value("ipychat.sessions.names()") == ["default"], "no session created"


# -- session changes apply only if the exchange is recorded ------------------------------------
def failing(server) -> None:
    server.push_fault(Fault("status", status=400, body={"error": {"message": "bad request"}}))


def test_new_and_system_do_not_apply_when_the_request_fails(kernel, server):
    assert kernel.run("%%chat --system 'Old.'\nkeep me").status == "ok"
    failing(server)
    usage_error(kernel.run("%%chat --new --system 'New.'\nfails"))
    assert kernel.value("ipychat.sessions.get().system") == "Old."
    assert kernel.value("len(ipychat.sessions.get())") == 1, "--new did not empty it"
    assert kernel.run("%%chat --new --system 'New.'\nworks").status == "ok"
    assert kernel.value("ipychat.sessions.get().system") == "New."
    assert kernel.value("[m.content for m in ipychat.sessions.get().messages]") == [
        "works",
        "Echo: works",
    ]


def test_one_shot_system_prompt_is_not_kept(kernel, server):
    assert kernel.run("%%chat --system 'Kept.'\nhi").status == "ok"
    assert kernel.run("%%chat --no-history --system 'Once.'\nsolo").status == "ok"
    assert [m["content"] for m in server.requests[-1].body["messages"]] == ["Once.", "solo"]
    assert kernel.value("ipychat.sessions.get().system") == "Kept."
    assert kernel.value("len(ipychat.sessions.get())") == 1


def test_a_new_session_appears_only_with_its_first_reply(kernel, server):
    failing(server)
    usage_error(kernel.run("%%chat -s fresh\nfails"))
    assert "fresh" not in kernel.value("ipychat.sessions.names()")
    assert kernel.run("%%chat -s fresh\nworks").status == "ok"
    assert "fresh" in kernel.value("ipychat.sessions.names()")


def test_a_partial_reply_is_recorded_with_the_cells_changes(kernel, server):
    server.push_fault(Fault("drop", after_chunks=3))
    line = usage_error(kernel.run("%%chat --system 'Partial.'\none two three four five"))
    assert "partial reply" in line
    assert kernel.value("ipychat.sessions.get().system") == "Partial."
    assert kernel.value("len(ipychat.sessions.get())") == 1


# -- what reaches a terminal -------------------------------------------------------------------
HOSTILE = "bad \x1b]0;pwned\x07 title\x1b[2J and\nmore \u202elines"


def test_error_lines_and_retry_notices_show_controls_instead_of_obeying_them(kernel, server):
    kernel.run("%chat_config max_retries=1")
    body = {"error": {"message": HOSTILE}}
    server.push_fault(Fault("status", status=503, body=body, headers={"Retry-After": "0"}))
    server.push_fault(Fault("status", status=400, body=body))
    result = kernel.run("%%chat\nhi")
    line = usage_error(result)
    for text in (line, result.stderr):
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text, text
    assert "\\x1b]0;pwned\\x07" in line and "\n" not in line.strip()
    assert "retrying" in result.stderr and "\\x1b" in result.stderr
