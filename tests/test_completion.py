"""Tab completion of options, setting names and session names, through IPython's Completer."""

from __future__ import annotations

import pytest

from ipychat import sessions


@pytest.fixture
def shell(tmp_path, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("IPYCHAT_CONFIG", str(tmp_path / "none.toml"))
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "ipychat")
    sessions.clear()
    sessions.get("notes")
    sessions.get("nothing")
    sessions.get("other")
    try:
        yield ip
    finally:
        ip.run_line_magic("unload_ext", "ipychat")
        sessions.clear()
        InteractiveShell.clear_instance()


def complete(shell, text: str) -> list[str]:
    """What the shell's Completer offers at the end of `text` (IPython's current API)."""
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():
        return sorted({c.text for c in shell.Completer.completions(text, len(text))})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("%chat --sys", ["--system"]),
        ("%%chat --no-hi", ["--no-history"]),
        ("%%chat --no-i", ["--no-interpolate"]),
        ("%chat --dry", ["--dry-run"]),
        ("%ipychat -m x --str", ["--stream"]),
        ("%chat -s no", ["notes", "nothing"]),
        ("%%chat --session ot", ["other"]),
        ("%chat_config --hi", ["--history"]),
        ("%chat_config --mod", ["--models"]),
        ("%chat_config --unset tem", ["temperature"]),
        ("%chat_config tempe", ["temperature="]),
        ("%chat_config --use -s no", ["notes", "nothing"]),
        ("%ipychat_config --rename x -s ot", ["other"]),
    ],
)
def test_completions(shell, text, expected):
    assert complete(shell, text) == expected


def test_every_option_of_both_magics_completes(shell):
    from ipychat import _magics

    magics = _magics._instance
    for name, magic in (("%chat", magics.ipychat), ("%chat_config", magics.ipychat_config)):
        flags = {f for f in magic.parser._option_string_actions if f.startswith("--")}
        assert set(complete(shell, f"{name} --")) == flags


def test_unload_removes_the_completers(shell):
    shell.run_line_magic("unload_ext", "ipychat")
    assert "--system" not in complete(shell, "%chat --sys")
    shell.run_line_magic("load_ext", "ipychat")
    assert complete(shell, "%chat --sys") == ["--system"]
