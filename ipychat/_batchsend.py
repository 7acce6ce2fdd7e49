"""Sending a batch's items: one task per in-flight item, each request through the limiter.

`Runner` holds everything that shapes the requests (settings, schema, cache, limits) and runs
the items that are not in the cache on the event loop of `_batchrun.run_in_thread`. The client
retries each request by its own rules; the runner only adds what a batch needs on top: a slot
from the shared `Limiter` for every try (given up while the client waits to retry), a 429 that
slows everyone, and the per-item record (attempts, error, cache).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._batchrun import RATE_LIMIT_TRIES, Limiter, gather_workers, run_in_thread
from ._cache import ReplyCache
from ._config import Settings
from ._errors import APIStatusError, ChatError, RequestError, StreamError
from ._reply import Reply
from ._resolved import ResolvedSettings
from ._safetext import one_line
from ._structured import Schema, dialogue, drive_async

if TYPE_CHECKING:
    from ._batch import Batch

__all__ = ["BatchInterrupted", "Item", "Runner"]

class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a batch; `batch` holds every item that finished before it."""

    def __init__(self, batch: Batch) -> None:
        super().__init__(f"Interrupted: {batch.done} of {len(batch)} items finished.")
        self.batch = batch


@dataclass
class Item:
    """One input and what became of it."""

    label: Any  # the index label: position, dict key, Series/DataFrame index
    value: Any
    prompt: str
    messages: list[dict[str, str]]
    key: str  # the cache key
    reply: Reply | None = None
    attempts: int = 0
    rate_limited: int = 0
    cached: bool = False
    error: str | None = None
    holding: bool = False  # holds one of the limiter's in-flight slots
    @property
    def ok(self) -> bool:
        return self.reply is not None and self.error is None


_current: contextvars.ContextVar[Item] = contextvars.ContextVar("ipychat_batch_item")
_RATE_LIMIT_NOTICE = re.compile(r"429 from ")  # how the client words a 429 (RetryNotice.reason)


