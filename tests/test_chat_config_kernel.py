"""`%chat_config` in a real kernel: settings that stay, fall back and combine as stated, and
session commands that never lose or invent a history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from . import test_magics_kernel as base
from .kernel import usage_error

pytestmark = pytest.mark.kernel
kernel = base.kernel  # the same fixtures: one kernel per module, an empty session per test
fresh = base.fresh


@pytest.fixture
def config_file(kernel):
    """The kernel's config file (IPYCHAT_CONFIG), removed again after the test."""
    path = Path(kernel.value("__import__('os').environ['IPYCHAT_CONFIG']"))
    yield path
    path.unlink(missing_ok=True)
    assert kernel.run("%reload_ext ipychat").status == "ok"


def shown(kernel, code: str) -> str:
    result = kernel.run(code)
    assert result.status == "ok", result.text()
    return result.stdout


# -- one setting -------------------------------------------------------------------------------
def test_show_and_unset_one_setting(kernel, server):
    kernel.run("%chat_config model=m1 temperature=0.4")
    assert shown(kernel, "%chat_config model temperature").splitlines() == [
        "model = 'm1' (from set)",
        "temperature = 0.4 (from set)",
    ]
    assert shown(kernel, "%chat_config --unset model") == "model = 'ipychat-local' (from default)\n"
    kernel.run("%%chat\nhi")
    assert server.requests[-1].body["model"] == "ipychat-local"
    assert server.requests[-1].body["temperature"] == 0.4


def test_none_falls_back_to_the_files_value(kernel, server, config_file):
    config_file.write_text("temperature = 0.2\n")
    assert kernel.run("%reload_ext ipychat").status == "ok"
    kernel.run("%chat_config temperature=0.9")
    kernel.run("%chat_config temperature=none")
    assert shown(kernel, "%chat_config temperature") == "temperature = 0.2 (from file)\n"
    kernel.run("%%chat\nhi")
    assert server.requests[-1].body["temperature"] == 0.2


# -- settings that stay ------------------------------------------------------------------------
def test_reload_keeps_settings_and_sessions(kernel, server):
    kernel.run("%chat_config model=kept-model max_retries=0")
    kernel.run("%%chat -s notes\nremember me")
    assert kernel.run("%reload_ext ipychat").status == "ok"
    assert shown(kernel, "%chat_config model") == "model = 'kept-model' (from set)\n"
    assert kernel.run("%%chat -s notes\nand now?").status == "ok"
    body = server.requests[-1].body
    assert body["model"] == "kept-model"
    assert [m["content"] for m in body["messages"]][:2] == ["remember me", "Echo: remember me"]


def test_reset_keeps_ipython_config(kernel, server):
    try:
        kernel.run("%config ChatMagics.model = 'configured-model'")
        kernel.run("%chat_config model=typed-model")
        assert "IPython config" in shown(kernel, "%chat_config --reset")
        kernel.run(f"%chat_config base_url={server.base_url}")
        kernel.run("%%chat\nhi")
        assert server.requests[-1].body["model"] == "configured-model"
    finally:
        kernel.run("get_ipython().config.ChatMagics.pop('model', None)\n%chat_config --reset")


def test_bad_config_file_and_env_are_one_line_each_and_the_magics_load(
    kernel, server, config_file
):
    config_file.write_text('temperature = 5\nmodel = "file-model"\nbogus = 1\n[broken\n')
    result = kernel.run("%reload_ext ipychat")
    assert result.status == "ok", result.text()
    assert "Traceback" not in result.text()
    problems = result.stderr.strip().splitlines()
    assert len(problems) == 1 and str(config_file) in problems[0] and "TOML" in problems[0]
    config_file.write_text('temperature = 5\nmodel = "file-model"\nbogus = 1\n')
    result = kernel.run("%reload_ext ipychat")
    problems = result.stderr.strip().splitlines()
    assert len(problems) == 2, problems
    assert all(line.startswith("ipychat: In the config file") for line in problems)
    assert "temperature" in problems[0] and "'bogus'" in problems[1]
    assert shown(kernel, "%chat_config model") == "model = 'file-model' (from file)\n"
    assert kernel.run("%%chat\nstill works").status == "ok"


