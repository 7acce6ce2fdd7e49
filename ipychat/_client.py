"""The HTTP client: messages in, a streamed or whole `Reply` out, over httpx.

Everything that does not touch the network (building the request, reading error bodies,
deciding whether and when to resend) lives in `_ClientBase` and plain functions shared by the
sync and the async client, so the two loops differ only in `await`. What is resent and what
never is: see `_retry`. A streaming response is always closed, also when the caller stops
iterating (Ctrl-C in a notebook).

The parts: `_request` (what is sent), `_retry` (what is resent), `_transport` and `_status`
(what a failure means, as one line), `_stream` (a stream watched for text: `idle_timeout` and
`on_alive`), `_chunks` (chunks -> reply).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx

from ._answer import body_text, broken_answer, completion, finish, streams
from ._chunks import Delta
from ._config import Settings
from ._errors import APIStatusError, RequestError
from ._reply import Reply
from ._request import Prepared, builder_for, prepare
from ._retry import (
    MAX_RETRY_AFTER,
    ConnectionTrace,
    RetryNotice,
    backoff,
    broke_before_answer,
    log_retry,
    retryable_status,
)
from ._status import redirect_error, status_error
from ._stream import (
    AsyncReplyStream,
    Feed,
    ReplyStream,
    whole,
    without_frames,
    without_frames_async,
)
from ._transport import retryable_transport, transport_error

__all__ = ["MAX_RETRY_AFTER", "AsyncChatClient", "ChatClient", "RetryNotice"]

_JSON_ERRORS = (ValueError, RecursionError)
_monotonic = time.monotonic


def _rejects_stream_options(error: APIStatusError) -> bool:
    return error.status in (400, 422) and "stream_options" in str(error)


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

    def prepare(self, messages: list[dict[str, str]], prompt: str, overrides: Any) -> Prepared:
        """The request a call would send (`--dry-run` shows it), settings resolved and checked."""
        resolved = self.settings.resolve(**overrides)
        return prepare(resolved, messages, prompt, resolved.url not in self._no_usage_option)

    @staticmethod
    def _http_request(
        http: httpx.Client | httpx.AsyncClient, prepared: Prepared, trace: Any
    ) -> httpx.Request:
        prepared.attempts += 1
        timeout = httpx.Timeout(prepared.settings.timeout, read=prepared.read_timeout[0])
        return http.build_request(
            "POST",
            prepared.url,
            json=prepared.body,
            headers=prepared.headers,  # credentials are added by `prepared.auth` at send time
            timeout=timeout,
            extensions={"trace": trace},
        )

    # -- what follows a failure: the wait before resending, or the error raised ----------------
    def _after_transport_error(
        self, exc: httpx.TransportError, trace: ConnectionTrace, prepared: Prepared
    ) -> float:
        if trace.reused and broke_before_answer(exc) and not prepared.fresh_resend:
            prepared.fresh_resend = True  # a pooled connection the server had closed
            return 0.0
        error = transport_error(exc, prepared)
        return self._after_error(error, prepared, retryable_transport(exc))

    def _after_status(self, response: httpx.Response, text: str, prepared: Prepared) -> float:
        status, url = response.status_code, prepared.url
        if status < 400:
            location = prepared.redactor.text(response.headers.get("location") or "")
            error = redirect_error(status, url, location)  # a server may echo a key in it
            raise self._final(error, prepared)
        error = status_error(
            status,
            text,
            url,
            prepared.redactor,
            reason=response.reason_phrase,
            headers=response.headers,
        )
        if _rejects_stream_options(error) and "stream_options" in prepared.body:
            self._no_usage_option.add(url)
            prepared.body.pop("stream_options")
            return 0.0
        return self._after_error(error, prepared, retryable_status(status))

    def _after_error(self, error: RequestError, prepared: Prepared, retryable: bool) -> float:
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
    def _final(error: RequestError, prepared: Prepared) -> RequestError:
        """The error as raised: after several attempts it says how many and how long."""
        error.waited = _monotonic() - prepared.started
        if prepared.retries:
            attempts = prepared.attempts
            error.args = (f"{error} Tried {attempts} times over {error.waited:.1f} s.",)
        return error

    def _resend_unstreamed(self, prepared: Prepared, feed: Feed) -> bool:
        """An empty 200 stream (llama-cpp-python's answer to a prompt too long for it) did no
        work: ask once more without streaming, which gets the server's real error or reply."""
        if feed.received or prepared.unstreamed:
            return False
        prepared.unstreamed = True
        prepared.body["stream"] = False
        prepared.body.pop("stream_options", None)
        prepared.headers.pop("Accept", None)
        return True


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
        prepared = self.prepare(messages, prompt, overrides)
        out = ReplyStream(builder_for(prepared))
        out._deltas = without_frames(self._run(prepared, out, on_alive))
        return out

    def _wait(self, delay: float) -> None:
        if delay > 0:
            self._sleep(delay)

    def _run(
        self, prepared: Prepared, out: ReplyStream, on_alive: Callable[[], None] | None
    ) -> Iterator[Delta]:
        builder = out._builder
        while True:
            if out.aborted:
                raise KeyboardInterrupt
            trace = ConnectionTrace()
            try:
                request = self._http_request(self._http, prepared, trace)
                response = self._http.send(request, stream=True, auth=prepared.auth)
            except httpx.TransportError as exc:
                if out.aborted:
                    raise KeyboardInterrupt from None
                self._wait(self._after_transport_error(exc, trace, prepared))
                continue
            out._response = response
            try:
                if out.aborted:
                    raise KeyboardInterrupt
                if response.status_code >= 300:
                    try:
                        text = body_text(response.read(), prepared)
                    except httpx.TransportError:
                        text = ""
                    self._wait(self._after_status(response, text, prepared))
                    continue
                if not streams(response, prepared):
                    try:
                        text = body_text(response.read(), prepared)
                    except httpx.TransportError as exc:
                        raise self._final(broken_answer(exc, prepared), prepared) from None
                    out._reply = completion(text, builder, prepared)
                    yield from whole(out._reply)
                    return
                feed = Feed(builder, prepared, on_alive)
                feed.alive()
                try:
                    for data in response.iter_bytes():
                        if not builder.done:  # after [DONE], read on to reuse the connection
                            yield from feed.feed(data)
                    if not builder.done:
                        yield from feed.end()
                except httpx.TransportError as exc:
                    if out.aborted:
                        raise KeyboardInterrupt from None
                    if not builder.done:
                        raise feed.broken(exc) from None
                if out.aborted:  # the shut-down socket may read as a clean end
                    raise KeyboardInterrupt
                if self._resend_unstreamed(prepared, feed):
                    continue
                out._reply = finish(builder, prepared)
                return
            except (httpx.TransportError, RequestError):
                if out.aborted:
                    raise KeyboardInterrupt from None
                raise
            finally:
                out._response = None
                response.close()



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
        prepared = self.prepare(messages, prompt, overrides)
        out = AsyncReplyStream(builder_for(prepared))
        out._deltas = without_frames_async(self._run(prepared, out, on_alive))
        return out

    async def _wait(self, delay: float) -> None:
        if delay > 0:
            await self._sleep(delay)

    async def _run(
        self, prepared: Prepared, out: AsyncReplyStream, on_alive: Callable[[], None] | None
    ) -> AsyncIterator[Delta]:
        builder = out._builder
        while True:
            trace = ConnectionTrace()
            try:
                request = self._http_request(self._http, prepared, trace.async_call)
                response = await self._http.send(request, stream=True, auth=prepared.auth)
            except httpx.TransportError as exc:
                await self._wait(self._after_transport_error(exc, trace, prepared))
                continue
            try:
                if response.status_code >= 300:
                    try:
                        text = body_text(await response.aread(), prepared)
                    except httpx.TransportError:
                        text = ""
                    await self._wait(self._after_status(response, text, prepared))
                    continue
                if not streams(response, prepared):
                    try:
                        text = body_text(await response.aread(), prepared)
                    except httpx.TransportError as exc:
                        raise self._final(broken_answer(exc, prepared), prepared) from None
                    out._reply = completion(text, builder, prepared)
                    for delta in whole(out._reply):
                        yield delta
                    return
                feed = Feed(builder, prepared, on_alive)
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
                out._reply = finish(builder, prepared)
                return
            finally:
                await response.aclose()
