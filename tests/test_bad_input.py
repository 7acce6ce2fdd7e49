"""Bad input is refused before any request, with a message that names what was wrong.

Out-of-range and wrongly typed parameters, unknown settings and options, malformed
`%chat_config` lines, empty cells, invalid URLs, history files that are not JSON or break the
role rules, unknown session names. Most cases run in an in-process shell (fast); the main
ones also run in a real kernel. Property tests feed random option lines and settings and check
that the only failure is a `UsageError`, that a refused line sends nothing and changes nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

from ipychat import sessions

from .kernel import chat_kernel, usage_error

ROLE_BREAKS = {
    "not-json.json": "not json {",
    "binary.json": b"\x89PNG\r\n\x1a\n\xff\xfe",
    "two-users.json": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    "assistant-first.json": [{"role": "assistant", "content": "a"}],
    "empty-content.json": [
        {"role": "user", "content": " "},
        {"role": "assistant", "content": "b"},
    ],
    "tool-role.json": [{"role": "tool", "content": "x"}],
    "ends-with-user.json": [{"role": "user", "content": "x"}],
    "late-system.json": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "system", "content": "c"},
    ],
    "no-messages.json": {"messages": "nope"},
}

# (magic, line, cell or None, words the message must contain)
CASES = [
    # out-of-range and wrongly typed parameters
    ("chat", "-t 5", "hi", ["temperature", "5", "< 2"]),
    ("chat", "-t hot", "hi", ["temperature", "'hot'"]),
    ("chat", "-t nan", "hi", ["temperature", "nan"]),
    ("chat", "--top-p 0", "hi", ["top_p", "> 0"]),
    ("chat", "--top-p 1.5", "hi", ["top_p", "1.5"]),
    ("chat", "--max-tokens 0", "hi", ["max_tokens", ">= 1"]),
    ("chat", "--max-tokens 1.5", "hi", ["--max-tokens", "invalid int value: '1.5'"]),
    ("chat", "--presence-penalty 3", "hi", ["presence_penalty", "3"]),
    ("chat", "--frequency-penalty -2.5", "hi", ["frequency_penalty", "-2.5"]),
    ("chat", "-m ''", "hi", ["model", "non-empty"]),
    ("chat", "--stop ''", "hi", ["stop", "non-empty"]),
    ("chat", "-o 1bad", "hi", ["-o", "'1bad'"]),
    ("chat", '-m "unbalanced', "hi", ["Unbalanced quotes"]),
    ("chat_config", "temperature=2", None, ["temperature", "got 2"]),
    ("chat_config", "temperature=hot", None, ["temperature", "'hot'"]),
    ("chat_config", "temperature=True", None, ["temperature", "True (bool)"]),
    ("chat_config", "timeout=0", None, ["timeout", "> 0"]),
    ("chat_config", "timeout=1e999", None, ["timeout", "finite"]),
    ("chat_config", "max_retries=11", None, ["max_retries", "<= 10"]),
    ("chat_config", "max_tokens=1.5", None, ["max_tokens", "without a decimal point"]),
    ("chat_config", "history_limit=-1", None, ["history_limit", ">= 0"]),
    ("chat_config", "stream=maybe", None, ["stream", "True or False", "'maybe'"]),
    ("chat_config", "stop=[1,2]", None, ["stop", "[1, 2]"]),
    ("chat_config", "extra_body=[1]", None, ["extra_body", "dict"]),
    ("chat_config", 'extra_body={"model": "x"}', None, ["extra_body", "model"]),
    ("chat_config", 'extra_headers={"Authorization": "x"}', None, ["Authorization", "api_key"]),
    ("chat_config", "model=", None, ["model", "non-empty"]),
    ("chat_config", "temperature=0.5 timeout=0", None, ["timeout"]),
    # unknown settings and options
    ("chat_config", "temprature=0.5", None, ["Unknown setting 'temprature'", "'temperature'"]),
    ("chat_config", "foo=1", None, ["Unknown setting 'foo'", "Known settings"]),
    ("chat", "--bogus", "hi", ["unrecognized arguments: --bogus"]),
    ("chat", "-x", "hi", ["unrecognized arguments: -x"]),
    ("chat_config", "--bogus", None, ["unrecognized arguments: --bogus"]),
    ("chat_config", "--use", None, ["--use needs --session"]),
    # malformed %chat_config lines
    ("chat_config", "temprature", None, ["Unknown setting 'temprature'"]),
    ("chat_config", "temperature 0.3", None, ["key=value", "'temperature 0.3'"]),
    ("chat_config", "api_key sk-canary-123456789", None, ["key=value", "not key=value"]),
    # combinations that would do only part of what they say
    ("chat_config", "--clear --undo", None, ["--clear, --undo cannot be combined"]),
    ("chat_config", "--history --save", None, ["cannot be combined"]),
    ("chat_config", "model=x --clear", None, ["key=value, --clear cannot be combined"]),
    ("chat_config", "--with-key", None, ["--with-key goes with --save"]),
    ("chat_config", "--new -s x", None, ["--new goes with --use"]),
    ("chat_config", "model=x -s other", None, ["-s NAME goes with a session command"]),
    ("chat_config", "--use -s typo", None, ["No session named 'typo'", "--new"]),
    ("chat_config", "--delete", None, ["--delete needs -s NAME"]),
    ("chat_config", "--delete -s nosuch", None, ["No session named 'nosuch'"]),
    ("chat_config", "--rename x -s nosuch", None, ["No session named 'nosuch'"]),
    ("chat_config", "--unset", None, ["--unset", "expected at least one argument"]),
    ("chat_config", "--unset modle", None, ["Unknown setting 'modle'"]),
    # line-magic options
    ("chat", "-o class hi", None, ["-o needs a variable name", "'class'"]),
    ("chat", "--bogus hi", None, ["Unknown option '--bogus'", "put -- before it"]),
    ("chat", "-x hi", None, ["Unknown option '-x'"]),
    ("chat", "--system 'unclosed hi", None, ["Unbalanced quotes"]),
    ("chat", "--stream --no-stream hi", None, ["--stream or --no-stream, not both"]),
    ("chat", "{bad_str}", None, ["Could not fill {bad_str}", "str() raised ZeroDivisionError"]),
    ("chat", "{surrogate}", None, ["Could not fill {surrogate}", "lone surrogate"]),
    ("chat", "--system {bad_str} hi", None, ["Could not fill {bad_str}"]),
    ("chat_config", "=3", None, ["key=value", "'=3'"]),
    ("chat_config", 'model="unbalanced', None, ["Unbalanced quotes"]),
    ("chat_config", 'extra_body={"a": 1', None, ["Unbalanced", "brackets"]),
    ("chat_config", "--export", None, ["--export", "expected one argument"]),
    ("chat_config", "--export 'x.json", None, ["Unbalanced quotes"]),
    # empty cells
    ("chat", "", "   \n\t\n", ["empty", "below %%chat"]),
    ("chat", "-t 0.5", "\n\n", ["empty"]),
    ("chat", "", None, ["empty", "after %chat"]),
    ("chat", "-t 0.5", None, ["empty", "after %chat"]),
    # invalid URLs
    ("chat_config", "base_url=localhost:8000", None, ["base_url", "'http://localhost:8000'"]),
    ("chat_config", "base_url=ftp://x", None, ["base_url", "http://", "'ftp://x'"]),
    ("chat_config", "base_url=http://", None, ["base_url", "with a host"]),
    ("chat_config", "base_url=http://h:99999", None, ["base_url", "'http://h:99999'"]),
    ("chat_config", "host=not-a-url", None, ["host", "'not-a-url'"]),
    ("chat_config", "host=http://a base_url=http://b", None, ["either host or base_url"]),
    # history files
    *[
        ("chat_config", f"--load {name}", None, [words])
        for name, words in [
            ("not-json.json", "not valid JSON"),
            ("binary.json", "is not text"),
            ("two-users.json", "both user messages"),
            ("assistant-first.json", "no user turn"),
            ("empty-content.json", "empty content"),
            ("tool-role.json", "role 'tool'"),
            ("ends-with-user.json", "ends with a user turn"),
            ("late-system.json", "only the first"),
            ("no-messages.json", "'messages' list"),
            ("missing.json", "No such file"),
        ]
    ],
    # unknown session names
    *[
        ("chat_config", f"{action} -s nosuch", None, ["No session named 'nosuch'"])
        for action in ("--history", "--undo", "--clear", "--export out.json")
    ],
]


def case_id(case: tuple) -> str:
    magic, line, cell, _ = case
    prefix = "%%" if cell is not None else "%"
    return f"{prefix}{magic} {line}" + (" +cell" if cell is not None else "")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """History files to load, and the working folder (so nothing is written elsewhere)."""
    folder = tmp_path_factory.mktemp("bad-input")
    for name, content in ROLE_BREAKS.items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            text = content if isinstance(content, str) else json.dumps(content)
            (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def shell(server, workdir):
    """An in-process shell with ipychat, isolated from the user's config and environment."""
    from IPython.core.interactiveshell import InteractiveShell

    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(("IPYCHAT_", "OPENAI_")):
                mp.delenv(name)
        mp.setenv("IPYCHAT_CONFIG", str(workdir / "config.toml"))
        mp.chdir(workdir)
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "ipychat")
        ip.user_ns.update(bad_str=BadStr(), surrogate="lone \ud800 surrogate")
        try:
            yield ip
        finally:
            ip.run_line_magic("unload_ext", "ipychat")
            InteractiveShell.clear_instance()


