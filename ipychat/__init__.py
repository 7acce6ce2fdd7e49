"""ipychat: chat with OpenAI-compatible models from Jupyter, and from plain Python.

In a notebook: `%load_ext ipychat`, then `%%chat` cells. From Python:

>>> from ipychat import ChatClient, Conversation, Settings
>>> settings = Settings.load()
>>> settings.set(base_url="http://127.0.0.1:8765/v1")
>>> with ChatClient(settings) as client:
...     reply = Conversation().send("Hello", client=client)

The names below are imported lazily, so `import ipychat` (and `%load_ext ipychat`) stays
cheap: httpx, Markdown rendering and widgets load only when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "APIStatusError",
    "AsyncChatClient",
    "Batch",
    "BatchInterrupted",
    "ChatClient",
    "ChatError",
    "CodeBlock",
    "ConfigError",
    "ConnectError",
    "Conversation",
    "ConversationError",
    "Delta",
    "Fault",
    "LocalServer",
    "Message",
    "Reply",
    "RequestError",
    "Secret",
    "SessionRegistry",
    "Settings",
    "StreamError",
    "TimeoutError",
    "Usage",
    "__version__",
    "load_ipython_extension",
    "map",
    "serve",
    "sessions",
    "unload_ipython_extension",
]

_LAZY = {
    "APIStatusError": "_errors",
    "ChatError": "_errors",
    "ConfigError": "_errors",
    "ConnectError": "_errors",
    "ConversationError": "_errors",
    "RequestError": "_errors",
    "StreamError": "_errors",
    "TimeoutError": "_errors",
    "Secret": "_config",
    "Settings": "_config",
    "Conversation": "_conversation",
    "Message": "_conversation",
    "SessionRegistry": "_conversation",
    "sessions": "_conversation",
    "ChatClient": "_client",
    "AsyncChatClient": "_client",
    "Delta": "_chunks",
    "Reply": "_reply",
    "Usage": "_reply",
    "CodeBlock": "_reply",
    "LocalServer": "_server",
    "Fault": "_server",
    "serve": "_server",
    "map": "_batch",
    "Batch": "_batch",
    "BatchInterrupted": "_batch",
}

if TYPE_CHECKING:
    from ._batch import Batch, BatchInterrupted, map
    from ._chunks import Delta
    from ._client import AsyncChatClient, ChatClient
    from ._config import Secret, Settings
    from ._conversation import Conversation, Message, SessionRegistry, sessions
    from ._errors import (
        APIStatusError,
        ChatError,
        ConfigError,
        ConnectError,
        ConversationError,
        RequestError,
        StreamError,
        TimeoutError,
    )
    from ._reply import CodeBlock, Reply, Usage
    from ._server import Fault, LocalServer, serve


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ipychat' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext ipychat`: register `%%chat`, `%chat` and `%chat_config`."""
    from ._magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext ipychat`: remove the magics again."""
    from ._magics import unload

    unload(ipython)
