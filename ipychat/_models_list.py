"""`%chat_config --models`: the model names an endpoint offers, from `GET {base_url}/models`.

OpenAI-compatible servers answer `{"object": "list", "data": [{"id": ...}, ...]}`; Ollama's
and some proxies' older `{"models": [{"name": ...}]}` is read too. One request, no retry:
it is a question to the user's server, and a failure is one line saying what came back.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ._dry_run import mask_url
from ._errors import ConfigError, RequestError
from ._safetext import one_line
from ._schema import CHAT_PATH

__all__ = ["list_models", "models_url"]


def models_url(base_url: str) -> str:
    """`https://h/v1` or `https://h/v1/chat/completions` -> `https://h/v1/models`."""
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    if path.endswith(CHAT_PATH):
        path = path[: -len(CHAT_PATH)]
    return urlunsplit(parts._replace(path=path + "/models", query="", fragment=""))


def _names(data: Any) -> list[str]:
    items = data.get("data", data.get("models")) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError("no list of models")
    names = []
    for item in items:
        name = item.get("id") or item.get("name") if isinstance(item, dict) else item
        if isinstance(name, str):
            names.append(name)
    return sorted(names)


def list_models(resolved: Any) -> list[str]:
    """The endpoint's model names, sorted; `RequestError` (one line) when it cannot say."""
    import httpx

    from ._auth import SecretAuth

    if resolved.key_problem:  # the key belongs to another host: never sent there
        raise ConfigError(resolved.key_problem)
    redactor = resolved.redactor()
    url = models_url(resolved.base_url)  # credentials are not in it: they go in `auth`
    shown = one_line(mask_url(redactor.text(url)))
    auth = SecretAuth(resolved.api_key, resolved.extra_headers, resolved.userinfo)
    try:
        response = httpx.get(url, auth=auth, timeout=resolved.timeout)
    except httpx.HTTPError as exc:
        raise RequestError(
            f"Could not reach {shown}: {type(exc).__name__}. Check base_url with %chat_config."
        ) from None
    if response.status_code != 200:
        text = one_line(redactor.text(response.text, raw=True), limit=200)
        raise RequestError(
            f"{response.status_code} from {shown}: {text or 'no message'}. Not every server lists "
            "its models; the model setting can name one anyway."
        )
    try:
        return _names(response.json())
    except ValueError:
        raise RequestError(f"{shown} did not answer with a list of models.") from None
