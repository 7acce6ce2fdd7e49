"""The README says what the magics do: its option tables, interpolation examples, `--dry-run`
example and error examples are checked against the code here, so they cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from ipychat import Fault, sessions

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
FLAG = re.compile(r"(?<![\w-])--?[a-z][\w-]*")


def section(heading: str) -> str:
    """The README text under `heading` (a line starting with #), up to the next heading."""
    start = README.index(f"{heading}\n")
    level = heading.split(" ")[0]
    rest = README[start + len(heading) + 1 :]
    end = re.search(rf"^#{{1,{len(level)}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of the Markdown table that starts with `header`, without header and rule."""
    lines = text[text.index(header) :].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def code(cell: str) -> str:
    """The text of a cell that is one code span: `x` or `` x ``."""
    match = re.fullmatch(r"(`+) ?(.*?) ?\1", cell)
    assert match, f"not a code span: {cell!r}"
    return match.group(2)


@pytest.fixture(scope="module")
def shell(server, tmp_path_factory):
    from IPython.core.interactiveshell import InteractiveShell

    with pytest.MonkeyPatch.context() as mp:
        for name in ("IPYCHAT_BASE_URL", "IPYCHAT_API_KEY", "IPYCHAT_MODEL", "OPENAI_API_KEY"):
            mp.delenv(name, raising=False)
        mp.setenv("IPYCHAT_CONFIG", str(tmp_path_factory.mktemp("readme") / "none.toml"))
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "ipychat")
        try:
            yield ip
        finally:
            ip.run_line_magic("unload_ext", "ipychat")
            InteractiveShell.clear_instance()


def magic(name: str):
    from ipychat import _magics

    return getattr(_magics._instance, name)


# -- option tables -----------------------------------------------------------------------------
def documented_flags(rows: list[list[str]]) -> set[str]:
    return {flag for row in rows for flag in FLAG.findall(row[0])}


def check_flags(parser, documented: set[str]) -> None:
    actions = [a for a in parser._actions if a.option_strings]
    missing = [a.option_strings for a in actions if not documented & set(a.option_strings)]
    assert not missing, f"options with no row in the README: {missing}"
    known = {flag for a in actions for flag in a.option_strings}
    assert documented <= known, f"README rows for options that do not exist: {documented - known}"


def test_chat_option_tables_match_the_parser(shell):
    rows = table_rows(section("## Reference: `%%chat` and `%chat`"), "| option | meaning |")
    batch = section("## One prompt over many items: `%%chat --map` and `ipychat.map`")
    rows += table_rows(batch, "| option |")
    # `--map NAME` itself is the subject of its section, described before that table.
    documented = documented_flags(rows) | ({"--map"} if "`--map NAME` sends" in batch else set())
    check_flags(magic("ipychat").parser, documented)


def test_chat_config_table_matches_the_parser(shell):
    text = section("## Reference: `%chat_config`")
    rows = table_rows(text, "| command | does |")
    assert all(row[0].startswith("`%chat_config") for row in rows)
    documented = documented_flags(rows) | ({"-h"} if "`-h` shows every option" in text else set())
    check_flags(magic("ipychat_config").parser, documented)


# -- interpolation -----------------------------------------------------------------------------
INTERPOLATION = section("### Interpolation: what `{name}` fills, exactly")


def interpolation_examples() -> list[tuple[str, str]]:
    return [(code(a), code(b)) for a, b in table_rows(INTERPOLATION, "| you write | is sent |")]


@pytest.mark.parametrize(("written", "sent"), interpolation_examples())
def test_interpolation_examples(written, sent):
    from ipychat._interpolate import interpolate

    assert interpolate(written, {"x": 42, "name": "Ada", "d": {"k": 1}}) == sent


def test_interpolation_rules_name_what_the_code_protects():
    from ipychat._interpolate import protected_spans

    for protected in ("```\n{x}\n```", "~~~\n{x}\n~~~", "`{x}`", "$a{x}$", "$${x}$$"):
        assert protected_spans(protected) == [(0, len(protected))], protected
    for delimiters in ("```", "~~~", "`$...$`", "`$$...$$`", "`\\(...\\)`", "`\\[...\\]`"):
        assert delimiters in INTERPOLATION
    for escaped in ("\\(x{x}\\)", "\\[{x}\\]"):
        assert protected_spans(escaped) == [(0, len(escaped))]


def test_the_failure_example_is_the_real_message(shell):
    example = re.search(r"e\.g\. `(Could not fill \{v\}:.*?)`", INTERPOLATION, re.S).group(1)
    shell.run_cell("class Bad:\n    def __str__(self):\n        raise ValueError('no')\nv = Bad()")
    with pytest.raises(UsageError) as info:
        shell.run_line_magic("chat", "{v}")
    assert str(info.value) == " ".join(example.split())


# -- --dry-run ---------------------------------------------------------------------------------
def test_dry_run_example_is_what_dry_run_prints(shell, capsys):
    text = section("### `--dry-run`: see what would be sent")
    example = re.search(r"```\n(POST .*?)\n```", text, re.S).group(1)
    shell.run_line_magic("chat_config", "--reset")
    shell.run_line_magic("chat_config", "api_key=sk-readme-example-4f60")
    shell.user_ns["x"] = 42
    sessions.clear()
    capsys.readouterr()
    shell.run_cell_magic("chat", "--dry-run", "what is {x}?")
    assert capsys.readouterr().out.strip() == example
    shell.run_line_magic("chat_config", "--reset")


# -- error examples ----------------------------------------------------------------------------
ERRORS = section("## Troubleshooting")
CONTEXT_BODY = {
    "error": {
        "message": "This model's maximum context length is 2048 tokens. However, you requested "
        "4000 tokens.",
        "type": "invalid_request_error",
        "code": "context_length_exceeded",
    }
}
KEY_BODY = {
    "error": {
        "message": "Incorrect API key provided",
        "type": "invalid_request_error",
        "code": "invalid_api_key",
    }
}
REDIRECTED = "https://example.org/v1/chat/completions"
# How to see each example: (settings, fault, cell options); the row is found by its start.
REPRODUCE = {
    "Could not connect": ("base_url=http://127.0.0.1:9 max_retries=0", None, ""),
    "No answer from URL within": ("timeout=0.5", Fault("stall", seconds=3), "--no-stream"),
    "400 from URL: This model's maximum": (
        "",
        Fault("status", status=400, body=CONTEXT_BODY),
        "",
    ),
    "307 from URL": ("", Fault("redirect", headers={"Location": REDIRECTED}), ""),
    "401 from URL": ("", Fault("status", status=401, body=KEY_BODY), ""),
    "200 from URL, but the body is not JSON": ("", Fault("bad_data"), "--no-stream"),
    "The stream from URL was cut off after": ("", Fault("drop", after_chunks=3), ""),
    "temperature must be": ("temperature=3", None, None),
    "ipychat: %chat, %%chat": (None, None, None),  # at load, when another extension has them
}
NOT_REPRODUCED = {
    "The stream from URL sent only keep-alives": "waits idle_timeout (>= 1 s), in test_faults",
    "403 from URL": "an example with ... only",
    "404 from URL": "an example with ... only",
    "429 from URL": "retried with waits first; see test_faults",
    "`500`": "a range of statuses",
    "400 from URL: ...": "an example with ... only",
    "The stream from URL was cut off before": "see test_faults",
    "Interrupted": "needs a real interrupt; see test_magics_kernel",
}


def pattern(example: str, url: str) -> re.Pattern[str]:
    """The example as a regex: URL, N, ... and the default seconds stand for what varies.

    An example that ends mid-sentence (no final `.`) shows how the line starts.
    """
    parts = re.split(r"(URL|\bN\b|\.\.\.|\b\d+ s\b)", example)
    wild = {"URL": re.escape(url), "N": r"\d+", "...": r".*?"}
    regex = "".join(wild.get(p, r"[\d.]+ s" if p.endswith(" s") else re.escape(p)) for p in parts)
    return re.compile(regex if example.endswith(".") else regex + ".*", re.S)


def error_rows() -> list[str]:
    return [code(row[0]) for row in table_rows(ERRORS, "| you see | cause and fix |")]


def test_every_error_row_is_checked_or_says_why_not():
    for example in error_rows():
        known = [k for k in (*REPRODUCE, *NOT_REPRODUCED) if example.startswith(k.strip("`"))]
        assert known, f"a README error example nobody checks: {example!r}"


@pytest.mark.parametrize("start", [k for k, v in REPRODUCE.items() if v[0] is not None])
def test_error_examples_are_the_real_messages(shell, server, start):
    example = next(e for e in error_rows() if e.startswith(start))
    settings, fault, options = REPRODUCE[start]
    server.clear()
    sessions.clear()
    shell.run_line_magic("chat_config", "--reset")
    shell.run_line_magic("chat_config", f"base_url={server.base_url}")
    url = f"{server.base_url}/chat/completions"
    if "127.0.0.1:9" in settings:
        url = "http://127.0.0.1:9/chat/completions"
    if fault is not None:
        server.push_fault(fault)
    with pytest.raises(UsageError) as info:
        if options is None:
            shell.run_line_magic("chat_config", settings)
        else:
            if settings:
                shell.run_line_magic("chat_config", settings)
            shell.run_cell_magic("chat", options, "one two three four five six")
    message = str(info.value)
    shell.run_line_magic("chat_config", "--reset")
    assert pattern(example, url).fullmatch(message), (example, message)


def test_the_names_taken_example(shell, capsys, monkeypatch):
    from ipychat import _magics

    example = next(e for e in error_rows() if e.startswith("ipychat: %chat, %%chat"))
    monkeypatch.setattr(_magics, "_warned_taken", False)
    shell.run_line_magic("unload_ext", "ipychat")
    shell.register_magic_function(lambda line, cell=None: None, "line_cell", "chat")
    try:
        capsys.readouterr()
        shell.run_line_magic("load_ext", "ipychat")
        line = capsys.readouterr().err.strip()
        assert pattern(example, "").fullmatch(line), (example, line)
    finally:
        shell.run_line_magic("unload_ext", "ipychat")
        for kind in ("line", "cell"):
            shell.magics_manager.magics[kind].pop("chat", None)
        shell.run_line_magic("load_ext", "ipychat")
