from __future__ import annotations

import copy
import os
import pickle
import stat
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipychat._config import (
    ResolvedSettings,
    Secret,
    Settings,
    config_path,
    parse_value,
    validate,
)
from ipychat._errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

CANARY_KEY = "sk-canary-1234567890abcdef"
CANARY = "canary-1234567890"


def load(tmp_path: Path, toml: str | None = None, **environ: str) -> Settings:
    """Settings from a tmp config file and a fake environment: never the real home."""
    path = tmp_path / "config.toml"
    if toml is not None:
        path.write_text(toml, encoding="utf-8")
    return Settings.load(environ=environ, path=path)


# -- numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("temperature", 0),
        ("temperature", 0.0),
        ("temperature", 1.99),
        ("top_p", 1.0),
        ("top_p", 1),
        ("top_p", 0.01),
        ("presence_penalty", -2),
        ("presence_penalty", 2),
        ("frequency_penalty", -2.0),
        ("frequency_penalty", 2.0),
        ("timeout", 0.5),
        ("timeout", 300),
        ("max_tokens", 1),
        ("max_retries", 0),
        ("max_retries", 10),
        ("history_limit", 0),
    ],
)
def test_numbers_at_the_edges_of_their_range_are_accepted(key: str, value: float) -> None:
    result = validate(key, value)
    assert result == value


@pytest.mark.parametrize(("key", "value"), [("temperature", 1), ("timeout", 5)])
def test_float_settings_store_ints_as_floats(key: str, value: int) -> None:
    result = validate(key, value)
    assert isinstance(result, float)
    assert result == value


@pytest.mark.parametrize(
    ("key", "value", "bounds"),
    [
        ("temperature", 2, ">= 0 and < 2"),
        ("temperature", 2.5, ">= 0 and < 2"),
        ("temperature", -0.1, ">= 0 and < 2"),
        ("top_p", 0, "> 0 and <= 1"),
        ("top_p", 1.01, "> 0 and <= 1"),
        ("presence_penalty", 2.01, ">= -2 and <= 2"),
        ("presence_penalty", -2.01, ">= -2 and <= 2"),
        ("frequency_penalty", 2.01, ">= -2 and <= 2"),
        ("frequency_penalty", -2.01, ">= -2 and <= 2"),
        ("max_tokens", 0, ">= 1"),
        ("max_tokens", -1, ">= 1"),
        ("max_retries", -1, ">= 0 and <= 10"),
        ("max_retries", 11, ">= 0 and <= 10"),
        ("history_limit", -1, ">= 0"),
        ("timeout", 0, "> 0"),
        ("timeout", -1, "> 0"),
        ("timeout", float("inf"), "> 0"),
        ("temperature", float("nan"), ">= 0 and < 2"),
    ],
)
def test_numbers_out_of_range_are_refused(key: str, value: float, bounds: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(key, value)
    message = str(info.value)
    assert message.startswith(f"{key} must be ")
    assert bounds in message
    assert message.endswith(f"got {value!r}.")


def test_range_error_reads_as_one_sentence() -> None:
    with pytest.raises(ConfigError) as info:
        validate("temperature", 2.5)
    assert str(info.value) == "temperature must be >= 0 and < 2 (the service's range), got 2.5."


def test_string_for_a_number_is_refused_with_type_and_range() -> None:
    with pytest.raises(ConfigError) as info:
        validate("temperature", "abc")
    assert str(info.value) == (
        "temperature must be a number from 0 to less than 2, got 'abc' (str)."
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("temperature", True),
        ("temperature", "0.5"),
        ("top_p", [0.5]),
        ("max_tokens", True),
        ("max_tokens", False),
        ("max_tokens", "3"),
        ("max_retries", [1]),
        ("timeout", "60"),
        ("history_limit", 2.5),
    ],
)
def test_wrong_types_for_numbers_are_refused(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"^{key} must be .*\({type(value).__name__}\)\.$"):
        validate(key, value)


def test_float_for_an_int_setting_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ConfigError) as info:
        validate("max_tokens", 3.0)
    message = str(info.value)
    assert "without a decimal point" in message
    assert "got 3.0 (float)" in message


def test_huge_numbers_are_refused_not_crashed_on() -> None:
    with pytest.raises(ConfigError, match="timeout must be"):
        validate("timeout", 10**400)
    with pytest.raises(ConfigError, match="temperature must be"):
        validate("temperature", 10**400)


