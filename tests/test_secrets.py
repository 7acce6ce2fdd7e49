"""The API key never shows: a canary key, set through every route, is searched for everywhere.

Routes: the IPYCHAT_API_KEY environment variable, `%chat_config api_key=`, the hidden
`%chat_config --api-key` prompt (answered on the kernel's stdin channel, as a front end does),
and a config file named by IPYCHAT_CONFIG. Places searched: all kernel output, a notebook
executed with nbclient and saved, exported history (JSON and Markdown), every error, including
servers that echo the Authorization header back in an error body or in the stream, the repr
of every object that holds settings, logs of ipychat, httpx and httpcore at DEBUG, verbose
tracebacks, and the saved config file (mode 0600, no key unless --with-key).
"""

from __future__ import annotations

import io
import json
import logging
import socket
import stat
import time
import traceback
from pathlib import Path
from queue import Empty

import nbformat
import pytest

from ipychat import (
    ChatClient,
    ChatError,
    Conversation,
    Fault,
    Secret,
    Settings,
)

from .echo import echo_server
from .kernel import Execution, Kernel, execute_notebook

CANARY = "sk-canary-7f3a9c1e5b2d4f60"
MASKED = "****4f60"
FRAGMENTS = (CANARY, "7f3a9c1e5b2d")  # any part of the key beyond the masked last four

ROUTES = ["env", "chat_config", "getpass", "config_file"]


def assert_clean(text: str, where: str) -> None:
    for fragment in FRAGMENTS:
        assert fragment not in text, f"the key leaked into {where}: ...{_around(text, fragment)}..."


def _around(text: str, fragment: str) -> str:
    at = text.index(fragment)
    return text[max(0, at - 120) : at + 40]


def echo_fault() -> Fault:
    """A 401 whose body echoes the Authorization header, as some proxies and servers do."""
    return Fault(
        "status",
        status=401,
        body={"error": {"message": f"bad key Bearer {CANARY}", "code": "invalid_api_key"}},
    )


@pytest.fixture(scope="module")
def echo():
    """The base URL of a server that echoes the key in a broken stream (or a whole reply)."""
    with echo_server() as (url, _):
        yield f"{url}/stream-plain/v1"


def run_with_input(kernel: Kernel, code: str, answer: str, timeout: float = 30) -> Execution:
    """Run `code`, answering its (hidden) input request on the stdin channel as a front end."""
    client = kernel.client
    msg_id = client.execute(code, allow_stdin=True)
    request = client.get_stdin_msg(timeout=timeout)
    assert request["msg_type"] == "input_request", request
    assert request["content"]["password"] is True, "the prompt hides what is typed"
    client.input(answer)
    execution = Execution(reply={})
    deadline = time.monotonic() + timeout
    while True:
        try:
            msg = client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        except Empty as exc:
            raise AssertionError(f"cell did not finish: {code!r}") from exc
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status":
            if msg["content"]["execution_state"] == "idle":
                break
            continue
        execution.messages.append(msg)
    while not execution.reply:
        reply = client.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            execution.reply = reply
    return execution


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


LOG_SETUP = """\
import logging, sys
_handler = logging.StreamHandler(sys.stderr)
for _name in ("ipychat", "httpx", "httpcore"):
    logging.getLogger(_name).addHandler(_handler)
    logging.getLogger(_name).setLevel(logging.DEBUG)
"""


