"""The HTTP client: messages in, a streamed or whole `Reply` out, over httpx.

Everything that does not touch the network (building the request, reading error bodies,
deciding whether and when to resend) lives in `_ClientBase` and plain functions shared by the
sync and the async client, so the two loops differ only in `await`. What is resent and what
never is: see `_retry`. A streaming response is always closed, also when the caller stops
iterating (Ctrl-C in a notebook).

A stream is watched for text, not just for bytes: keep-alive comments (`: ping`), role-only
and empty chunks prove the server is alive (`on_alive` is called for them) but not that a
reply is coming, so after `idle_timeout` seconds without text the stream ends with an error.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from ._chunks import Delta, ReplyBuilder
from ._config import ResolvedSettings, Settings
from ._errors import APIStatusError, ConnectError, RequestError, StreamError, TimeoutError
from ._reply import Reply
from ._retry import (
    MAX_RETRY_AFTER,
    ConnectionTrace,
    RetryNotice,
    backoff,
    broke_before_answer,
    log_retry,
    retryable_status,
)
from ._safetext import one_line
from ._secrets import redact
from ._sse import SSEDecoder
from ._status import excerpt, redirect_error, status_error

__all__ = ["AsyncChatClient", "ChatClient", "RetryNotice"]

USER_AGENT = "ipychat/0.1"
_JSON_ERRORS = (ValueError, RecursionError)
_monotonic = time.monotonic


@dataclass
class _Prepared:
    """One call's request and what happened to it so far, across its attempts."""

    settings: ResolvedSettings
    body: dict[str, Any]
    headers: dict[str, str] = field(repr=False)  # holds the key in Authorization
    prompt: str
    retries: int = 0  # retries made so far (silent resends are not retries)
    attempts: int = 0  # requests sent
    fresh_resend: bool = False  # the one silent resend after a stale pooled connection is used
    unstreamed: bool = False  # asked again without streaming after an empty stream
    started: float = field(default_factory=_monotonic)
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = self.settings.url  # computed once: it is read for every event

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


def _reason(exc: Exception) -> str:
    return one_line(str(exc) or type(exc).__name__, 120)


def _transport_error(exc: httpx.TransportError, prepared: _Prepared) -> RequestError:
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
        return ConnectError(
            f"The connection to {url} broke before an answer ({_reason(exc)}). Try again; if it "
            "keeps happening, check that base_url is an OpenAI-compatible endpoint.",
            url=url,
            setting="base_url",
        )
    if isinstance(exc, httpx.RemoteProtocolError):
        return ConnectError(
            f"{url} did not answer in HTTP ({_reason(exc)}). Check that base_url is an "
            "OpenAI-compatible endpoint.",
            url=url,
            setting="base_url",
        )
    if isinstance(exc, httpx.ProtocolError | httpx.UnsupportedProtocol):
        return ConnectError(
            f"Could not send the request to {url} ({_reason(exc)}). Check base_url and "
            "extra_headers.",
            url=url,
            setting="base_url",
        )
    return ConnectError(
        f"Could not connect to {url} ({_reason(exc)}). Check that the server is running and "
        "base_url is right; for the bundled server run `python -m ipychat serve`.",
        url=url,
        setting="base_url",
    )


def _retryable_transport(exc: httpx.TransportError) -> bool:
    """No connection, or a connection that broke before any byte: the server did no work."""
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return True
    if isinstance(exc, httpx.TimeoutException | httpx.ProtocolError | httpx.UnsupportedProtocol):
        return broke_before_answer(exc)
    return isinstance(exc, httpx.ConnectError | httpx.ProxyError) or broke_before_answer(exc)


def _rejects_stream_options(error: APIStatusError) -> bool:
    return error.status in (400, 422) and "stream_options" in str(error)


def _builder(prepared: _Prepared) -> ReplyBuilder:
    return ReplyBuilder(
        prompt=prepared.prompt, params=prepared.reply_params(), secret=prepared.settings.api_key
    )