def test_long_values_are_truncated_in_messages() -> None:
    with pytest.raises(ConfigError) as info:
        validate("model", 7 * ["x" * 20])
    message = str(info.value)
    assert "..." in message
    assert len(message) < 140


# -- strings, stop, dicts ------------------------------------------------------------------------


def test_model_must_be_a_non_empty_string() -> None:
    assert validate("model", " qwen-turbo ") == "qwen-turbo"
    with pytest.raises(ConfigError, match="model must be a non-empty string"):
        validate("model", "  ")
    with pytest.raises(ConfigError, match=r"model must be a string, got 3 \(int\)"):
        validate("model", 3)


def test_empty_system_prompt_means_none() -> None:
    assert validate("system", "") is None
    assert validate("system", "Be brief.") == "Be brief."


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("END", "END"),
        (["a", "b"], ["a", "b"]),
        (("a", "b"), ["a", "b"]),
        (["\n\n"], ["\n\n"]),
    ],
)
def test_stop_accepts_a_string_or_a_list_of_strings(value: object, expected: object) -> None:
    assert validate("stop", value) == expected


@pytest.mark.parametrize("value", ["", [], (), [""], ["a", ""], ["a", 1], 5, {"a": 1}])
def test_stop_refuses_empty_and_non_string_values(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^stop must be a non-empty string or a non-empty list"):
        validate("stop", value)


@pytest.mark.parametrize("value", [1, 1.0, "yes", "True"])
def test_stream_must_be_a_bool(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^stream must be True or False"):
        validate("stream", value)


def test_extra_body_is_copied_and_checked_for_json() -> None:
    body = {"enable_search": True, "options": ("a", "b")}
    result = validate("extra_body", body)
    assert result == {"enable_search": True, "options": ["a", "b"]}
    body["enable_search"] = False
    assert result["enable_search"] is True  # type: ignore[index]
    with pytest.raises(ConfigError, match="extra_body must hold only JSON-serialisable values"):
        validate("extra_body", {"when": object()})
    with pytest.raises(ConfigError, match="extra_body must hold only JSON-serialisable values"):
        validate("extra_body", {"x": float("nan")})
    with pytest.raises(ConfigError, match="extra_body must be a dict"):
        validate("extra_body", {1: "x"})


@pytest.mark.parametrize("core", ["messages", "model", "stream"])
def test_extra_body_cannot_override_core_fields(core: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate("extra_body", {core: "x", "enable_search": True})
    message = str(info.value)
    assert message.startswith(f"extra_body must not set {core}:")
    assert "ipychat sends messages, model and stream itself" in message


@pytest.mark.parametrize("name", ["Authorization", "authorization", "AUTHORIZATION"])
def test_extra_headers_refuse_authorization_and_point_to_api_key(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate("extra_headers", {name: f"Bearer {CANARY_KEY}"})
    message = str(info.value)
    assert "api_key" in message
    assert CANARY not in message


def test_extra_headers_must_be_strings_without_line_breaks() -> None:
    assert validate("extra_headers", {"X-Trace": "1"}) == {"X-Trace": Secret("1")}
    with pytest.raises(ConfigError, match="X-Trace"):
        validate("extra_headers", {"X-Trace": 1})
    with pytest.raises(ConfigError, match="without line breaks") as info:
        validate("extra_headers", {"X-Token": f"{CANARY_KEY}\r\nEvil: 1"})
    assert CANARY not in str(info.value)
    with pytest.raises(ConfigError, match="invalid header name"):
        validate("extra_headers", {"Bad Name": "x"})


# -- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://127.0.0.1:8765/v1", "http://127.0.0.1:8765/v1"),
        ("https://api.example.com/v1/", "https://api.example.com/v1"),
        ("https://api.example.com/v1///", "https://api.example.com/v1"),
        (" http://localhost:8000 ", "http://localhost:8000"),
    ],
)
def test_base_url_is_normalised(value: str, expected: str) -> None:
    assert validate("base_url", value) == expected


@pytest.mark.parametrize(
    "value", ["ftp://example.com/v1", "localhost:8000", "http://", "", "http://x:99999", 8000]
)
def test_base_url_must_be_http_with_a_host(value: object) -> None:
    with pytest.raises(
        ConfigError, match=r"^base_url must be an http:// or https:// URL with a host"
    ):
        validate("base_url", value)


def test_base_url_without_scheme_suggests_one() -> None:
    with pytest.raises(ConfigError, match="such as 'http://localhost:8000'"):
        validate("base_url", "localhost:8000")


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("http://127.0.0.1:8765/v1", "http://127.0.0.1:8765/v1/chat/completions"),
        ("http://h/v1/", "http://h/v1/chat/completions"),
        ("http://h/v1/chat/completions", "http://h/v1/chat/completions"),
        ("http://h/v1/chat/completions/", "http://h/v1/chat/completions"),
        ("http://h/openai?api-version=1", "http://h/openai/chat/completions?api-version=1"),
    ],
)
def test_url_appends_chat_completions_once(base_url: str, url: str) -> None:
    settings = Settings()
    settings.set(base_url=base_url)
    assert settings.resolve().url == url


