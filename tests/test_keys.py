"""Keys go where they belong, credentials are put on the request at send time, and the
settings layers (file < env < config < set) keep, save and reset what a user expects."""

from __future__ import annotations

import sys
import traceback

import httpx
import pytest

from ipychat import ChatClient, ChatError, Settings
from ipychat._auth import SecretAuth
from ipychat._errors import ConfigError
from ipychat._secrets import Secret

from .test_config import load

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

KEY = "sk-canary-1234567890abcdef"
OTHER = "sk-other-0987654321fedcba"
LOCAL = "http://127.0.0.1:8765/v1"


# -- which key goes where ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("OPENAI_API_KEY", "https://api.openai.com/v1"),
        ("DASHSCOPE_API_KEY", "https://dashscope.aliyuncs.com/compatible-mode/v1"),
        ("DASHSCOPE_API_KEY", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"),
        ("DEEPSEEK_API_KEY", "https://api.deepseek.com"),
        ("GROQ_API_KEY", "https://api.groq.com/openai/v1"),
    ],
)
def test_a_provider_key_goes_only_to_its_provider(tmp_path, variable, url):
    settings = load(tmp_path, **{variable: KEY})
    assert settings.resolve(base_url=url).api_key == Secret(KEY)
    for elsewhere in (LOCAL, "http://localhost:9/v1", "https://api.openai.com.evil.example/v1"):
        resolved = settings.resolve(base_url=elsewhere)
        assert resolved.api_key is None and resolved.key_problem is None, elsewhere
    settings.set(base_url="http://10.0.0.5:8000/v1")  # the case: another host
    assert settings.resolve().api_key is None


def test_ipychat_key_goes_with_the_configured_base_url_and_is_refused_elsewhere(tmp_path):
    settings = load(tmp_path, IPYCHAT_API_KEY=KEY, IPYCHAT_BASE_URL="https://svc.example/v1")
    assert settings.resolve().api_key == Secret(KEY)
    settings.set(base_url="https://svc.example:8443/other")  # same host, other port and path
    assert settings.resolve().api_key == Secret(KEY)
    settings.set(base_url="https://attacker.example/v1")
    resolved = settings.resolve()
    assert resolved.api_key is None
    problem = resolved.key_problem
    assert problem is not None and "\n" not in problem
    assert "attacker.example" in problem and "svc.example" in problem
    assert "IPYCHAT_API_KEY" in problem and "--api-key" in problem
    assert KEY not in problem and "****cdef" in problem
    row = dict((k, v) for k, v, _ in settings.describe())["api_key"]
    assert "not sent to attacker.example" in row


def test_a_refused_key_stops_the_request_before_anything_is_sent(tmp_path):
    sent: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(500))
    settings = load(tmp_path, toml=f'api_key = "{KEY}"\nbase_url = "https://svc.example/v1"\n')
    settings.set(base_url="https://elsewhere.example/v1")
    with ChatClient(settings, transport=transport) as client, pytest.raises(ConfigError) as info:
        client.send([{"role": "user", "content": "hi"}])
    assert "config file" in str(info.value) and not sent
    settings.set(api_key=KEY)  # confirmed: set again now that base_url points there
    assert settings.resolve().api_key == Secret(KEY)
    settings.unset("api_key")
    settings.set(base_url="https://svc.example/v1")  # back home: the file's key applies
    assert settings.resolve().api_key == Secret(KEY)


def test_a_key_set_at_run_time_is_bound_to_the_base_url_of_that_moment(tmp_path):
    settings = load(tmp_path)
    settings.set(api_key=KEY, base_url="https://a.example/v1")  # together: bound to a.example
    assert settings.resolve().api_key == Secret(KEY)
    settings.set(base_url="https://b.example/v1")
    assert settings.resolve().key_problem is not None
    settings.set(api_key=OTHER)  # set after base_url: bound to b.example
    assert settings.resolve().api_key == Secret(OTHER)
    settings.set(api_key=None)  # no key at all: nothing refused, nothing sent
    resolved = settings.resolve()
    assert resolved.api_key is None and resolved.key_problem is None


def test_a_lower_layers_key_for_this_host_is_used_when_a_higher_one_is_for_another(tmp_path):
    settings = load(tmp_path, toml=f'api_key = "{KEY}"\nbase_url = "https://a.example/v1"\n')
    settings.set(base_url="https://b.example/v1", api_key=OTHER)
    settings.set(base_url="https://a.example/v1")
    assert settings.resolve().api_key == Secret(KEY)
    assert settings.resolve().source("api_key") == "file"


