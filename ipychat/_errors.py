"""One exception family for everything ipychat refuses or fails at.

    ChatError                  base: every error ipychat raises on purpose
    ├── ConfigError            a setting is unknown or out of range (raised before any request)
    ├── ConversationError      the messages break the role rules, or a history file is invalid
    └── RequestError           sending the request failed
        ├── ConnectError       no connection could be made (refused, DNS, TLS)
        ├── TimeoutError       no connection or no answer within `timeout`
        ├── APIStatusError     the server answered with an HTTP error status
        └── StreamError        the stream broke: dropped, stalled, an in-stream error, bad
                               data, or only keep-alives for `idle_timeout`

Each message is one line that says what went wrong and what to do next, in terms of the plain
Python API: settings by name, never magics or cells. `setting` names the setting that decides
the outcome (and `suggested` a value for it, when there is one), so the magics layer can add
how to change it there. None of them ever contains the API key. Only the magics layer turns
these into IPython `UsageError`s.
"""

from __future__ import annotations

__all__ = [
    "APIStatusError",
    "ChatError",
    "ConfigError",
    "ConnectError",
    "ConversationError",
    "RequestError",
    "StreamError",
    "TimeoutError",
]


class ChatError(Exception):
    """Base class of every error ipychat raises on purpose."""


class ConfigError(ChatError, ValueError):
    """A setting is unknown, of the wrong type or out of range."""


class ConversationError(ChatError, ValueError):
    """The conversation breaks the service's role rules, or a history file is invalid."""


class RequestError(ChatError):
    """Sending a request failed.

    `url` is the endpoint; `reply` holds any partial reply; `setting` the setting that decides
    this outcome (e.g. "timeout", "base_url", "history_limit") and `suggested` a value to try;
    `waited` the seconds spent waiting between attempts before giving up.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        reply: object | None = None,
        setting: str | None = None,
        suggested: str | None = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.reply = reply
        self.setting = setting
        self.suggested = suggested
        self.waited = 0.0


class ConnectError(RequestError):
    """No connection could be made to the endpoint, or it broke before any answer."""


class TimeoutError(RequestError):  # the name mirrors httpx; import it as ipychat.TimeoutError
    """No connection, or no answer, within `timeout` (a stream's answer also ends at
    `idle_timeout` when that is shorter)."""


class APIStatusError(RequestError):
    """The server answered with an HTTP error status (or an error event in a stream).

    `overflow` is True when the error says the conversation does not fit the model's context.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        reply: object | None = None,
        setting: str | None = None,
        suggested: str | None = None,
        overflow: bool = False,
    ) -> None:
        super().__init__(message, url=url, reply=reply, setting=setting, suggested=suggested)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after
        self.overflow = overflow


class StreamError(APIStatusError):
    """The answer broke after it started: dropped, stalled, an in-stream error, bad data, or a
    stream that sent only keep-alives for `idle_timeout` seconds. `reply` holds the text so far.
    """
