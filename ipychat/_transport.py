"""What a request that got no answer means: the error line, and whether resending is safe.

See `_retry` for the rule: only a request that cannot have reached a server that started on it
is resent (no connection, or a connection that broke before any byte of the answer).
"""

from __future__ import annotations

import httpx

from ._errors import ConnectError, RequestError, TimeoutError
from ._request import Prepared
from ._retry import broke_before_answer
from ._safetext import one_line

__all__ = ["reason", "retryable_transport", "transport_error"]


def reason(exc: Exception) -> str:
    return one_line(str(exc) or type(exc).__name__, 120)


def transport_error(exc: httpx.TransportError, prepared: Prepared) -> RequestError:
    """The error for a request that got no answer at all."""
    url = prepared.url
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return TimeoutError(
            f"No connection to {url} within {prepared.settings.timeout:g} s (connect timeout). "
            "Check that the server is running and base_url is right.",
            url=url,
            setting="base_url",
        )
    if isinstance(exc, httpx.TimeoutException):
        seconds, setting = prepared.read_timeout
        return TimeoutError(
            f"No answer from {url} within {seconds:g} s (read timeout); not resent, as the "
            f"server may still be working on it. If it needs longer, raise {setting}.",
            url=url,
            setting=setting,
            suggested=f"{max(seconds * 2, 120):g}",
        )
    if broke_before_answer(exc):
        text = (
            f"The connection to {url} broke before an answer ({reason(exc)}). Try again; if it "
            "keeps happening, check that base_url is an OpenAI-compatible endpoint."
        )
    elif isinstance(exc, httpx.RemoteProtocolError):
        text = (
            f"{url} did not answer in HTTP ({reason(exc)}). Check that base_url is an "
            "OpenAI-compatible endpoint."
        )
    elif isinstance(exc, httpx.ProtocolError | httpx.UnsupportedProtocol):
        text = (
            f"Could not send the request to {url} ({reason(exc)}). Check base_url and "
            "extra_headers."
        )
    else:
        text = (
            f"Could not connect to {url} ({reason(exc)}). Check that the server is running and "
            "base_url is right; for the bundled server run `python -m ipychat serve`."
        )
    return ConnectError(text, url=url, setting="base_url")


def retryable_transport(exc: httpx.TransportError) -> bool:
    """No connection, or a connection that broke before any byte: the server did no work."""
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return True
    if isinstance(exc, httpx.TimeoutException | httpx.ProtocolError | httpx.UnsupportedProtocol):
        return broke_before_answer(exc)
    return isinstance(exc, httpx.ConnectError | httpx.ProxyError) or broke_before_answer(exc)