class Runner:
    """Everything that shapes the batch's requests, and the loop that sends them."""

    def __init__(
        self,
        settings: Settings,
        overrides: dict[str, Any],
        resolved: ResolvedSettings,
        schema: Schema | None,
        concurrency: int,
        rpm: float | None,
        tpm: float | None,
        cache: ReplyCache | None,
    ) -> None:
        self.settings = settings
        self.resolved = resolved
        self.schema = schema
        self.concurrency = concurrency
        self.rpm = rpm
        self.tpm = tpm
        self.cache = cache
        self.request = dict(overrides)
        self.stopped = False
        self.counter = collections.Counter[str]()
        self.limiter: Limiter | None = None
        # What a cached reply reports as its request (never the key; as Reply.params does).
        self.params = {
            "model": resolved.model,
            **resolved.generation_params(),
            **resolved.extra_body,
            "url": resolved.url,
        }

    def run(self, batch: Batch, todo: list[Item], progress: str | bool) -> None:
        from ._progress import make_progress

        started = time.perf_counter()
        self.stopped = False
        todo = self._from_cache(todo)
        counter = collections.Counter[str]()
        self.limiter = Limiter(self.concurrency, rpm=self.rpm, tpm=self.tpm)
        view = make_progress(progress, batch, self.limiter, counter)
        try:
            if todo:
                run_in_thread(lambda: self._send_all(todo, counter), tick=view.update)
        except KeyboardInterrupt:
            self.stopped = True  # a request finishing while the loop unwinds is not taken
            batch.interrupted = True
            raise BatchInterrupted(batch) from None
        finally:
            batch.elapsed = time.perf_counter() - started
            batch.sent = counter["sent"]
            view.finish()

    def _from_cache(self, todo: list[Item]) -> list[Item]:
        if self.cache is None:
            return todo
        left = []
        for item in todo:
            reply = self.cache.get(item.key)
            if reply is not None and self.schema is not None:
                reply.data, problem = self.schema.validate(reply.data)
                reply = None if problem else reply
            if reply is None:
                left.append(item)
                continue
            reply.prompt, reply.params = item.prompt, {**self.params}
            item.reply, item.cached = reply, True
        return left

    async def _send_all(self, todo: list[Item], counter: collections.Counter[str]) -> None:
        import httpx

        from ._client import AsyncChatClient

        self.counter = counter
        queue = collections.deque(todo)
        limits = httpx.Limits(
            max_connections=self.concurrency, max_keepalive_connections=self.concurrency
        )
        client = AsyncChatClient(
            self.settings, limits=limits, on_retry=self._on_retry, sleep=self._between_tries
        )
        async with client:

            async def work() -> None:
                while queue:
                    await self._one(queue.popleft(), client)

            await gather_workers(min(self.concurrency, len(todo)), work)

    async def _one(self, item: Item, client: Any) -> None:
        async def send(messages: list[dict[str, str]], extra_body: dict[str, Any]) -> Reply:
            return await self._attempts(item, client, messages, extra_body)

        _current.set(item)  # each item runs in its own task, so its own context
        extra_body = dict(self.resolved.extra_body)
        try:
            if self.schema is None:
                reply = await send(item.messages, extra_body)
            else:
                talk = dialogue(item.messages, self.schema, self.resolved.url, extra_body)
                reply = await drive_async(talk, send)
        except ChatError as exc:
            item.error = one_line(str(exc))
            partial = getattr(exc, "reply", None)
            item.reply = partial if isinstance(partial, Reply) else None
            self.counter["failed"] += 1
            return
        if self.stopped:
            return
        item.reply = reply
        if reply.error is not None:  # a reply that did not match the schema, even repaired
            item.error = reply.error
            self.counter["failed"] += 1
            return
        self.counter["done"] += 1
        if self.cache is not None and reply.complete:
            self.cache.put(item.key, reply, reply.json() if self.schema is not None else None)

    async def _attempts(
        self,
        item: Item,
        client: Any,
        messages: list[dict[str, str]],
        extra_body: dict[str, Any],
    ) -> Reply:
        """One request of an item; the client retries by its rules, 429s come back here too."""
        from ._client import MAX_RETRY_AFTER

        limiter = self.limiter
        assert limiter is not None
        while True:
            await self._take(item)
            self._count_attempt(item)
            try:
                reply = await client.send(
                    messages, prompt=item.prompt, **{**self.request, "extra_body": extra_body}
                )
            except RequestError as exc:
                self._give(item, ok=False)
                wait = getattr(exc, "retry_after", None)
                if _rate_limited(exc) and item.rate_limited < RATE_LIMIT_TRIES and (
                    wait is None or wait <= MAX_RETRY_AFTER
                ):  # the server did no work: safe to send again, when the batch may
                    item.rate_limited += 1
                    limiter.throttle(wait)
                    continue
                raise
            except BaseException:  # cancelled: free the slot
                self._give(item, ok=False)
                raise
            usage = reply.usage
            self._give(item, ok=True, tokens=usage.total_tokens if usage else None)
            self.counter["tokens"] += (usage.total_tokens or 0) if usage else 0
            return reply

    # -- the batch's hold on the client's retries ----------------------------------------------
    async def _take(self, item: Item) -> None:
        assert self.limiter is not None
        await self.limiter.acquire()
        item.holding = True

    def _give(self, item: Item, *, ok: bool, tokens: int | None = None) -> None:
        if item.holding and self.limiter is not None:
            item.holding = False
            self.limiter.release(ok=ok, tokens=tokens)

    def _count_attempt(self, item: Item) -> None:
        item.attempts += 1
        self.counter["sent"] += 1

    def _on_retry(self, notice: Any) -> None:
        """The client is about to send an item again: count it; a 429 slows the whole batch."""
        item = _current.get(None)
        if item is None or self.limiter is None:
            return
        self._count_attempt(item)
        if _RATE_LIMIT_NOTICE.match(notice.reason):
            item.rate_limited += 1
            self.limiter.throttle(notice.delay)

    async def _between_tries(self, delay: float) -> None:
        """The client's wait before a retry: the item gives up its slot, then queues for one."""
        item = _current.get(None)
        if item is None:
            await asyncio.sleep(delay)
            return
        self._give(item, ok=False)
        await asyncio.sleep(delay)
        await self._take(item)


def _rate_limited(exc: RequestError) -> bool:
    return isinstance(exc, APIStatusError) and not isinstance(exc, StreamError) and (
        exc.status == 429
    )