def _incomplete_error(
    builder: ReplyBuilder,
    prepared: _Prepared,
    why: str,
    *,
    setting: str | None = None,
    suggested: str | None = None,
    then: str = "",
) -> StreamError:
    got = "after part of the reply" if builder.has_content else "before any reply"
    message = f"The stream from {prepared.url} {why} {got}{then}"
    if not builder.has_content and builder.warnings:
        message += f" ({builder.warnings[0].rstrip('.')})"
    message += "."
    return StreamError(
        message,
        url=prepared.url,
        reply=builder.build(complete=False, error=message),
        setting=setting,
        suggested=suggested,
    )


class _Feed:
    """bytes -> SSE events -> deltas, watching for text: the streaming loop's one helper."""

    def __init__(
        self, builder: ReplyBuilder, prepared: _Prepared, on_alive: Callable[[], None] | None
    ) -> None:
        decoder = SSEDecoder()
        self.decode = decoder.feed
        self.decode_end = decoder.feed_end
        self.add_events = builder.add_events
        self.builder = builder
        self.prepared = prepared
        self.url = prepared.url
        self.on_alive = on_alive
        self.idle_timeout = prepared.settings.idle_timeout
        self.last_text = _monotonic()
        self.received = False  # any byte of the body

    def feed(self, data: bytes) -> list[Delta]:
        self.received = True
        deltas = self.add_events(self.decode(data), self.url)
        if deltas:
            self.last_text = _monotonic()
        else:
            self.alive()
        return deltas

    def end(self) -> list[Delta]:
        return self.add_events(self.decode_end(), self.url)

    def alive(self) -> None:
        """Bytes without text: the server is alive; end the stream once that is all for long."""
        if _monotonic() - self.last_text > self.idle_timeout:
            seconds = self.idle_timeout
            raise _incomplete_error(
                self.builder,
                self.prepared,
                f"sent only keep-alives and no text for {seconds:g} s",
                setting="idle_timeout",
                suggested=f"{seconds * 2:g}",
                then=f": stopped waiting (idle_timeout={seconds:g})",
            )
        if self.on_alive is not None:
            self.on_alive()

    def broken(self, exc: httpx.TransportError) -> StreamError:
        if isinstance(exc, httpx.TimeoutException):
            seconds, setting = self.prepared.read_timeout
            return _incomplete_error(
                self.builder,
                self.prepared,
                f"stalled (no data for {seconds:g} s)"
                if setting == "timeout"
                else f"stalled (no data for {seconds:g} s, {setting})",
                setting=setting,
                suggested=f"{max(seconds * 2, 120):g}",
            )
        # The server had answered, so it may be generating: resending could pay for it twice.
        then = "" if self.builder.has_content else "; not resent, as the server may have started"
        return _incomplete_error(self.builder, self.prepared, "was cut off", then=then)