@pytest.fixture(scope="module", params=ROUTES)
def routed(request, server, tmp_path_factory):
    """A kernel whose key came through one route; its config file path; the route's output."""
    route = request.param
    home = tmp_path_factory.mktemp(f"route-{route}")
    config = home / "ipychat-config.toml"
    env = {}
    if route == "env":
        env["IPYCHAT_API_KEY"] = CANARY
    elif route == "config_file":
        config = home / "keyed.toml"
        config.write_text(f'api_key = "{CANARY}"\n', encoding="utf-8")
        env["IPYCHAT_CONFIG"] = str(config)
    kernel = Kernel.start(home, **env)
    outputs = [kernel.run(f"{LOG_SETUP}%load_ext ipychat\n%chat_config base_url={server.base_url}")]
    if route == "chat_config":
        outputs.append(kernel.run(f"%chat_config api_key={CANARY}"))
        assert "saved with the notebook" in outputs[-1].stderr
    elif route == "getpass":
        outputs.append(run_with_input(kernel, "%chat_config --api-key", CANARY))
        assert f"api_key set ({MASKED})" in outputs[-1].stdout
    assert all(o.status == "ok" for o in outputs), [o.text() for o in outputs]
    yield kernel, config, outputs
    kernel.shutdown()


def test_key_is_sent_but_never_shown(routed, server, echo):
    kernel, _, outputs = routed
    server.clear()
    kernel.run("import ipychat; ipychat.sessions.clear()")
    run = outputs.append

    run(kernel.run("%%chat\nhello"))
    assert outputs[-1].status == "ok", outputs[-1].text()
    assert server.requests[-1].headers["authorization"] == f"Bearer {CANARY}", "the route works"
    assert "HTTP Request: POST" in outputs[-1].stderr, "the logs are on"

    server.push_fault(echo_fault())
    run(kernel.run("%%chat\nwith a wrong key"))
    assert "bad key Bearer ****4f60 (invalid_api_key)" in outputs[-1].stderr

    server.push_fault(
        Fault(
            "status",
            status=429,
            body={"error": {"message": f"slow down, {CANARY}"}},
            headers={"retry-after-ms": "10"},
        )
    )
    run(kernel.run("%%chat\nretried"))
    assert f"slow down, {MASKED}; retrying in" in outputs[-1].stderr

    run(kernel.run(f"%chat_config base_url={echo}"))
    run(kernel.run("%%chat\nto the echo server"))
    assert f"bad key Bearer {MASKED}" in outputs[-1].stderr
    assert "kept the partial reply" in outputs[-1].stderr
    run(kernel.run("print(repr(_chat), _chat.to_dict(), _chat.error, _chat.warnings)"))
    run(kernel.run("%%chat --no-stream\nwhole reply from the echo server"))
    run(kernel.run("_chat"))
    assert f"you sent: Bearer {MASKED}" in outputs[-1].text()

    run(kernel.run(f"%chat_config base_url={refused_url()} max_retries=0"))
    run(kernel.run("%%chat\nnobody listens"))
    assert "Could not connect" in outputs[-1].stderr
    run(kernel.run(f"%chat_config base_url={server.base_url} max_retries=2"))

    # Mistakes that would echo the key if a message quoted the line.
    run(kernel.run(f"%chat_config api_key= {CANARY}"))
    run(kernel.run(f"%chat_config --api-key={CANARY}"))
    run(kernel.run(f"%chat_config --api-key {CANARY}"))
    assert all(o.reply["content"]["ename"] == "UsageError" for o in outputs[-3:])

    run(kernel.run("%chat_config"))
    assert MASKED in outputs[-1].text(), "the settings table shows the key masked"
    for code in (
        "%chat_config --history",
        "%chat_config --sessions",
        "%config ChatMagics",
        "_chat",
        "print(_chat.to_dict())",
        "m = ipychat._magics._instance\n"
        "print(repr(m), repr(m.settings), repr(m.settings.resolve()), repr(m.client))\n"
        "print(vars(m.client), m.settings.describe(), m.settings.get('api_key'))\n"
        "print(repr(ipychat.sessions.get()), ipychat.sessions.get().to_records())",
        "m.settings.resolve()",
        "m.settings",
        "m.client.settings.get('api_key')",
        "print(get_ipython().config)",
        "print({k: v for k, v in m.trait_values().items() if k not in ('parent', 'config')})",
    ):
        run(kernel.run(code))
        assert outputs[-1].status == "ok", outputs[-1].text()

    for index, output in enumerate(outputs):
        assert_clean(output.text(), f"kernel output {index}")


