"""The HTTP client: messages in, a streamed or whole `Reply` out, over httpx.

Everything that does not touch the network (building the request, reading error bodies,
deciding whether and when to retry) lives in plain functions shared by the sync and the async
client, so the two differ only in `await`. Retries happen on connection errors, timeouts before
a response, 408, 409, 429 and 5xx, honouring `Retry-After` / `retry-after-ms`, and never once
any content of a stream has arrived. A streaming response is always closed, also when the
caller stops iterating (Ctrl-C in a notebook).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from ._chunks import Delta, ReplyBuilder, error_details
from ._config import ResolvedSettings, Secret, Settings, redact
from ._errors import APIStatusError, ConnectError, RequestError, StreamError, TimeoutError
from ._reply import Reply
from ._sse import SSEDecoder

__all__ = ["AsyncChatClient", "ChatClient", "RetryNotice"]

logger = logging.getLogger("ipychat")

RETRY_STATUSES = frozenset({408, 409, 429})
MAX_RETRY_AFTER = 60.0  # seconds: a longer wait is reported, not slept through
USER_AGENT = "ipychat/0.1"


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


def _log_retry(notice: RetryNotice) -> None:
    logger.warning("%s", notice)


@dataclass
class _Prepared:
    settings: ResolvedSettings
    body: dict[str, Any]
    headers: dict[str, str] = field(repr=False)  # holds the key in Authorization
    prompt: str
    retries: int = 0  # retries made so far (the stream_options fallback is not one)
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = self.settings.url  # computed once: it is read for every event

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    def reply_params(self) -> dict[str, Any]:
        """The request as kept on the reply: everything but the messages (and never the key)."""
        params = {k: v for k, v in self.body.items() if k != "messages"}
        params["url"] = self.url
        return params


def _prepare(
    resolved: ResolvedSettings, messages: list[dict[str, str]], prompt: str, usage_ok: bool
) -> _Prepared:
    body: dict[str, Any] = {"model": resolved.model, "messages": messages}
    body.update(resolved.generation_params())
    body.update(resolved.extra_body)
    if resolved.stream:
        body["stream"] = True
        if usage_ok:
            body.setdefault("stream_options", {"include_usage": True})
    headers = {"User-Agent": USER_AGENT, **resolved.extra_headers}
    if resolved.api_key:
        headers["Authorization"] = f"Bearer {resolved.api_key.reveal()}"
    if resolved.stream:
        headers["Accept"] = "text/event-stream"
    return _Prepared(resolved, body, headers, prompt)


def _excerpt(text: str, limit: int = 200) -> str:
    if "<" in text and ">" in text:  # an HTML page: its title or first heading says enough
        match = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S) or re.search(
            r"<h1[^>]*>(.*?)</h1>", text, re.I | re.S
        )
        text = match.group(1) if match else re.sub(r"<[^>]+>", " ", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_HINTS = {
    400: "Check the parameters with %chat_config.",
    401: "Check api_key with %chat_config.",
    403: "Check api_key and that it may use this model.",
    404: "Check base_url and model with %chat_config.",
    408: "The server timed out; try again.",
    413: "The conversation is too long; send less history (history_limit) or reset it.",
    422: "The server refused a field; check the parameters and extra_body.",
    429: "Rate limited: wait a moment and try again.",
}


def _hint(status: int) -> str:
    return _HINTS.get(status, "The server failed; try again later." if status >= 500 else "")


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


def _status_error(response: httpx.Response, url: str, key: Secret | None) -> APIStatusError:
    status = response.status_code
    raw = redact(response.text, key)
    try:
        body: object = json.loads(raw)
    except ValueError:
        body = None
    message, code, request_id = error_details(body)
    if message is None:
        message = _excerpt(raw) if raw.strip() else (response.reason_phrase or "no details")
    request_id = request_id or response.headers.get("x-request-id")
    text = f"{status} from {url}: {message.rstrip().rstrip('.')}"
    if code and code not in message:
        text += f" ({code})"
    text += "."
    if hint := _hint(status):
        text += " " + hint
    return APIStatusError(
        text,
        url=url,
        status=status,
        code=code,
        request_id=request_id,
        retry_after=retry_after(response.headers),
    )


def _transport_error(exc: httpx.TransportError, prepared: _Prepared) -> RequestError:
    url = prepared.url
    if isinstance(exc, httpx.TimeoutException):
        kind = "connect" if isinstance(exc, httpx.ConnectTimeout) else "read"
        return TimeoutError(
            f"No answer from {url} within {prepared.settings.timeout:g} s ({kind} timeout). "
            "Check the server, or raise the limit with %chat_config timeout=120.",
            url=url,
        )
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError):
        return ConnectError(  # connected, but the connection broke before the answer
            f"The connection to {url} broke before an answer ({reason}). Try again; if it "
            "keeps happening, check that base_url is an OpenAI-compatible endpoint.",
            url=url,
        )
    return ConnectError(
        f"Could not connect to {url} ({reason}). Check that the server is running and "
        "base_url is right (%chat_config); for the bundled server run `python -m ipychat serve`.",
        url=url,
    )


def _retry_delay(error: RequestError, attempt: int, max_retries: int) -> float | None:
    """How long to wait before retry number `attempt` (1-based), or None for no retry."""
    if attempt > max_retries:
        return None
    if isinstance(error, APIStatusError):
        if not (error.status in RETRY_STATUSES or (error.status or 0) >= 500):
            return None
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= MAX_RETRY_AFTER else None
    elif not isinstance(error, ConnectError | TimeoutError):
        return None
    return min(0.5 * 2 ** (attempt - 1), 8.0) * random.uniform(0.75, 1.0)


def _rejects_stream_options(error: APIStatusError) -> bool:
    return error.status in (400, 422) and "stream_options" in str(error)


def _builder(prepared: _Prepared) -> ReplyBuilder:
    return ReplyBuilder(
        prompt=prepared.prompt, params=prepared.reply_params(), secret=prepared.settings.api_key
    )


def _incomplete_error(builder: ReplyBuilder, prepared: _Prepared, why: str) -> StreamError:
    got = "after part of the reply" if builder.has_content else "before any reply"
    message = f"The stream from {prepared.url} {why} {got}."
    return StreamError(
        message, url=prepared.url, reply=builder.build(complete=False, error=message)
    )


class _ClientBase:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        on_retry: Callable[[RetryNotice], None] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings.load()
        self.on_retry = on_retry or _log_retry
        self._no_usage_option: set[str] = set()  # URLs that refused `stream_options`

    def _prepare(self, messages: list[dict[str, str]], prompt: str, overrides: Any) -> _Prepared:
        resolved = self.settings.resolve(**overrides)
        return _prepare(resolved, messages, prompt, resolved.url not in self._no_usage_option)

    def _next_attempt(self, error: RequestError, prepared: _Prepared) -> float:
        """Decide what follows an error before any content: the wait before resending, or raise."""
        if (
            isinstance(error, APIStatusError)
            and _rejects_stream_options(error)
            and "stream_options" in prepared.body
        ):
            self._no_usage_option.add(prepared.url)
            prepared.body.pop("stream_options")
            return 0.0
        prepared.retries += 1
        max_retries = prepared.settings.max_retries
        delay = _retry_delay(error, prepared.retries, max_retries)
        if delay is None:
            raise error
        self.on_retry(RetryNotice(prepared.retries, max_retries, delay, str(error).split(". ")[0]))
        return delay

    @staticmethod
    def _http_request(http: httpx.Client | httpx.AsyncClient, prepared: _Prepared) -> httpx.Request:
        return http.build_request(
            "POST",
            prepared.url,
            json=prepared.body,
            headers=prepared.headers,
            timeout=prepared.settings.timeout,
        )

    @staticmethod
    def _completion(body_text: str, builder: ReplyBuilder, prepared: _Prepared) -> Reply:
        try:
            body = json.loads(body_text)
        except ValueError:
            excerpt = _excerpt(body_text) or "an empty body"
            raise APIStatusError(
                f"200 from {prepared.url}, but the body is not JSON: {excerpt}. "
                "Check base_url with %chat_config.",
                url=prepared.url,
                status=200,
            ) from None
        builder.add_completion(body if isinstance(body, dict) else {}, prepared.url)
        return builder.build()

    @staticmethod
    def _finish(builder: ReplyBuilder, prepared: _Prepared) -> Reply:
        if builder.finish_reason is None:
            raise _incomplete_error(builder, prepared, "ended")
        return builder.build(complete=True)


class _EventFeed:
    """bytes -> SSE events -> deltas, with the stream's end and breakage mapped to errors."""

    def __init__(self, builder: ReplyBuilder, prepared: _Prepared) -> None:
        self.decoder = SSEDecoder()
        self.builder = builder
        self.prepared = prepared

    def feed(self, data: bytes) -> list[Delta]:
        return self._apply(self.decoder.decode(data))

    def end(self) -> list[Delta]:
        return self._apply(self.decoder.flush())

    def _apply(self, events: list[Any]) -> list[Delta]:
        deltas = []
        add_event, url = self.builder.add_event, self.prepared.url
        for event in events:
            delta = add_event(event, url)
            if delta is not None:
                deltas.append(delta)
        return deltas

    def broken(self, exc: httpx.TransportError) -> StreamError:
        if isinstance(exc, httpx.TimeoutException):
            why = f"stalled (no data for {self.prepared.settings.timeout:g} s)"
        else:
            why = "was cut off"
        return _incomplete_error(self.builder, self.prepared, why)