def test_host_shortcut_sets_base_url_to_the_compatible_mode_path() -> None:
    settings = Settings()
    settings.set(host="http://xxxx.opensearch.example.com/")
    assert settings.get("base_url") == "http://xxxx.opensearch.example.com/compatible-mode/v1"
    assert settings.source("base_url") == "set"
    assert settings.resolve().url == (
        "http://xxxx.opensearch.example.com/compatible-mode/v1/chat/completions"
    )


def test_host_shortcut_is_validated_and_exclusive_with_base_url() -> None:
    settings = Settings()
    with pytest.raises(ConfigError, match=r"^host must be an http"):
        settings.set(host="ftp://x")
    with pytest.raises(ConfigError, match="either host or base_url"):
        settings.set(host="http://a", base_url="http://b/v1")
    with pytest.raises(ConfigError, match="host is a shortcut"):
        settings.get("host")
    assert settings.source("base_url") == "default"


# -- unknown keys --------------------------------------------------------------------------------


def test_unknown_key_suggests_the_closest_one() -> None:
    with pytest.raises(ConfigError) as info:
        Settings().set(temprature=0.5)
    message = str(info.value)
    assert message.startswith("Unknown setting 'temprature'. Did you mean 'temperature'?")
    assert "Known settings: base_url, api_key, model," in message


def test_unknown_key_without_a_close_match_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        validate("zzzzzz", 1)
    assert "Did you mean" not in str(info.value)
    assert "extra_headers" in str(info.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get("modle"),
        lambda s: s.source("modle"),
        lambda s: s.unset("modle"),
        lambda s: s.resolve(modle="x"),
    ],
)
def test_every_entry_point_refuses_unknown_keys(call: object) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'model'"):
        call(Settings())  # type: ignore[operator]


# -- layers --------------------------------------------------------------------------------------


def test_defaults_when_there_is_no_file_and_no_environment(tmp_path: Path) -> None:
    settings = load(tmp_path)
    assert settings.get("base_url") == "http://127.0.0.1:8765/v1"
    assert settings.get("model") == "ipychat-local"
    assert settings.get("stream") is True
    assert settings.get("timeout") == 60.0
    assert settings.get("max_retries") == 2
    assert settings.get("extra_body") == {}
    assert all(settings.source(key) == "default" for key in Settings.KEYS)


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        'model = "from-file"\ntemperature = 0.3\nmax_tokens = 100\nsystem = "file prompt"\n',
        IPYCHAT_MODEL="from-env",
    )
    assert (settings.get("system"), settings.source("system")) == ("file prompt", "file")
    assert (settings.get("model"), settings.source("model")) == ("from-env", "env")
    assert (settings.get("temperature"), settings.source("temperature")) == (0.3, "file")
    assert settings.source("top_p") == "default"

    settings.set(model="from-set", temperature=0.7)
    assert (settings.get("model"), settings.source("model")) == ("from-set", "set")
    assert (settings.get("temperature"), settings.source("temperature")) == (0.7, "set")

    resolved = settings.resolve(model="from-call", max_tokens=None)
    assert resolved.model == "from-call"
    assert resolved.source("model") == "call"
    assert resolved.max_tokens == 100  # None in an override means "don't override"
    assert resolved.source("max_tokens") == "file"
    assert resolved.source("temperature") == "set"
    assert resolved.source("top_p") == "default"
    assert settings.get("model") == "from-set"  # resolve() does not change the settings


def test_none_at_the_set_layer_means_not_sent(tmp_path: Path) -> None:
    settings = load(tmp_path, "temperature = 0.3\n")
    settings.set(temperature=None)
    assert settings.get("temperature") is None
    assert settings.source("temperature") == "set"
    assert "temperature" not in settings.resolve().generation_params()


