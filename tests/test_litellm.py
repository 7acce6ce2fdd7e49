"""ipychat against the LiteLLM proxy (the gateway a course uses beyond one machine), unchanged.

Runs the proxy's own mock model, offline and on loopback only, when LiteLLM is installed:
`pip install 'ipychat[litellm]'`, or point IPYCHAT_LITELLM at another environment's `litellm`
command. Skipped, with that reason, when it is not. The proxy takes a minute to start on a
small machine, so one proxy serves the whole module.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ipychat import APIStatusError, ChatClient, Conversation, Settings

MASTER_KEY = "sk-course-master-4f9a2c7e"
MOCK_REPLY = "Slicing takes part of a sequence: s[1:3] is the second and third item."
CONFIG = f"""\
model_list:
  - model_name: tutor
    litellm_params:
      model: openai/tutor
      api_key: not-used
      mock_response: "{MOCK_REPLY}"
litellm_settings:
  telemetry: false
general_settings:
  master_key: {MASTER_KEY}
"""
# Offline switches: no model cost map download, no telemetry, no outbound request of its own.
OFFLINE = {
    "LITELLM_OFFLINE_MODE": "true",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "LITELLM_MODE": "PRODUCTION",  # do not load a .env found above the install folder
    "NO_PROXY": "*",
}


def litellm_command() -> str | None:
    configured = os.environ.get("IPYCHAT_LITELLM")
    if configured:
        return configured
    beside = Path(sys.executable).with_name("litellm")
    return str(beside) if beside.exists() else shutil.which("litellm")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def proxy() -> Iterator[str]:
    command = litellm_command()
    if command is None:
        pytest.skip(
            "the LiteLLM proxy is not installed (pip install 'ipychat[litellm]', or set "
            "IPYCHAT_LITELLM to its litellm command)"
        )
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "config.yaml"
        config.write_text(CONFIG, encoding="utf-8")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        env.update(OFFLINE)
        with open(Path(folder) / "proxy.log", "w+", encoding="utf-8") as log:
            process = subprocess.Popen(
                [command, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=folder,
            )
            try:
                base_url = f"http://127.0.0.1:{port}/v1"
                wait_until_ready(base_url, process, log)
                yield base_url
            finally:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def wait_until_ready(base_url: str, process: subprocess.Popen[bytes], log: object) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)  # type: ignore[attr-defined]
            pytest.fail(f"the LiteLLM proxy exited: {log.read()[-2000:]}")  # type: ignore[attr-defined]
        try:
            response = httpx.get(base_url.removesuffix("/v1") + "/health/liveliness", timeout=2)
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    pytest.fail("the LiteLLM proxy did not start within 240 s")


def settings(base_url: str, key: str) -> Settings:
    config = Settings.load(environ={})
    config.set(base_url=base_url, model="tutor", api_key=key, max_retries=0)
    return config


def test_ipychat_streams_and_keeps_a_conversation_through_the_proxy(proxy: str) -> None:
    with ChatClient(settings(proxy, MASTER_KEY)) as client:
        conversation = Conversation()
        streamed = conversation.send("How does slicing work?", client=client)
        whole = conversation.send("And once more?", client=client, stream=False)
    for reply in (streamed, whole):
        assert reply.text == MOCK_REPLY
        assert reply.finish_reason == "stop" and reply.complete
        assert reply.usage is not None and reply.usage.total_tokens
    assert [m.role for m in conversation][-4:] == ["user", "assistant"] * 2


def test_a_wrong_student_key_is_one_clear_error_without_the_key(proxy: str) -> None:
    wrong = "sk-student-wrong-9d8c7b6a"
    with ChatClient(settings(proxy, wrong)) as client, pytest.raises(APIStatusError) as caught:
        client.send([{"role": "user", "content": "hi"}])
    assert caught.value.status in (400, 401)
    assert wrong[:8] not in str(caught.value) and MASTER_KEY[:8] not in str(caught.value)