class ReplyStream:
    """Iterate it for `Delta`s as they arrive; `reply` is the final (or partial) reply."""

    def __init__(self, builder: ReplyBuilder) -> None:
        self._builder = builder
        self._reply: Reply | None = None
        self._deltas: Any = iter(())

    def __iter__(self) -> Iterator[Delta]:
        return self._deltas

    def __enter__(self) -> ReplyStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop early: the generator's `finally` closes the HTTP response."""
        self._deltas.close()

    @property
    def reply(self) -> Reply:
        """The finished reply, or what arrived so far marked incomplete."""
        if self._reply is not None:
            return self._reply
        return self._builder.build(complete=False, error="The stream was not finished.")


class ChatClient(_ClientBase):
    """Synchronous client. Reuses one connection pool; close it (or use `with`) when done.

    >>> with ChatClient(settings) as client:
    ...     reply = client.send([{"role": "user", "content": "Hi"}])
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        on_retry: Callable[[RetryNotice], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(settings, on_retry=on_retry)
        self._http = httpx.Client(transport=transport, follow_redirects=False)
        self._sleep = sleep

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(
        self,
        messages: list[dict[str, str]],
        *,
        prompt: str = "",
        on_delta: Callable[[Delta], None] | None = None,
        **overrides: Any,
    ) -> Reply:
        """Send and wait for the whole reply; `on_delta` sees each piece of a stream."""
        with self.stream(messages, prompt=prompt, **overrides) as stream:
            for delta in stream:
                if on_delta is not None:
                    on_delta(delta)
            return stream.reply

    def stream(
        self, messages: list[dict[str, str]], *, prompt: str = "", **overrides: Any
    ) -> ReplyStream:
        """Start a request; iterate the result for deltas (a non-streaming call yields one)."""
        prepared = self._prepare(messages, prompt, overrides)
        out = ReplyStream(_builder(prepared))
        out._deltas = self._run(prepared, out)
        return out

    def _run(self, prepared: _Prepared, out: ReplyStream) -> Iterator[Delta]:
        key = prepared.settings.api_key
        while True:
            try:
                response = self._http.send(self._http_request(self._http, prepared), stream=True)
            except httpx.TransportError as exc:
                self._sleep(self._next_attempt(_transport_error(exc, prepared), prepared))
                continue
            try:
                if response.status_code >= 400:
                    response.read()
                    error = _status_error(response, prepared.url, key)
                    self._sleep(self._next_attempt(error, prepared))
                    continue
                if not prepared.stream:
                    body = redact(response.read().decode("utf-8", "replace"), key)
                    out._reply = self._completion(body, out._builder, prepared)
                    yield from _whole(out._reply)
                    return
                feed = _EventFeed(out._builder, prepared)
                try:
                    for data in response.iter_bytes():
                        if not out._builder.done:  # after [DONE], read on to reuse the connection
                            yield from feed.feed(data)
                    if not out._builder.done:
                        yield from feed.end()
                except httpx.TransportError as exc:
                    if not out._builder.done:
                        raise feed.broken(exc) from None
                out._reply = self._finish(out._builder, prepared)
                return
            finally:
                response.close()


def _whole(reply: Reply) -> list[Delta]:
    """A non-streamed reply as the single delta a stream consumer expects."""
    return [Delta(reply.text, reply.reasoning)] if reply.text or reply.reasoning else []


class AsyncReplyStream(ReplyStream):
    """The async twin of `ReplyStream`: `async for delta in stream`, then `stream.reply`."""

    def __aiter__(self) -> AsyncIterator[Delta]:
        return self._deltas

    async def __aenter__(self) -> AsyncReplyStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop early: the generator's `finally` closes the HTTP response."""
        await self._deltas.aclose()

    def close(self) -> None:
        raise TypeError("An async stream is closed with `await stream.aclose()`.")