def test_bad_ipython_config_is_one_line_and_the_magics_load(kernel, server):
    try:
        kernel.run("get_ipython().config.ChatMagics.temperature = 5.0")
        result = kernel.run("%reload_ext ipychat")
        assert result.status == "ok", result.text()
        problems = result.stderr.strip().splitlines()
        assert problems == [
            "ipychat: c.ChatMagics.temperature: temperature must be >= 0 and < 2 "
            "(the service's range), got 5.0."
        ]
        kernel.run(f"%chat_config base_url={server.base_url}")
        assert kernel.run("%%chat\nstill works").status == "ok"
        assert "temperature" not in server.requests[-1].body
        assert kernel.run("%chat_config --reset").status == "ok", "the bad value stays skipped"
    finally:
        kernel.run("get_ipython().config.ChatMagics.pop('temperature', None)")


# -- combinations ------------------------------------------------------------------------------
def test_settings_then_save_in_the_stated_order(kernel, server, config_file):
    out = shown(kernel, "%chat_config --save model=saved-model api_key=sk-not-saved-123456")
    assert f"Saved settings to {config_file} (without the API key; --with-key saves it)." in out
    saved = config_file.read_text()
    assert 'model = "saved-model"' in saved and "sk-not-saved" not in saved


def test_a_failing_step_stops_the_line_before_save(kernel, server, config_file):
    line = usage_error(kernel.run("%chat_config model=never-saved --api-key --save"))
    assert "cannot ask for input" in line
    assert not config_file.exists(), "--save did not run after the failed --api-key"


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("%chat_config --clear --undo", "--clear, --undo cannot be combined"),
        ("%chat_config --history --sessions", "--sessions, --history cannot be combined"),
        ("%chat_config --with-key", "--with-key goes with --save"),
    ],
)
def test_commands_that_do_not_combine_are_refused_whole(kernel, server, code, words):
    kernel.run("%%chat\nkeep me")
    assert words in usage_error(kernel.run(code))
    assert kernel.value("len(ipychat.sessions.get())") == 1


# -- sessions ----------------------------------------------------------------------------------
def test_load_goes_into_a_new_session_and_never_replaces_one(kernel, server, tmp_path):
    kernel.run("%%chat\nexported")
    path = tmp_path / "lesson-one.json"
    kernel.run(f"%chat_config --export {path}")
    kernel.run("%%chat\nnot exported")
    out = shown(kernel, f"%chat_config --load {path}")
    assert "session 'lesson-one'" in out
    assert kernel.value("len(ipychat.sessions.get())") == 2, "the current session is untouched"
    assert kernel.value("len(ipychat.sessions.get('lesson-one'))") == 1
    line = usage_error(kernel.run(f"%chat_config --load {path}"))
    assert "'lesson-one' already has 1 exchanges" in line and "--clear" in line
    line = usage_error(kernel.run(f"%chat_config --load {path} -s default"))
    assert "'default' already has 2 exchanges" in line


def test_use_delete_and_rename(kernel, server):
    line = usage_error(kernel.run("%chat_config --use -s typo"))
    assert "No session named 'typo'" in line and "--new" in line
    assert "typo" not in kernel.value("ipychat.sessions.names()")
    assert "now uses session 'draft'" in shown(kernel, "%chat_config --use --new -s draft")
    kernel.run("%%chat\nin draft")
    assert "Renamed session 'draft' to 'final'" in shown(kernel, "%chat_config --rename final")
    assert kernel.value("ipychat.sessions.current") == "final"
    assert kernel.value("len(ipychat.sessions.get('final'))") == 1
    line = usage_error(kernel.run("%chat_config --rename final -s final"))
    assert "already a session named 'final'" in line
    assert "Deleted session 'final'" in shown(kernel, "%chat_config --delete -s final")
    assert kernel.value("ipychat.sessions.current") == "default"
    assert "final" not in kernel.value("ipychat.sessions.names()")


def test_models_lists_what_the_endpoint_offers(kernel, server):
    result = kernel.run("%chat_config --models")
    assert result.status == "ok", result.text()
    plain = result.bundles()[-1]["text/plain"]
    assert "ipychat-local" in plain and "yes" in plain
    assert [r.path for r in server.requests] == [], "GET /models is not a chat request"
    kernel.run("%chat_config base_url=http://127.0.0.1:9 timeout=2")
    line = usage_error(kernel.run("%chat_config --models"))
    assert "Could not reach http://127.0.0.1:9/models" in line


def test_history_table_wraps_and_shows_controls(kernel, server):
    long_text = "word " * 60 + "\x1b]52;c;ZXZpbA==\x07"
    kernel.run(f"ipychat.sessions.get().system = {json.dumps(long_text)}")
    result = kernel.run("print(repr(ipychat._tables.HistoryTable(ipychat.sessions.get())))")
    text = result.stdout
    assert "\x1b" not in text and "\\x1b]52;c;ZXZpbA==\\x07" in text
    assert text.count("word") == 60, "nothing cut"