class _ClientBase:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        on_retry: Callable[[RetryNotice], None] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings.load()
        self.on_retry = on_retry or log_retry
        self._no_usage_option: set[str] = set()  # URLs that refused `stream_options`

    def _prepare(self, messages: list[dict[str, str]], prompt: str, overrides: Any) -> _Prepared:
        resolved = self.settings.resolve(**overrides)
        return _prepare(resolved, messages, prompt, resolved.url not in self._no_usage_option)

    @staticmethod
    def _http_request(
        http: httpx.Client | httpx.AsyncClient, prepared: _Prepared, trace: Any
    ) -> httpx.Request:
        prepared.attempts += 1
        timeout = httpx.Timeout(prepared.settings.timeout, read=prepared.read_timeout[0])
        return http.build_request(
            "POST",
            prepared.url,
            json=prepared.body,
            headers=prepared.headers,
            timeout=timeout,
            extensions={"trace": trace},
        )

    # -- what follows a failure: the wait before resending, or the error raised ----------------
    def _after_transport_error(
        self, exc: httpx.TransportError, trace: ConnectionTrace, prepared: _Prepared
    ) -> float:
        if trace.reused and broke_before_answer(exc) and not prepared.fresh_resend:
            prepared.fresh_resend = True  # a pooled connection the server had closed
            return 0.0
        error = _transport_error(exc, prepared)
        return self._after_error(error, prepared, _retryable_transport(exc))

    def _after_status(self, response: httpx.Response, text: str, prepared: _Prepared) -> float:
        status, url = response.status_code, prepared.url
        if status < 400:
            error = redirect_error(status, url, response.headers.get("location"))
            raise self._final(error, prepared)
        key = prepared.settings.api_key
        error = status_error(
            status, text, url, key, reason=response.reason_phrase, headers=response.headers
        )
        if _rejects_stream_options(error) and "stream_options" in prepared.body:
            self._no_usage_option.add(url)
            prepared.body.pop("stream_options")
            return 0.0
        return self._after_error(error, prepared, retryable_status(status))

    def _after_error(self, error: RequestError, prepared: _Prepared, retryable: bool) -> float:
        max_retries = prepared.settings.max_retries
        if not retryable or prepared.retries >= max_retries:
            raise self._final(error, prepared)
        delay = getattr(error, "retry_after", None)
        if delay is None:
            delay = backoff(prepared.retries + 1)
        elif delay > MAX_RETRY_AFTER:
            raise self._final(error, prepared)
        prepared.retries += 1
        reason = str(error).split(". ")[0].split("; ")[0]
        self.on_retry(RetryNotice(prepared.retries, max_retries, delay, reason))
        return delay

    @staticmethod
    def _final(error: RequestError, prepared: _Prepared) -> RequestError:
        """The error as raised: after several attempts it says how many and how long."""
        error.waited = _monotonic() - prepared.started
        if prepared.retries:
            attempts = prepared.attempts
            error.args = (f"{error} Tried {attempts} times over {error.waited:.1f} s.",)
        return error

    def _resend_unstreamed(self, prepared: _Prepared, feed: _Feed) -> bool:
        """An empty 200 stream (llama-cpp-python's answer to a prompt too long for it) did no
        work: ask once more without streaming, which gets the server's real error or reply."""
        if feed.received or prepared.unstreamed:
            return False
        prepared.unstreamed = True
        prepared.body["stream"] = False
        prepared.body.pop("stream_options", None)
        prepared.headers.pop("Accept", None)
        return True

    # -- answers -------------------------------------------------------------------------------
    @staticmethod
    def _streams(response: httpx.Response, prepared: _Prepared) -> bool:
        """Read as a stream, or as one JSON body (also when a server answers `stream` so)."""
        return prepared.stream and "json" not in response.headers.get("content-type", "")

    @staticmethod
    def _text(data: bytes, prepared: _Prepared) -> str:
        """A whole body as text, the key masked before any frame holds it (servers echo it)."""
        return redact(data.decode("utf-8", "replace"), prepared.settings.api_key)

    @staticmethod
    def _completion(text: str, builder: ReplyBuilder, prepared: _Prepared) -> Reply:
        try:
            body = json.loads(text)
        except _JSON_ERRORS:
            raise APIStatusError(
                f"200 from {prepared.url}, but the body is not JSON: "
                f"{excerpt(text) if text.strip() else 'an empty body'}. "
                "Check that base_url is an OpenAI-compatible endpoint.",
                url=prepared.url,
                status=200,
                setting="base_url",
            ) from None
        builder.add_completion(body, prepared.url)
        return builder.build()

    def _broken_answer(self, exc: httpx.TransportError, prepared: _Prepared) -> RequestError:
        """The connection broke while a whole (not streamed) answer was arriving."""
        what = "stalled" if isinstance(exc, httpx.TimeoutException) else "broke off"
        error = StreamError(
            f"The answer from {prepared.url} {what} ({_reason(exc)}); not resent, as the "
            "server had started answering. Try again.",
            url=prepared.url,
        )
        return self._final(error, prepared)

    @staticmethod
    def _finish(builder: ReplyBuilder, prepared: _Prepared) -> Reply:
        if builder.finish_reason is None:
            raise _incomplete_error(builder, prepared, "ended")
        return builder.build(complete=True)


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
        on_alive: Callable[[], None] | None = None,
        **overrides: Any,
    ) -> Reply:
        """Send and wait for the whole reply; `on_delta` sees each piece of a stream."""
        with self.stream(messages, prompt=prompt, on_alive=on_alive, **overrides) as stream:
            for delta in stream:
                if on_delta is not None:
                    on_delta(delta)
            return stream.reply

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        prompt: str = "",
        on_alive: Callable[[], None] | None = None,
        **overrides: Any,
    ) -> ReplyStream:
        """Start a request; iterate the result for deltas (a non-streaming call yields one).

        `on_alive()` is called whenever bytes arrive that carry no text (the answer's headers,
        keep-alive comments, role-only chunks): the server is working, the reply is not here.
        """
        prepared = self._prepare(messages, prompt, overrides)
        out = ReplyStream(_builder(prepared))
        out._deltas = self._run(prepared, out, on_alive)
        return out

    def _wait(self, delay: float) -> None:
        if delay > 0:
            self._sleep(delay)

    def _run(
        self, prepared: _Prepared, out: ReplyStream, on_alive: Callable[[], None] | None
    ) -> Iterator[Delta]:
        builder = out._builder
        while True:
            trace = ConnectionTrace()
            try:
                request = self._http_request(self._http, prepared, trace)
                response = self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                self._wait(self._after_transport_error(exc, trace, prepared))
                continue
            try:
                if response.status_code >= 300:
                    try:
                        text = self._text(response.read(), prepared)
                    except httpx.TransportError:
                        text = ""
                    self._wait(self._after_status(response, text, prepared))
                    continue
                if not self._streams(response, prepared):
                    try:
                        text = self._text(response.read(), prepared)
                    except httpx.TransportError as exc:
                        raise self._broken_answer(exc, prepared) from None
                    out._reply = self._completion(text, builder, prepared)
                    yield from _whole(out._reply)
                    return
                feed = _Feed(builder, prepared, on_alive)
                feed.alive()
                try:
                    for data in response.iter_bytes():
                        if not builder.done:  # after [DONE], read on to reuse the connection
                            yield from feed.feed(data)
                    if not builder.done:
                        yield from feed.end()
                except httpx.TransportError as exc:
                    if not builder.done:
                        raise feed.broken(exc) from None
                if self._resend_unstreamed(prepared, feed):
                    continue
                out._reply = self._finish(builder, prepared)
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
        on_alive: Callable[[], None] | None = None,
        **overrides: Any,
    ) -> Reply:
        async with self.stream(messages, prompt=prompt, on_alive=on_alive, **overrides) as stream:
            async for delta in stream:
                if on_delta is not None:
                    on_delta(delta)
            return stream.reply

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        prompt: str = "",
        on_alive: Callable[[], None] | None = None,
        **overrides: Any,
    ) -> AsyncReplyStream:
        prepared = self._prepare(messages, prompt, overrides)
        out = AsyncReplyStream(_builder(prepared))
        out._deltas = self._run(prepared, out, on_alive)
        return out

    async def _wait(self, delay: float) -> None:
        if delay > 0:
            await self._sleep(delay)

    async def _run(
        self, prepared: _Prepared, out: AsyncReplyStream, on_alive: Callable[[], None] | None
    ) -> AsyncIterator[Delta]:
        builder = out._builder
        while True:
            trace = ConnectionTrace()
            try:
                request = self._http_request(self._http, prepared, trace.async_call)
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                await self._wait(self._after_transport_error(exc, trace, prepared))
                continue
            try:
                if response.status_code >= 300:
                    try:
                        text = self._text(await response.aread(), prepared)
                    except httpx.TransportError:
                        text = ""
                    await self._wait(self._after_status(response, text, prepared))
                    continue
                if not self._streams(response, prepared):
                    try:
                        text = self._text(await response.aread(), prepared)
                    except httpx.TransportError as exc:
                        raise self._broken_answer(exc, prepared) from None
                    out._reply = self._completion(text, builder, prepared)
                    for delta in _whole(out._reply):
                        yield delta
                    return
                feed = _Feed(builder, prepared, on_alive)
                feed.alive()
                try:
                    async for data in response.aiter_bytes():
                        if not builder.done:  # after [DONE], read on to reuse the connection
                            for delta in feed.feed(data):
                                yield delta
                    if not builder.done:
                        for delta in feed.end():
                            yield delta
                except httpx.TransportError as exc:
                    if not builder.done:
                        raise feed.broken(exc) from None
                if self._resend_unstreamed(prepared, feed):
                    continue
                out._reply = self._finish(builder, prepared)
                return
            finally:
                await response.aclose()
