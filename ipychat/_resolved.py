"""The settings of one request: what `Settings.resolve()` returns, every layer applied.

A module of its own so that `%load_ext` (which reads the settings but sends nothing) does
not build this dataclass: it is needed from the first request on.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from ._schema import CHAT_PATH, DEFAULT_BASE_URL, DEFAULTS, GENERATION_KEYS, unknown
from ._secrets import Redactor, Secret, userinfo_secrets

__all__ = ["ResolvedSettings"]


@dataclasses.dataclass(frozen=True)
class ResolvedSettings:
    """The settings one request is made with: every layer applied, nothing left to check.

    `base_url` has no credentials in it (they are in `userinfo`), so it and `url` can be shown
    in messages; `api_key` is the key to send to this URL's host, or None; `key_problem` says
    in one line why a key that exists is not sent there (the client refuses the request).
    """

    base_url: str = DEFAULT_BASE_URL
    api_key: Secret | None = None
    model: str = "ipychat-local"
    system: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: str | list[str] | None = None
    stream: bool = True
    timeout: float = 60.0
    idle_timeout: float = 300.0
    max_retries: int = 2
    history_limit: int | None = None
    max_requests_per_session: int | None = None  # budgets: see _budget
    max_tokens_per_session: int | None = None
    extra_body: dict[str, object] = dataclasses.field(default_factory=dict)
    extra_headers: dict[str, Secret] = dataclasses.field(default_factory=dict)
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False, compare=False)
    userinfo: Secret | None = dataclasses.field(default=None, repr=False)
    key_problem: str | None = dataclasses.field(default=None, repr=False)
    known_secrets: tuple[Secret, ...] = dataclasses.field(default=(), repr=False, compare=False)

    @property
    def url(self) -> str:
        """The full chat completions URL: `base_url` + `/chat/completions` unless already there."""
        parts = urlsplit(self.base_url)
        path = parts.path.rstrip("/")
        if path.endswith(CHAT_PATH):
            return self.base_url
        return urlunsplit(parts._replace(path=path + CHAT_PATH))

    def generation_params(self) -> dict[str, object]:
        """The sampling fields to put in the request body: only those that are set."""
        params = {key: getattr(self, key) for key in GENERATION_KEYS}
        return {key: copy.copy(value) for key, value in params.items() if value is not None}

    def source(self, key: str) -> str:
        """Which layer `key` came from: "default", "file", "env", "config", "set" or "call"."""
        if key not in DEFAULTS:
            raise unknown(key)
        return self.sources.get(key, "default")

    def secrets(self) -> list[Secret]:
        """Every secret a server or model could echo: the key, header values, URL credentials."""
        found = [self.api_key, *self.extra_headers.values(), *self.known_secrets]
        if self.userinfo:
            found += userinfo_secrets(self.userinfo)
        return [s for s in found if s]

    def redactor(self) -> Redactor:
        """Masks these settings' secrets in server text (see `_secrets.Redactor`)."""
        return Redactor(self.secrets())