def test_none_for_a_key_with_a_default_resets_it_to_the_default(tmp_path: Path) -> None:
    settings = load(tmp_path, 'model = "from-file"\n')
    settings.set(model=None)
    assert (settings.get("model"), settings.source("model")) == ("ipychat-local", "set")


def test_unset_and_reset_fall_back_to_env_file_and_default(tmp_path: Path) -> None:
    settings = load(tmp_path, "temperature = 0.3\n", IPYCHAT_MODEL="from-env")
    settings.set(temperature=1.0, model="x", top_p=0.5, host="http://h")
    settings.unset("temperature", "host")
    assert (settings.get("temperature"), settings.source("temperature")) == (0.3, "file")
    assert settings.source("base_url") == "default"
    assert settings.source("model") == "set"
    settings.reset()
    assert (settings.get("model"), settings.source("model")) == ("from-env", "env")
    assert (settings.get("top_p"), settings.source("top_p")) == (None, "default")


def test_set_changes_nothing_when_any_value_is_invalid() -> None:
    settings = Settings()
    settings.set(temperature=0.1)
    with pytest.raises(ConfigError, match="top_p"):
        settings.set(temperature=0.9, model="other", top_p=5)
    assert settings.get("temperature") == 0.1
    assert settings.get("model") == "ipychat-local"
    assert settings.source("model") == "default"


def test_resolve_validates_overrides() -> None:
    with pytest.raises(ConfigError, match="temperature must be"):
        Settings().resolve(temperature=3)


def test_resolve_accepts_host_override() -> None:
    resolved = Settings().resolve(host="https://h.example")
    assert resolved.url == "https://h.example/compatible-mode/v1/chat/completions"
    assert resolved.source("base_url") == "call"


def test_generation_params_contain_only_values_that_are_set() -> None:
    settings = Settings()
    assert settings.resolve().generation_params() == {}
    settings.set(temperature=0, stop="END", max_tokens=5, stream=False, timeout=3)
    params = settings.resolve(frequency_penalty=-1).generation_params()
    assert params == {"temperature": 0.0, "max_tokens": 5, "frequency_penalty": -1.0, "stop": "END"}


def test_get_returns_a_copy() -> None:
    settings = Settings()
    settings.set(extra_body={"a": [1]})
    settings.get("extra_body")["a"].append(2)  # type: ignore[index]
    assert settings.get("extra_body") == {"a": [1]}
    settings.resolve().extra_body["b"] = 1
    assert settings.get("extra_body") == {"a": [1]}


def test_copy_is_independent() -> None:
    settings = Settings()
    settings.set(model="one", extra_headers={"X-A": "1"})
    other = settings.copy()
    other.set(model="two")
    other.reset()
    assert settings.get("model") == "one"
    assert other.get("model") == "ipychat-local"


# -- environment ---------------------------------------------------------------------------------


def test_environment_variables_fill_the_env_layer(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        IPYCHAT_BASE_URL="http://env.example/v1/",
        IPYCHAT_API_KEY=CANARY_KEY,
        IPYCHAT_MODEL="env-model",
    )
    assert settings.get("base_url") == "http://env.example/v1"
    assert settings.get("api_key") == Secret(CANARY_KEY)
    assert settings.get("model") == "env-model"
    assert {settings.source(k) for k in ("base_url", "api_key", "model")} == {"env"}


def test_openai_variables_are_the_fallback(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        IPYCHAT_BASE_URL="",
        OPENAI_BASE_URL="https://api.openai.example/v1",
        OPENAI_API_KEY=CANARY_KEY,
    )
    assert settings.get("base_url") == "https://api.openai.example/v1"
    assert settings.source("base_url") == "env"
    # OPENAI_API_KEY is a provider's key: it goes with OPENAI_BASE_URL and api.openai.com only.
    assert settings.get("api_key") is None
    assert settings.resolve().api_key == Secret(CANARY_KEY)
    assert settings.resolve(base_url="https://api.openai.com/v1").api_key == Secret(CANARY_KEY)
    elsewhere = settings.resolve(base_url="http://127.0.0.1:9/v1")
    assert elsewhere.api_key is None and elsewhere.key_problem is None