def test_exported_history_and_saved_config(routed, server, tmp_path):
    kernel, config, _ = routed
    kernel.run("import ipychat; ipychat.sessions.clear()")
    server.push_fault(echo_fault())
    kernel.run("%%chat\nfirst")  # refused; nothing recorded
    assert kernel.run("%%chat\nsecond").status == "ok"
    texts = {}
    for suffix in ("json", "md"):
        path = tmp_path / f"history.{suffix}"
        result = kernel.run(f"%chat_config --export {path}")
        assert result.status == "ok", result.text()
        texts[suffix] = path.read_text(encoding="utf-8")
        assert_clean(texts[suffix] + result.text(), f"the {suffix} export")
    assert "Echo: second" in texts["md"]
    assert json.loads(texts["json"])["messages"][1]["content"] == "Echo: second"

    if not config.exists():
        config.write_text("# an existing file, readable by others\n")
    config.chmod(0o644)
    key_was_in_file = CANARY in config.read_text(encoding="utf-8")
    result = kernel.run("%chat_config model=saved-model\n%chat_config --save")
    assert result.status == "ok", result.text()
    assert_clean(result.text(), "the output of --save")
    saved = config.read_text(encoding="utf-8")
    if key_was_in_file:  # rewriting the file keeps the key it already held, and nothing else
        assert saved.count(CANARY) == 1 and "(with the API key)" in result.stdout
    else:
        assert_clean(saved, "the saved config")
    assert 'model = "saved-model"' in saved
    assert stat.S_IMODE(config.stat().st_mode) == 0o600

    source = kernel.run("print(ipychat._magics._instance.settings.source('api_key'))")
    result = kernel.run("%chat_config --save --with-key")
    assert result.status == "ok", result.text()
    assert_clean(result.text(), "the output of --save --with-key")
    saved = config.read_text(encoding="utf-8")
    if source.stdout.strip() == "env":  # values from the environment are never saved
        assert_clean(saved, "the saved config of a key from the environment")
    else:
        assert f'api_key = "{CANARY}"' in saved
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


NOTEBOOK_CELLS = [
    "%load_ext ipychat\n%chat_config base_url={base_url}",
    "%%chat\nthe server echoes the key back",
    "%%chat\nhello",
    "%chat_config",
    "%chat_config --history",
    "_chat",
    "_chat.to_dict()",
    "import ipychat\nm = ipychat._magics._instance\nm, m.settings, m.settings.resolve(), m.client",
    "ipychat.sessions.get(), ipychat.sessions.get().to_json()",
    "%chat_config --export history.md\nprint(open('history.md').read())",
    # The saved file itself is checked in test_exported_history_and_saved_config (a key the
    # file already held stays there); here only what --save prints goes into the notebook.
    "%chat_config --save",
    "%chat_config --api-key",  # no stdin under nbclient: a clear error, not a traceback
]


@pytest.mark.parametrize("route", ["env", "config_file", "chat_config"])
def test_executed_and_saved_notebook(route, server, tmp_path):
    """The whole saved notebook, sources included: so the key must not be typed in a cell."""
    cells = list(NOTEBOOK_CELLS)
    env = {"IPYCHAT_API_KEY": CANARY} if route == "env" else {}
    if route == "config_file":
        keyed = tmp_path / "keyed.toml"
        keyed.write_text(f'api_key = "{CANARY}"\n', encoding="utf-8")
        env["IPYCHAT_CONFIG"] = str(keyed)
    elif route == "chat_config":  # the key comes from a variable: `{key}` is filled in
        env["KEY_SOURCE"] = CANARY
        cells.insert(1, "import os\nkey = os.environ['KEY_SOURCE']\n%chat_config api_key={key}")
    server.clear()
    server.push_fault(echo_fault())
    sources = [c.replace("{base_url}", server.base_url) for c in cells]
    nb = execute_notebook(sources, tmp_path, allow_errors=True, **env)
    assert server.requests[-1].headers["authorization"] == f"Bearer {CANARY}", "the route works"

    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    saved = path.read_text(encoding="utf-8")
    assert_clean(saved, f"the saved notebook ({route})")
    outputs = {cell.source: json.dumps(cell.outputs) for cell in nb.cells}
    assert "bad key Bearer ****4f60" in outputs["%%chat\nthe server echoes the key back"]
    assert "Echo: hello" in outputs["%%chat\nhello"]
    assert MASKED in outputs["%chat_config"]
    assert "UsageError: This front end cannot ask for input" in outputs["%chat_config --api-key"]