class AsyncChatClient(_ClientBase):
    """Asynchronous client with the same behaviour as `ChatClient`, for `await` code."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        on_retry: Callable[[RetryNotice], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        limits: httpx.Limits | None = None,
    ) -> None:
        super().__init__(settings, on_retry=on_retry)
        pool = {} if limits is None else {"limits": limits}  # a batch sizes it to its concurrency
        self._http = httpx.AsyncClient(transport=transport, follow_redirects=False, **pool)
        self._sleep = sleep

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncChatClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def send(
        self,
        messages: list[dict[str, str]],
        *,
        prompt: str = "",
        on_delta: Callable[[Delta], None] | None = None,
        **overrides: Any,
    ) -> Reply:
        async with self.stream(messages, prompt=prompt, **overrides) as stream:
            async for delta in stream:
                if on_delta is not None:
                    on_delta(delta)
            return stream.reply

    def stream(
        self, messages: list[dict[str, str]], *, prompt: str = "", **overrides: Any
    ) -> AsyncReplyStream:
        prepared = self._prepare(messages, prompt, overrides)
        out = AsyncReplyStream(_builder(prepared))
        out._deltas = self._run(prepared, out)
        return out

    async def _run(self, prepared: _Prepared, out: AsyncReplyStream) -> AsyncIterator[Delta]:
        key = prepared.settings.api_key
        while True:
            try:
                request = self._http_request(self._http, prepared)
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                await self._sleep(self._next_attempt(_transport_error(exc, prepared), prepared))
                continue
            try:
                if response.status_code >= 400:
                    await response.aread()
                    error = _status_error(response, prepared.url, key)
                    await self._sleep(self._next_attempt(error, prepared))
                    continue
                if not prepared.stream:
                    body = redact((await response.aread()).decode("utf-8", "replace"), key)
                    out._reply = self._completion(body, out._builder, prepared)
                    for delta in _whole(out._reply):
                        yield delta
                    return
                feed = _EventFeed(out._builder, prepared)
                try:
                    async for data in response.aiter_bytes():
                        if not out._builder.done:  # after [DONE], read on to reuse the connection
                            for delta in feed.feed(data):
                                yield delta
                    if not out._builder.done:
                        for delta in feed.end():
                            yield delta
                except httpx.TransportError as exc:
                    if not out._builder.done:
                        raise feed.broken(exc) from None
                out._reply = self._finish(out._builder, prepared)
                return
            finally:
                await response.aclose()