def test_ipython_config_base_url_carries_the_environment_key(tmp_path):
    settings = load(tmp_path, IPYCHAT_API_KEY=KEY)
    settings.set(base_url="https://configured.example/v1", layer="config")
    assert settings.resolve().api_key == Secret(KEY)


# -- credentials on the request ------------------------------------------------------------------


def _capture(settings: Settings) -> httpx.Request:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        body = {"choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}]}
        return httpx.Response(200, json=body)

    with ChatClient(settings, transport=httpx.MockTransport(answer)) as client:
        client.send([{"role": "user", "content": "hi"}], stream=False)
    return sent[-1]


def test_credentials_are_added_at_send_time_and_nowhere_before(tmp_path):
    settings = load(tmp_path)
    settings.set(
        base_url="https://svc.example/v1", api_key=KEY, extra_headers={"api-key": OTHER}
    )
    request = _capture(settings)
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["api-key"] == OTHER
    with ChatClient(settings) as client:
        prepared = client.prepare([{"role": "user", "content": "x"}], "x", {})
    assert "Authorization" not in prepared.headers and "api-key" not in prepared.headers
    for shown in (repr(prepared), repr(vars(prepared)), repr(prepared.auth)):
        assert KEY[4:12] not in shown and OTHER[4:12] not in shown


def test_url_credentials_become_basic_auth_and_leave_the_url(tmp_path):
    settings = load(tmp_path)
    settings.set(base_url="https://alice:s3cret-pass-word@svc.example/v1")
    request = _capture(settings)
    assert request.url.userinfo == b""
    assert request.headers["authorization"].startswith("Basic ")
    assert settings.resolve().url == "https://svc.example/v1/chat/completions"
    assert "s3cret" not in repr(settings) and "s3cret" not in repr(settings.resolve())


@pytest.mark.parametrize(
    ("values", "what"),
    [
        ({"api_key": "sk-abc–def-1234567890"}, "api_key"),
        ({"extra_headers": {"X-Note": "café"}}, "extra_headers['X-Note']"),
        ({"extra_headers": {"api-key": "tok\u2013en-1234567890"}}, "extra_headers['api-key']"),
    ],
)
def test_a_value_headers_cannot_carry_is_refused_when_set(tmp_path, values, what):
    settings = load(tmp_path)
    with pytest.raises(ConfigError) as info:
        settings.set(**values)
    message = str(info.value)
    assert message.startswith(what) and "not ASCII" in message and "\n" not in message
    assert "1234567890" not in message and "café" not in message


def test_a_leftover_unsendable_credential_is_one_error_without_the_value():
    auth = SecretAuth(Secret("sk-abc–def-1234567890"), {})
    request = httpx.Request("POST", "https://svc.example/v1/chat/completions")
    with pytest.raises(ConfigError) as info:
        next(auth.auth_flow(request))
    text = "".join(traceback.format_exception(info.value))
    assert "1234567890" not in text and "UnicodeEncodeError" not in text
    assert isinstance(info.value, ChatError)


# -- layers, problems, save ----------------------------------------------------------------------


def test_config_layer_is_kept_by_reset_and_set_wins_over_it(tmp_path):
    settings = load(tmp_path, 'temperature = 0.5\nmodel = "file-model"\n', IPYCHAT_MODEL="env")
    settings.set(model="config-model", temperature=0.7, layer="config")
    assert settings.get("model") == "config-model" and settings.source("model") == "config"
    settings.set(model="set-model")
    assert settings.get("model") == "set-model"
    settings.reset()
    assert settings.get("model") == "config-model" and settings.get("temperature") == 0.7
    settings.unset("model", "temperature", layer="config")
    assert settings.get("model") == "env" and settings.get("temperature") == 0.5
    with pytest.raises(ValueError, match="layer"):
        settings.set(model="x", layer="env")


def test_unset_falls_back_to_the_file_and_none_hides_it(tmp_path):
    settings = load(tmp_path, "temperature = 0.5\n")
    settings.set(temperature=None)  # documented: None is "not sent", hiding the file's value
    assert settings.get("temperature") is None and settings.source("temperature") == "set"
    settings.unset("temperature")
    assert settings.get("temperature") == 0.5 and settings.source("temperature") == "file"


def test_bad_lines_and_variables_are_skipped_with_one_line_each(tmp_path):
    toml = 'temperature = 5\ntemprature = 0.1\nmodel = "ok-model"\nmax_tokens = 10\n'
    settings = load(tmp_path, toml, IPYCHAT_BASE_URL="localhost:1", IPYCHAT_API_KEY="a b")
    problems = settings.problems
    assert len(problems) == 4, problems
    assert all("\n" not in p and p.endswith("Skipped.") for p in problems)
    assert sum(str(tmp_path / "config.toml") in p for p in problems) == 2
    assert any("IPYCHAT_BASE_URL" in p for p in problems)
    assert any("IPYCHAT_API_KEY" in p for p in problems)
    assert settings.get("model") == "ok-model" and settings.get("max_tokens") == 10
    assert settings.copy().problems == problems


def test_save_writes_file_config_and_set_values_never_the_environment(tmp_path):
    settings = load(
        tmp_path,
        'model = "file-model"\n',
        IPYCHAT_BASE_URL="http://127.0.0.1:43117/v1",
        IPYCHAT_API_KEY=KEY,
        IPYCHAT_MODEL="env-model",
    )
    settings.set(timeout=30.0, layer="config")
    settings.set(temperature=0.3)
    data = tomllib.loads(settings.save().read_text(encoding="utf-8"))
    assert data == {"model": "file-model", "timeout": 30.0, "temperature": 0.3}
    data = tomllib.loads(settings.save(include_api_key=True).read_text(encoding="utf-8"))
    assert "api_key" not in data, "a key from the environment is never saved"


def test_save_leaves_out_run_time_secrets_unless_asked_and_keeps_the_files_own(tmp_path):
    settings = load(tmp_path, f'[extra_headers]\nX-File = "{OTHER}"\n')
    settings.set(base_url="https://alice:pw-1234567890@svc.example/v1", api_key=KEY)
    text = settings.save().read_text(encoding="utf-8")
    data = tomllib.loads(text)
    assert KEY not in text and "pw-1234567890" not in text
    assert data["base_url"] == "https://svc.example/v1"
    assert data["extra_headers"] == {"X-File": OTHER}, "the file's own secret is kept"
    settings.set(extra_headers={"X-Run": "run-time-secret-123"})
    text = settings.save().read_text(encoding="utf-8")
    assert "run-time-secret" not in text and "extra_headers" not in text
    data = tomllib.loads(settings.save(include_api_key=True).read_text(encoding="utf-8"))
    assert data["api_key"] == KEY
    assert data["base_url"] == "https://alice:pw-1234567890@svc.example/v1"
    assert data["extra_headers"] == {"X-Run": "run-time-secret-123"}


def test_describe_and_repr_mask_every_credential(tmp_path):
    settings = load(tmp_path)
    settings.set(
        base_url="https://alice:pw-1234567890@svc.example/v1",
        api_key=KEY,
        extra_headers={"api-key": OTHER, "X-Short": "abc"},
    )
    shown = repr(settings) + repr(settings.describe()) + repr(settings.resolve())
    for secret in (KEY, OTHER, "pw-1234567890", "alice:pw"):
        assert secret[:8] not in shown and secret[-8:] not in shown, secret
    rows = {k: v for k, v, _ in settings.describe()}
    assert rows["base_url"] == "'https://****@svc.example/v1'"
    assert rows["extra_headers"] == "{'api-key': '****dcba', 'X-Short': '****'}"
    assert rows["api_key"] == "****cdef"


def test_adopt_carries_run_time_values_with_their_key_bindings(tmp_path):
    old = load(tmp_path)
    old.set(api_key=KEY, base_url="https://a.example/v1")
    old.set(base_url="https://b.example/v1")  # the key is held back here
    new = load(tmp_path)
    new.adopt(old)
    assert new.get("base_url") == "https://b.example/v1"
    assert new.resolve().key_problem is not None, "a reload does not confirm the key"
    new.set(base_url="https://a.example/v1")
    assert new.resolve().api_key == Secret(KEY)


def test_a_redirect_that_echoes_the_key_shows_it_masked(tmp_path):
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": f"https://svc.example/v2?key={KEY}"})

    settings = load(tmp_path)
    settings.set(base_url="https://svc.example/v1", api_key=KEY, max_retries=0)
    transport = httpx.MockTransport(answer)
    with ChatClient(settings, transport=transport) as client, pytest.raises(ChatError) as info:
        client.send([{"role": "user", "content": "hi"}])
    assert "redirected to https://svc.example/v2?key=****cdef" in str(info.value)
    assert KEY[:8] not in str(info.value)
