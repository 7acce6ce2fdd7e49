"""What the bundled server's tests share: request bodies, stream parsing and fixtures.

Each test module gets one running server (`shared`), reset to its defaults before each test
(`server`), and one HTTP client for it (`http`, or `client` once the server is reset).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ipychat._server import LocalServer, serve

ROOT = Path(__file__).resolve().parents[2]
SYSTEM = {"role": "system", "content": "You are a robot assistant"}
USER = {"role": "user", "content": "Recommend 1 science fiction book"}


def chat(**extra: Any) -> dict[str, Any]:
    """A valid request body (the reference's quick-start one), with `extra` fields on top."""
    return {"model": "ops-qwen-turbo", "messages": [SYSTEM, USER], **extra}


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


def data_of(lines: list[str]) -> list[str]:
    return [line[len("data: ") :] for line in lines if line.startswith("data: ")]


def stream_lines(
    client: httpx.Client, body: dict[str, Any], lines: list[str] | None = None
) -> list[str]:
    """Stream a request and return its lines; `lines` keeps what arrived if it raises."""
    lines = [] if lines is None else lines
    with client.stream("POST", "/chat/completions", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines.extend(response.iter_lines())
    return lines


def chunks_of(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(data) for data in data_of(lines) if data != "[DONE]"]


def content_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


@pytest.fixture(scope="module")
def shared() -> Iterator[LocalServer]:
    with serve() as running:
        yield running


@pytest.fixture
def server(shared: LocalServer) -> LocalServer:
    """The module's server, reset to its defaults so that no test leaks into the next."""
    shared.clear()
    shared.script = None
    shared.token_delay = shared.first_token_delay = 0.0
    shared.chunk_chars = None
    return shared


@pytest.fixture(scope="module")
def http(shared: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared.base_url, timeout=5) as client:
        yield client


@pytest.fixture
def client(server: LocalServer, http: httpx.Client) -> httpx.Client:
    return http
