"""When a failed request is sent again: only when the server cannot have started the work.

A generation is paid for, so a request is resent only when it cannot have reached a server
that started on it:

- no connection could be made (refused, DNS, connect timeout);
- the server answered 408, 429 or a 5xx status (it refused; `Retry-After` is honoured);
- the connection broke before any byte of the answer came back.

Never resent: a read timeout (the server may still be generating), a connection that broke
after the answer began (also a stream that broke before its first text), any other status.

A pooled keep-alive connection the server had already closed (after an error, or when it was
idle too long) fails the same way before any byte; that is not the server's failure, so it
is resent once at once on a fresh connection, without a notice and without using a retry, as
browsers and urllib3 do. `ConnectionTrace` tells a reused connection from a new one.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = [
    "MAX_RETRY_AFTER",
    "ConnectionTrace",
    "RetryNotice",
    "backoff",
    "broke_before_answer",
    "retry_after",
    "retryable_status",
]

logger = logging.getLogger("ipychat")

MAX_RETRY_AFTER = 60.0  # seconds: a longer wait is reported, not slept through


@dataclass(frozen=True)
class RetryNotice:
    """Told to `on_retry` before each wait, so users see that a retry is happening."""

    attempt: int
    max_retries: int
    delay: float
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.reason}; retrying in {self.delay:.1f} s "
            f"(retry {self.attempt} of {self.max_retries})"
        )


def log_retry(notice: RetryNotice) -> None:
    logger.warning("%s", notice)


def retryable_status(status: int) -> bool:
    """408 (the server gave up waiting for us), 429 (rate limit) and 5xx: it did not generate."""
    return status in (408, 429) or status >= 500


def broke_before_answer(exc: httpx.TransportError) -> bool:
    """A connection that broke before any byte of the answer: reset, closed, or not writable.

    Read and write timeouts are not among them: the server may be working on the request.
    """
    if isinstance(exc, httpx.TimeoutException):
        return False
    if isinstance(exc, httpx.RemoteProtocolError):  # h11's wording for a close with no answer
        return "without sending" in str(exc)
    return isinstance(exc, httpx.ReadError | httpx.WriteError)


def backoff(attempt: int) -> float:
    """The wait before retry number `attempt` (1-based): 0.5 s doubling up to 8 s, jittered."""
    return min(0.5 * 2 ** (attempt - 1), 8.0) * random.uniform(0.75, 1.0)


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, or `Retry-After` secs or date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ConnectionTrace:
    """httpx's `trace` request extension: did this request open its connection, or reuse one?

    httpcore reports `connection.connect_tcp` only for a new connection. Transports that do not
    trace (mocks) report nothing, and then nothing is assumed to be reused.
    """

    __slots__ = ("connected", "sent")

    def __init__(self) -> None:
        self.connected = False  # opened a new connection for this request
        self.sent = False  # started sending the request on some connection

    def __call__(self, name: str, info: dict[str, Any]) -> None:
        if ".connect_" in name:
            self.connected = True
        elif "send_request_headers" in name:
            self.sent = True

    async def async_call(self, name: str, info: dict[str, Any]) -> None:
        self(name, info)

    @property
    def reused(self) -> bool:
        return self.sent and not self.connected