class BadStr:
    """A value whose str() raises: filling it must be one line, not a traceback."""

    def __str__(self) -> str:
        raise ZeroDivisionError("division by zero")


def magics():
    from ipychat import _magics

    return _magics._instance


def reset(shell, server) -> None:
    server.clear()
    sessions.clear()
    shell.run_line_magic("chat_config", "--reset")
    shell.run_line_magic("chat_config", f"base_url={server.base_url}")


def snapshot() -> object:
    """Everything a refused line must leave unchanged: settings and sessions."""
    state = magics().settings.describe()
    history = {name: sessions.get(name).to_dict() for name in sessions.names()}
    return state, history, sessions.current


def run(shell, magic: str, line: str, cell: str | None):
    if cell is None:
        return shell.run_line_magic(magic, line)
    return shell.run_cell_magic(magic, line, cell)


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_refused_before_any_request(shell, server, case):
    reset(shell, server)
    shell.run_cell_magic("chat", "", "an earlier exchange")  # history that must survive
    server.clear()
    magic, line, cell, words = case
    before = snapshot()
    with pytest.raises(UsageError) as info:
        run(shell, magic, line, cell)
    message = str(info.value)
    for word in words:
        assert word in message, message
    assert "\n" not in message.strip(), "one line"
    assert server.requests == [], "nothing is sent"
    assert snapshot() == before, "a refused line changes nothing"