def test_ipychat_variables_win_over_openai_ones(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        IPYCHAT_API_KEY="sk-ipychat-aaaa1111",
        OPENAI_API_KEY=CANARY_KEY,
        IPYCHAT_BASE_URL="http://ipychat.example/v1",
        OPENAI_BASE_URL="http://openai.example/v1",
    )
    assert settings.get("api_key") == Secret("sk-ipychat-aaaa1111")
    assert settings.get("base_url") == "http://ipychat.example/v1"


def test_empty_api_key_means_no_key(tmp_path: Path) -> None:
    settings = load(tmp_path, IPYCHAT_API_KEY="  ")
    assert settings.get("api_key") is None
    assert settings.source("api_key") == "default"
    assert validate("api_key", "") is None


def test_invalid_environment_value_is_skipped_and_named(tmp_path: Path) -> None:
    settings = load(tmp_path, OPENAI_BASE_URL="localhost:1234", IPYCHAT_MODEL="env-model")
    [problem] = settings.problems
    assert "OPENAI_BASE_URL" in problem and "base_url must be" in problem
    assert problem.endswith("Skipped.") and "\n" not in problem
    assert settings.source("base_url") == "default" and settings.get("model") == "env-model"
    settings = load(tmp_path, IPYCHAT_API_KEY=f"{CANARY_KEY} trailing")
    [problem] = settings.problems
    assert "IPYCHAT_API_KEY" in problem and CANARY not in problem
    assert settings.get("api_key") is None


# -- config file ---------------------------------------------------------------------------------


def test_config_file_values_and_host(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        'host = "https://svc.example"\nstop = ["a", "b"]\n[extra_body]\nenable_search = true\n',
    )
    assert settings.get("base_url") == "https://svc.example/compatible-mode/v1"
    assert settings.get("stop") == ["a", "b"]
    assert settings.get("extra_body") == {"enable_search": True}
    assert settings.source("extra_body") == "file"


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("temperature = 5\n", "temperature must be"),
        ("temprature = 0.5\n", "Did you mean 'temperature'"),
        ("model = \n", "is not valid TOML"),
        ('host = "http://a"\nbase_url = "http://b"\n', "either host or base_url"),
    ],
)
def test_config_file_errors_are_skipped_and_name_the_file(
    tmp_path: Path, toml: str, fragment: str
) -> None:
    settings = load(tmp_path, toml + 'model = "kept"\n' if "TOML" not in fragment else toml)
    [message] = settings.problems
    assert str(tmp_path / "config.toml") in message
    assert fragment in message and "\n" not in message
    if "TOML" not in fragment:  # the good lines of the file still apply
        assert settings.get("model") == "kept" and settings.source("model") == "file"


@pytest.mark.parametrize(
    "toml",
    [
        f"api_key = {CANARY_KEY}\n",  # not quoted: invalid TOML
        f'api_key = "{CANARY_KEY} x"\n',  # invalid key
        f'api_key = ["{CANARY_KEY}"]\n',  # wrong type
    ],
)
def test_config_file_errors_never_show_the_key(tmp_path: Path, toml: str) -> None:
    [message] = load(tmp_path, toml).problems
    assert str(tmp_path / "config.toml") in message
    assert CANARY not in message


def test_unreadable_config_file_is_a_problem_not_a_failure(tmp_path: Path) -> None:
    (tmp_path / "config.toml").mkdir()
    settings = load(tmp_path, IPYCHAT_MODEL="env-model")
    [message] = settings.problems
    assert message.startswith("Cannot read the config file") and "not used" in message
    assert settings.get("model") == "env-model"


def test_config_path_prefers_ipychat_config() -> None:
    environ = {"IPYCHAT_CONFIG": "/etc/ipychat.toml", "XDG_CONFIG_HOME": "/x", "HOME": "/h"}
    assert config_path(environ) == Path("/etc/ipychat.toml")


def test_config_path_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    assert config_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == Path("/x/ipychat/config.toml")
    assert config_path({"HOME": "/h"}) == Path("/h/.config/ipychat/config.toml")
    assert config_path({"XDG_CONFIG_HOME": "relative", "HOME": "/h"}) == Path(
        "/h/.config/ipychat/config.toml"
    )


def test_config_path_on_macos_and_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert config_path({"HOME": "/Users/me"}) == Path(
        "/Users/me/Library/Application Support/ipychat/config.toml"
    )
    monkeypatch.setattr(sys, "platform", "win32")
    assert config_path({"APPDATA": "/appdata"}) == Path("/appdata/ipychat/config.toml")


