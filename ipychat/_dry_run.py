"""`--dry-run`: the request a cell would send, shown exactly, with every secret masked.

The request is built by the client itself (`ChatClient.prepare`, the same code that sends), so
what is shown is what would go on the wire: method, URL, headers, JSON body. The API key and
every `extra_headers` value are masked (they may be tokens), and so are credentials in the URL.
Nothing is sent, nothing is recorded, no variable is set.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ._safetext import terminal_safe

__all__ = ["describe", "mask_url"]

_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def mask_url(url: str) -> str:
    """`https://user:pass@host/v1` -> `https://****@host/v1`: URL credentials are secrets."""
    return _URL_CREDENTIALS.sub("****@", url)


def describe(client: Any, messages: list[dict[str, str]], prompt: str, overrides: Any) -> str:
    """The request as text: `POST URL`, the headers, a blank line, the body as indented JSON."""
    prepared = client.prepare(messages, prompt, overrides)
    lines = [f"POST {mask_url(prepared.url)}"]
    # Credentials are put on the request by the auth flow at send time: shown here masked.
    for name, value in {**prepared.headers, **prepared.auth.masked_headers()}.items():
        lines.append(f"{name}: {value}")
    lines += ["", json.dumps(prepared.body, indent=2, ensure_ascii=False)]
    return terminal_safe("\n".join(lines))