# -- in-process: reprs, errors, logs, tracebacks --------------------------------------------


@pytest.fixture
def captured_logs():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(name) for name in ("ipychat", "httpx", "httpcore")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield stream
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def in_process_settings(route: str, tmp_path: Path, base_url: str) -> Settings:
    keyed = tmp_path / "keyed.toml"
    keyed.write_text(f'api_key = "{CANARY}"\n', encoding="utf-8")
    if route == "env":
        settings = Settings.load(environ={"IPYCHAT_API_KEY": CANARY}, path=tmp_path / "none")
    elif route == "config_file":
        settings = Settings.load(environ={}, path=keyed)
    else:
        settings = Settings.load(environ={}, path=tmp_path / "none")
        settings.set(api_key=CANARY)
    settings.set(base_url=base_url, max_retries=1)
    assert settings.get("api_key") == Secret(CANARY)
    return settings


@pytest.mark.parametrize("route", ["env", "config_file", "set"])
def test_reprs_errors_logs_and_tracebacks(
    route, server, echo, tmp_path, captured_logs, monkeypatch
):
    from IPython.core.ultratb import VerboseTB

    from ipychat._magics import ChatMagics

    monkeypatch.setenv("IPYCHAT_CONFIG", str(tmp_path / "magics.toml"))  # never the real home
    for name in ("IPYCHAT_API_KEY", "OPENAI_API_KEY", "IPYCHAT_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = in_process_settings(route, tmp_path, server.base_url)
    seen: list[str] = []
    client = ChatClient(settings, sleep=lambda seconds: None)  # retries log through `ipychat`
    conversation = Conversation(name="canary")
    server.clear()
    seen.append(repr(conversation.send("hello", client=client)))
    assert server.requests[-1].headers["authorization"] == f"Bearer {CANARY}"

    # (base URL, fault, overrides, check the locals a verbose traceback shows)
    attempts = [
        (server.base_url, echo_fault(), {}, True),
        (server.base_url, Fault("status", status=503, body=f"down {CANARY}", times=2), {}, True),
        (server.base_url, Fault("drop", after_chunks=1), {}, True),
        # Known gap: a verbose traceback of a stream error shows the raw bytes the server sent
        # (a frame local), so a server that echoes the key in its stream shows there.
        (echo, None, {}, False),
        (echo, None, {"stream": False}, True),
        (refused_url(), None, {}, True),
    ]
    for base_url, fault, overrides, verbose in attempts:
        settings.set(base_url=base_url)
        if fault is not None:
            server.push_fault(fault)
        try:
            reply = conversation.send("try", client=client, **overrides)
            seen += [repr(reply), json.dumps(reply.to_dict(), default=str)]
        except ChatError as exc:
            seen += [str(exc), repr(exc), repr(exc.args), repr(vars(exc))]
            seen += ["".join(traceback.format_exception(exc))]
            if verbose:
                tb = VerboseTB(theme_name="nocolor")
                seen += ["".join(tb.structured_traceback(type(exc), exc, exc.__traceback__))]
            if getattr(exc, "reply", None) is not None:
                seen += [repr(exc.reply), json.dumps(exc.reply.to_dict(), default=str)]
    assert any("Bearer ****4f60" in text for text in seen), "the echoing servers were reached"

    magics = ChatMagics()
    magics.settings = settings
    magics._client = client
    secret = settings.get("api_key")
    seen += [
        repr(settings),
        repr(settings.resolve()),
        str(settings.resolve()),
        repr(settings.describe()),
        repr(client),
        repr(vars(client)),
        repr(client.prepare([{"role": "user", "content": "x"}], "x", {})),
        repr(conversation),
        conversation.to_json(),
        conversation.to_markdown(),
        repr(conversation.to_records()),
        repr(magics),
        repr(magics.trait_values()),
        repr(secret),
        str(secret),
        f"{secret} {secret!s} {secret:>30}",
        "%s" % secret,  # noqa: UP031
        json.dumps(settings.describe()),
    ]
    client.close()
    seen.append(captured_logs.getvalue())
    assert "HTTP Request: POST" in seen[-1] and "retrying in" in seen[-1], "logs were captured"
    for index, text in enumerate(seen):
        assert_clean(text, f"item {index}")


# -- echoed in every form, under %xmode Verbose, into a saved notebook and an export -------------

ECHO_KEY = "sk-proj/Zx8Qc1e5b2d4f60Wq7/Lm3"  # holds "/" so PHP's escaping changes it
BAD_KEY = "sk-proj–Zx8Qc1e5b2d4f60Wq7Lm3"  # an en dash from copy and paste
ECHO_MODES = [
    "error-php",
    "error-u",
    "text-u",
    "detail-plain",
    "prefix-plain",
    "stream-php",
    "stream-u",
    "dataline-u",
    "content-php",
    "content-u",
]


def assert_no_fragment(text: str, where: str, secret: str) -> None:
    from ipychat._secrets import unescape_json_text

    for view in (text, unescape_json_text(text)):
        for i in range(len(secret) - 7):
            fragment = secret[i : i + 8]
            if fragment in view:
                raise AssertionError(f"{fragment!r} leaked into {where}: {_around(view, fragment)}")


def test_echoed_key_in_every_form_leaves_no_fragment_in_the_saved_notebook(tmp_path):
    """IPYCHAT_API_KEY, a server echoing it in every place and form, %xmode Verbose on."""
    with echo_server() as (url, received):
        cells = ["%load_ext ipychat\n%xmode Verbose\n%chat_config max_retries=0"]
        for mode in ECHO_MODES:
            cells.append(f"%chat_config base_url={url}/{mode}/v1")
            cells.append(f"%%chat\nhello {mode}")
            if mode.startswith("content"):
                cells.append(f"%%chat --no-stream\nhello {mode} whole")
                cells.append("_chat")
        cells += [
            "_chat.to_dict()",
            "%chat_config",
            "%chat_config --history",
            "import os\nbad = os.environ['BAD_KEY_SOURCE']\n%chat_config api_key={bad}",
            '%chat_config extra_headers={"X-Note": "caf\\u00e9 \\u2013 bar"}',
            "%chat_config --export history.json\nprint(open('history.json').read())",
        ]
        env = {"IPYCHAT_API_KEY": ECHO_KEY, "BAD_KEY_SOURCE": BAD_KEY}
        nb = execute_notebook(cells, tmp_path, allow_errors=True, **env)
    assert len(received) >= len(ECHO_MODES), "every echo mode was asked"
    assert all(r["authorization"] == f"Bearer {ECHO_KEY}" for r in received), "the key was sent"
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    saved = path.read_text(encoding="utf-8")
    assert_no_fragment(saved, "the saved notebook", ECHO_KEY)
    assert_no_fragment(saved, "the saved notebook", BAD_KEY)
    export = (tmp_path / "history.json").read_text(encoding="utf-8")
    assert_no_fragment(export, "the JSON export", ECHO_KEY)
    assert json.loads(export)["messages"], "the export kept the data"
    outputs = {cell.source: json.dumps(cell.outputs) for cell in nb.cells}
    assert "****/Lm3" in saved, "the echoes came back masked"
    for source in cells[-3:-1]:  # the non-ASCII key and header: one line each, no traceback
        text = outputs[source]
        assert "UsageError" in text and "not ASCII" in text, text
        assert "Traceback" not in text and "UnicodeEncodeError" not in text, text


def test_provider_and_rebound_keys_never_reach_another_host(server, tmp_path):
    """OPENAI_API_KEY never reaches a loopback base_url; IPYCHAT_API_KEY stays with its host."""
    kernel = Kernel.start(tmp_path, OPENAI_API_KEY=CANARY)
    try:
        server.clear()
        setup = kernel.run(f"%load_ext ipychat\n%chat_config base_url={server.base_url}")
        assert setup.status == "ok", setup.text()
        result = kernel.run("%%chat\nhello")
        assert result.status == "ok", result.text()
        assert server.requests[-1].headers.get("authorization") is None
        table = kernel.run("%chat_config")
        assert "OPENAI_API_KEY" in table.text()
        assert_clean(setup.text() + result.text() + table.text(), "the OPENAI_API_KEY kernel")
    finally:
        kernel.shutdown()

    kernel = Kernel.start(tmp_path, IPYCHAT_API_KEY=CANARY)
    try:
        server.clear()
        other_host = server.base_url.replace("127.0.0.1", "localhost")
        kernel.run(f"%load_ext ipychat\n%chat_config base_url={other_host}")
        refused = kernel.run("%%chat\nhello")
        assert refused.reply["content"]["ename"] == "UsageError", refused.text()
        assert "Not sending the API key" in refused.text() and "localhost" in refused.text()
        assert not server.requests, "nothing was sent"
        assert kernel.run("%reload_ext ipychat").status == "ok"  # a reload confirms nothing
        reloaded = kernel.run("%%chat\nhello")
        assert "Not sending the API key" in reloaded.text() and not server.requests
        runtime = "sk-runtime-0a1b2c3d4e5f6789"
        answer = run_with_input(kernel, "%chat_config --api-key", runtime)  # for this host
        assert "api_key set (****6789)" in answer.stdout
        assert kernel.run("%%chat\nhello").status == "ok"
        assert server.requests[-1].headers["authorization"] == f"Bearer {runtime}"
        # Back at 127.0.0.1 the key set for localhost is not sent: the environment's key for
        # 127.0.0.1 is. A reload keeps that, with the host each key was set for.
        kernel.run(f"%chat_config base_url={server.base_url}")
        for code in ("pass", "%reload_ext ipychat"):
            assert kernel.run(code).status == "ok"
            back = kernel.run("%%chat\nhello")
            assert back.status == "ok", back.text()
            assert server.requests[-1].headers["authorization"] == f"Bearer {CANARY}"
        shown = refused.text() + answer.text() + back.text()
        assert_clean(shown, "the refusal")
        assert runtime[:12] not in shown
    finally:
        kernel.shutdown()


def test_url_credentials_never_show_in_a_kernel(server, tmp_path):
    """`user:password@` in base_url: masked in the table, %config and errors; sent as Basic."""
    password = "pw-7f3a9c1e5b2d"
    kernel = Kernel.start(tmp_path, URL_SOURCE=server.base_url.replace("://", f"://ann:{password}@"))
    try:
        server.clear()
        outputs = [kernel.run("%load_ext ipychat\nimport os\nurl = os.environ['URL_SOURCE']")]
        outputs.append(kernel.run("%chat_config base_url={url}"))
        outputs.append(kernel.run("%%chat\nhello"))
        assert outputs[-1].status == "ok", outputs[-1].text()
        assert server.requests[-1].headers["authorization"].startswith("Basic ")
        for code in ("%chat_config", "%config ChatMagics", "_chat", "%chat_config --save"):
            outputs.append(kernel.run(code))
            assert outputs[-1].status == "ok", outputs[-1].text()
        assert "****@127.0.0.1" in outputs[3].text()
        shown = "".join(o.text() for o in outputs)
        assert password not in shown and "ann:" not in shown
    finally:
        kernel.shutdown()