# -- save ----------------------------------------------------------------------------------------


def test_save_writes_non_default_values_with_mode_0600(tmp_path: Path) -> None:
    settings = load(tmp_path)
    settings.set(
        api_key=CANARY_KEY,
        temperature=0.25,
        max_tokens=10,
        stream=False,
        system='Say "hi"\n\tthen \\ stop \x01\x7f é',
        stop=["a", "b"],
        extra_body={"enable_search": True, "nested": {"k": [1, 2.5, "x"]}, "odd key": 1},
        extra_headers={"X-Trace": "on"},
    )
    target = tmp_path / "sub" / "dir" / "config.toml"
    assert settings.save(target) == target
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    text = target.read_text(encoding="utf-8")
    assert CANARY not in text
    assert "model" not in text  # default values are not written
    data = tomllib.loads(text)
    assert "api_key" not in data
    assert "extra_headers" not in data  # header values are secrets too
    assert data["stream"] is False
    reloaded = Settings.load(environ={}, path=target)
    for key in Settings.KEYS:
        if key not in ("api_key", "extra_headers"):
            assert reloaded.get(key) == settings.get(key), key
    assert reloaded.get("api_key") is None
    assert reloaded.get("extra_headers") == {}


def test_save_includes_the_key_only_when_asked(tmp_path: Path) -> None:
    settings = Settings()
    settings.set(api_key=CANARY_KEY)
    target = settings.save(tmp_path / "c.toml", include_api_key=True)
    assert tomllib.loads(target.read_text())["api_key"] == CANARY_KEY
    assert Settings.load(environ={}, path=target).get("api_key") == Secret(CANARY_KEY)


