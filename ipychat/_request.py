"""One call's request: the body and headers sent, and what happened to it over its attempts.

Built once per call from the resolved settings, then handed between the attempts of that call,
so the retry policy can count retries and the final error can say how long it all took.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ._auth import SecretAuth
from ._chunks import ReplyBuilder
from ._errors import ConfigError
from ._resolved import ResolvedSettings
from ._secrets import Redactor

__all__ = ["USER_AGENT", "Prepared", "builder_for", "prepare"]

USER_AGENT = "ipychat/0.1"


@dataclass
class Prepared:
    """One call's request and what happened to it so far, across its attempts."""

    settings: ResolvedSettings
    body: dict[str, Any]
    headers: dict[str, str]  # no credentials: those are in `auth`, set at send time
    prompt: str
    retries: int = 0  # retries made so far (silent resends are not retries)
    attempts: int = 0  # requests sent
    fresh_resend: bool = False  # the one silent resend after a stale pooled connection is used
    unstreamed: bool = False  # asked again without streaming after an empty stream
    started: float = field(default_factory=time.monotonic)
    url: str = field(init=False)
    auth: SecretAuth = field(init=False)
    redactor: Redactor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.url = self.settings.url  # computed once: it is read for every event
        resolved = self.settings
        self.auth = SecretAuth(resolved.api_key, resolved.extra_headers, resolved.userinfo)
        self.redactor = resolved.redactor()

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def read_timeout(self) -> tuple[float, str]:
        """The read timeout and the setting it comes from: a stream also ends at idle_timeout."""
        timeout, idle = self.settings.timeout, self.settings.idle_timeout
        return (idle, "idle_timeout") if self.stream and idle < timeout else (timeout, "timeout")

    def reply_params(self) -> dict[str, Any]:
        """The request as kept on the reply: everything but the messages (and never the key)."""
        params = {k: v for k, v in self.body.items() if k != "messages"}
        params["url"] = self.url
        return params


def prepare(
    resolved: ResolvedSettings, messages: list[dict[str, str]], prompt: str, usage_ok: bool
) -> Prepared:
    if resolved.key_problem:  # a key that belongs to another host: refuse, never send it
        raise ConfigError(resolved.key_problem)
    body: dict[str, Any] = {"model": resolved.model, "messages": messages}
    body.update(resolved.generation_params())
    body.update(resolved.extra_body)
    if resolved.stream:
        body["stream"] = True
        if usage_ok:
            body.setdefault("stream_options", {"include_usage": True})
    headers = {"User-Agent": USER_AGENT}
    if resolved.stream:
        headers["Accept"] = "text/event-stream"
    return Prepared(resolved, body, headers, prompt)



def builder_for(prepared: Prepared) -> ReplyBuilder:
    return ReplyBuilder(
        prompt=prepared.prompt, params=prepared.reply_params(), secret=prepared.redactor
    )