def test_load_refuses_a_folder(shell, server, workdir):
    reset(shell, server)
    with pytest.raises(UsageError, match="directory"):
        shell.run_line_magic("chat_config", f"--load {workdir}")


# -- property tests ------------------------------------------------------------------------

CHAT_OPTIONS = [
    "-m",
    "--model",
    "-t",
    "--temperature",
    "--top-p",
    "--max-tokens",
    "--presence-penalty",
    "--frequency-penalty",
    "--stop",
    "-s",
    "--session",
    "--system",
    "-o",
    "--out",
]
CHAT_FLAGS = [
    "--new",
    "--no-history",
    "--no-stream",
    "--stream",
    "-q",
    "--quiet",
    "--no-interpolate",
]
GARBAGE = [
    "--bogus",
    "-x",
    "--",
    "-",
    "=",
    "'",
    '"',
    "'a b'",
    '"a b"',
    "--temperature=",
    "--api-key=sk-x",
    "{x}",
    "{",
    "}",
    "[1, 2]",
    '{"a": 1}',
    "none",
    "True",
]
SAFE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x0b\x0c"),
    max_size=12,
)
VALUE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=-3, max_value=3).map(lambda x: f"{x:.3g}"),
    st.integers(min_value=-5, max_value=10**20).map(str),
    st.sampled_from(["", "''", '""', "0", "1", "-1", "1e999", "nan", "hot", "1bad", "ok", "a-b"]),
    st.sampled_from(GARBAGE),
    SAFE_TEXT,
)
CHAT_TOKEN = st.one_of(
    st.tuples(st.sampled_from(CHAT_OPTIONS), VALUE).map(" ".join),
    st.tuples(st.sampled_from(CHAT_OPTIONS), VALUE).map("=".join),
    st.sampled_from(CHAT_FLAGS),
    st.sampled_from(GARBAGE),
    SAFE_TEXT,
)
CELL = st.one_of(st.sampled_from(["hi", "", "  \n ", "{x} and {y}", "two\nlines"]), SAFE_TEXT)