def test_save_tightens_the_mode_of_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "c.toml"
    target.write_text("# old\n")
    os.chmod(target, 0o644)
    Settings().save(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "old" not in target.read_text()


def test_save_defaults_to_the_loaded_path(tmp_path: Path) -> None:
    settings = load(tmp_path)
    settings.set(model="m")
    assert settings.save() == tmp_path / "config.toml"
    assert tomllib.loads((tmp_path / "config.toml").read_text()) == {"model": "m"}


def test_save_refuses_null_in_extra_body(tmp_path: Path) -> None:
    settings = Settings()
    settings.set(extra_body={"x": None})
    with pytest.raises(ConfigError, match=r"extra_body\['x'\]"):
        settings.save(tmp_path / "c.toml")


json_values = st.recursive(
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(
    system=st.text(min_size=1).filter(str.strip),
    body=st.dictionaries(
        st.text().filter(lambda k: k not in ("messages", "model", "stream")), json_values
    ),
)
def test_save_round_trips_any_text_and_body(system: str, body: dict[str, object]) -> None:
    settings = Settings()
    settings.set(system=system, extra_body=body)
    with tempfile.TemporaryDirectory() as folder:
        target = settings.save(Path(folder) / "c.toml")
        reloaded = Settings.load(environ={}, path=target)
    assert reloaded.get("system") == system
    assert reloaded.get("extra_body") == settings.get("extra_body")


# -- Secret --------------------------------------------------------------------------------------


def test_secret_masks_everything_but_the_last_four() -> None:
    key = Secret(CANARY_KEY)
    assert key.reveal() == CANARY_KEY
    assert key.masked() == "****cdef"
    assert repr(key) == "Secret('****cdef')"
    assert str(key) == "****cdef"
    assert f"{key}" == "****cdef"
    assert f"{key:>10}" == "  ****cdef"
    assert Secret("short").masked() == "****"
    assert Secret("1234567").masked() == "****"
    assert Secret("12345678901").masked() == "****"  # the last 4 of 11 would be too much
    assert Secret("123456789012").masked() == "****9012"


def test_secret_is_not_a_str_and_compares_on_its_value() -> None:
    key = Secret(CANARY_KEY)
    assert not isinstance(key, str)
    assert key == Secret(CANARY_KEY)
    assert key != Secret("sk-other-00000000")
    assert key != CANARY_KEY
    assert hash(key) == hash(Secret(CANARY_KEY))
    assert bool(key)
    assert not Secret("")


def test_secret_survives_pickle_and_copy() -> None:
    key = Secret(CANARY_KEY)
    assert pickle.loads(pickle.dumps(key)).reveal() == CANARY_KEY
    assert copy.copy(key).reveal() == CANARY_KEY
    assert copy.deepcopy(key).reveal() == CANARY_KEY


def test_api_key_accepts_a_secret() -> None:
    assert validate("api_key", Secret(CANARY_KEY)) == Secret(CANARY_KEY)
    with pytest.raises(ConfigError, match="api_key must be a string"):
        validate("api_key", 1234567890)


@given(st.text())
def test_masked_never_shows_more_than_four_characters(text: str) -> None:
    masked = Secret(text).masked()
    assert masked == ("****" + text[-4:] if len(text) >= 12 else "****")


def test_the_key_never_appears_in_any_output(tmp_path: Path) -> None:
    settings = load(tmp_path, IPYCHAT_API_KEY=CANARY_KEY)
    settings.set(temperature=0.5)
    resolved = settings.resolve(max_tokens=3)
    outputs = [
        repr(settings),
        str(settings),
        repr(settings.copy()),
        repr(settings.describe()),
        repr(resolved),
        str(resolved),
        f"{resolved.api_key}",
        str(resolved.api_key),
        repr(settings.get("api_key")),
        repr(resolved.generation_params()),
    ]
    for bad in ({"api_key": f"{CANARY_KEY}\nX: 1"}, {"api_key": f"x {CANARY_KEY}"}):
        with pytest.raises(ConfigError) as info:
            settings.set(**bad, temperature=9)
        outputs.append(str(info.value))
        with pytest.raises(ConfigError) as info:
            settings.set(**bad)
        outputs.append(str(info.value))
    for output in outputs:
        assert CANARY not in output
    assert ("api_key", "****cdef", "env") in settings.describe()
    assert "Secret('****cdef')" in repr(resolved)


def test_describe_lists_every_key_with_its_source(tmp_path: Path) -> None:
    settings = load(tmp_path, "top_p = 0.5\n")
    settings.set(stream=False)
    rows = settings.describe()
    assert [row[0] for row in rows] == list(Settings.KEYS)
    assert ("top_p", "0.5", "file") in rows
    assert ("stream", "False", "set") in rows
    assert ("api_key", "None", "default") in rows


def test_resolved_settings_have_every_key_as_a_field() -> None:
    resolved = Settings().resolve()
    assert isinstance(resolved, ResolvedSettings)
    for key in Settings.KEYS:
        assert hasattr(resolved, key)
    with pytest.raises(AttributeError):
        resolved.model = "x"  # type: ignore[misc]


# -- parse_value ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("temperature", "0.7", 0.7),
        ("max_tokens", "256", 256),
        ("max_tokens", "3.0", 3.0),  # parsed as written: validate() then refuses it
        ("temperature", "abc", "abc"),
        ("temperature", "none", None),
        ("temperature", "None", None),
        ("stream", "False", False),
        ("stream", "true", True),
        ("stop", "END", "END"),
        ("stop", "['a', 'b']", ["a", "b"]),
        ("stop", '"two words"', "two words"),
        ("model", "qwen-turbo", "qwen-turbo"),
        ("model", "'quoted'", "quoted"),
        ("model", "123", "123"),
        ("system", "You are brief. Don't ramble.", "You are brief. Don't ramble."),
        ("system", "none", None),
        ("base_url", "http://localhost:8000/v1", "http://localhost:8000/v1"),
        ("host", "http://h", "http://h"),
        ("api_key", CANARY_KEY, CANARY_KEY),
        ("extra_body", "{'enable_search': True}", {"enable_search": True}),
        ("extra_body", '{"enable_search": true}', {"enable_search": True}),
        ("extra_headers", "{'X-A': '1'}", {"X-A": "1"}),
    ],
)
def test_parse_value(key: str, text: str, expected: object) -> None:
    assert parse_value(key, text) == expected


def test_parse_value_then_validate_gives_the_usual_messages() -> None:
    with pytest.raises(ConfigError, match=r"got 'abc' \(str\)"):
        validate("temperature", parse_value("temperature", "abc"))
    with pytest.raises(ConfigError, match="without a decimal point"):
        validate("max_tokens", parse_value("max_tokens", "3.0"))


def test_parse_value_refuses_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'top_p'"):
        parse_value("top-p", "0.5")


@given(st.floats(min_value=0, max_value=1.99))
def test_parse_value_round_trips_floats(value: float) -> None:
    assert validate("temperature", parse_value("temperature", repr(value))) == value