SETTING_KEYS = [
    "base_url",
    "host",
    "api_key",
    "model",
    "system",
    "temperature",
    "top_p",
    "max_tokens",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "stream",
    "timeout",
    "max_retries",
    "history_limit",
    "extra_body",
    "extra_headers",
    "temprature",
    "foo",
    "api-key",
    "1x",
    "",
]
SETTING_VALUE = st.one_of(
    VALUE,
    st.sampled_from(
        [
            "http://127.0.0.1:1/v1",
            "https://localhost",
            "localhost:80",
            "ftp://x",
            "http://h:99999",
            "['a', 'b']",
            "[]",
            '{"k": [1, 2]}',
            '{"model": "x"}',
            '{"X-Trace": "1"}',
            '{"Authorization": "x"}',
            "'quoted'",
            "True",
            "false",
            "None",
            "sk-abcdef123456",
        ]
    ),
)
GOOD_SETTINGS = [
    "temperature=0.5",
    "top_p=1",
    "model=m-1",
    "system='Be brief.'",
    "stop=['a', 'b']",
    "stream=false",
    "timeout=5",
    "max_retries=0",
    "history_limit=3",
    "max_tokens=64",
    'extra_body={"seed": 1}',
    "base_url=http://127.0.0.1:1/v1",
    "host=http://localhost:2",
    "temperature=none",
]
CONFIG_TOKEN = st.one_of(
    st.tuples(st.sampled_from(SETTING_KEYS), SETTING_VALUE).map("=".join),
    st.sampled_from(GOOD_SETTINGS),
    st.sampled_from(GOOD_SETTINGS),
    st.sampled_from([g for g in GARBAGE if not g.startswith("-")]),
    SAFE_TEXT.filter(lambda t: not t.lstrip().startswith("-")),
)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(tokens=st.lists(CHAT_TOKEN, max_size=5), cell=CELL)
def test_random_chat_lines_fail_only_with_usage_errors(shell, server, tokens, cell):
    reset(shell, server)
    namespace = dict(shell.user_ns)
    shell.user_ns.update(x=1, y="why")
    line = " ".join(tokens)
    before = snapshot()
    try:
        try:
            shell.run_cell_magic("chat", line, cell)
        except UsageError:
            event("refused")
            assert server.requests == [], f"a refused line sent a request: {line!r}"
            assert snapshot() == before, f"a refused line changed state: {line!r}"
        else:
            event("sent")
            assert len(server.requests) == 1
    finally:
        shell.user_ns.clear()
        shell.user_ns.update(namespace)


@PROPERTY
@given(tokens=st.lists(CONFIG_TOKEN, min_size=1, max_size=4))
def test_random_settings_fail_only_with_usage_errors(shell, server, tokens):
    reset(shell, server)
    line = " ".join(tokens)
    before = snapshot()
    try:
        shell.run_line_magic("chat_config", line)
        event("accepted")
    except UsageError:
        event("refused")
        assert snapshot() == before, f"a refused line changed settings: {line!r}"
    assert server.requests == []


# -- the main cases in a real kernel ---------------------------------------------------------

KERNEL_CASES = [
    ("%%chat -t 5\nhi", ["temperature", "5"]),
    ("%%chat --bogus\nhi", ["--bogus"]),
    ("%%chat\n   \n", ["empty"]),
    ("%chat", ["empty"]),
    ("%chat_config temprature=0.5", ["Unknown setting 'temprature'"]),
    ("%chat_config temperature 0.3", ["key=value"]),
    ("%chat_config --clear --undo", ["cannot be combined"]),
    ("%chat_config --use -s typo", ["No session named 'typo'"]),
    (
        "class B:\n    def __str__(self): return 1 / 0\nbad_str = B()\n%chat What is {bad_str}?",
        ["Could not fill {bad_str}"],
    ),
    ("%chat -o class hi", ["-o needs a variable name"]),
    ("%chat_config max_retries=1.5", ["max_retries"]),
    ("%chat_config base_url=localhost:8000", ["base_url", "http://localhost:8000"]),
    ("%chat_config --load {folder}/not-json.json", ["not valid JSON"]),
    ("%chat_config --load {folder}/two-users.json", ["alternate"]),
    ("%chat_config --history -s nosuch", ["No session named 'nosuch'"]),
    ("%chat_config --api-key", ["cannot ask for input", "IPYCHAT_API_KEY"]),
]


@pytest.fixture(scope="module")
def kernel(server, tmp_path_factory):
    k = chat_kernel(tmp_path_factory.mktemp("kernel"), server.base_url)
    yield k
    k.shutdown()


@pytest.mark.kernel
@pytest.mark.parametrize(("code", "words"), KERNEL_CASES, ids=[c for c, _ in KERNEL_CASES])
def test_refused_in_a_kernel(kernel, server, workdir, code, words):
    server.clear()
    line = usage_error(kernel.run(code.replace("{folder}", str(Path(workdir)))))
    for word in words:
        assert word in line, line
    assert server.requests == []
    assert kernel.run("%%chat\nstill works").status == "ok"
