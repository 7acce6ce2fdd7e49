"""One prompt over many inputs: `ipychat.map(template, items)` and the `Batch` it returns.

Each item is its own one-shot exchange (the system prompt and generation options apply; no
session history is sent or recorded): the template with `{item}` (and, for a DataFrame, each
`{column}`) filled in. Requests run concurrently (`_batchrun`), finished replies are kept in a
SQLite cache (`_cache`) so a re-run sends only what is missing, and a schema makes each reply
a validated value (`_structured`). A `Batch` is the list of replies in input order, with the
per-item facts (attempts, latency, error, cache) and `to_pandas()` for analysis.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from ._batchrun import RATE_LIMIT_TRIES, Limiter, gather_workers, run_in_thread
from ._cache import ReplyCache, default_cache_path, request_key
from ._config import ResolvedSettings, Settings
from ._errors import APIStatusError, ChatError, ConfigError, RequestError, StreamError
from ._interpolate import interpolate
from ._reply import Reply
from ._safetext import one_line
from ._structured import Schema, dialogue, drive_async

__all__ = ["Batch", "BatchInterrupted", "map"]

DEFAULT_CONCURRENCY = 8
_current: contextvars.ContextVar[_Item] = contextvars.ContextVar("ipychat_batch_item")
_RATE_LIMIT_NOTICE = re.compile(r"429 from ")  # how the client words a 429 (RetryNotice.reason)


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a batch; `batch` holds every item that finished before it."""

    def __init__(self, batch: Batch) -> None:
        super().__init__(f"Interrupted: {batch.done} of {len(batch)} items finished.")
        self.batch = batch


@dataclass
class _Item:
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


def _inputs(items: Any) -> tuple[list[tuple[Any, Any, dict[str, Any]]], str]:
    """(label, item, extra names) per input, and the kind: list, dict, series or frame."""
    kind = type(items).__name__
    module = type(items).__module__.split(".")[0]
    if module == "pandas" and kind == "DataFrame":
        rows = items.iterrows()
        return [(label, row, {str(k): v for k, v in row.items()}) for label, row in rows], "frame"
    if module == "pandas" and kind == "Series":
        return [(label, value, {}) for label, value in items.items()], "series"
    if isinstance(items, Mapping):
        return [(key, value, {}) for key, value in items.items()], "dict"
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise ConfigError(
            f"map needs a list, dict, pandas Series or DataFrame of items, "
            f"not {type(items).__name__}."
        )
    return [(index, value, {}) for index, value in enumerate(items)], "list"


class Batch(Sequence[Reply]):
    """The replies of a `map`, in input order; failed items hold a reply with `error` set.

    `failed` maps each failed item's label to its error, `pending` lists items not finished
    (after an interrupt), `retry()` sends those again, and `to_pandas()` gives one row per
    item: the input (a DataFrame's own columns), the schema's fields, the reply's text,
    finish_reason, tokens, latency, attempts, whether it came from the cache, and the error.
    """

    def __init__(self, runner: _Runner, items: list[_Item], kind: str) -> None:
        self._runner = runner
        self._items = items
        self._kind = kind
        self.elapsed = 0.0
        self.interrupted = False
        self.sent = 0  # requests sent by the last run (retries and repairs included)

    # -- the sequence of replies --------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Reply: ...
    @overload
    def __getitem__(self, index: slice) -> list[Reply]: ...
    def __getitem__(self, index: int | slice) -> Reply | list[Reply]:
        if isinstance(index, slice):
            return [self._reply(item) for item in self._items[index]]
        return self._reply(self._items[index])

    def __iter__(self) -> Iterator[Reply]:
        return (self._reply(item) for item in self._items)

    @staticmethod
    def _reply(item: _Item) -> Reply:
        if item.reply is not None:
            return item.reply
        error = item.error or "Not sent: the batch was interrupted first."
        return Reply(prompt=item.prompt, complete=False, error=error)

    # -- what happened ----------------------------------------------------------------------
    @property
    def labels(self) -> list[Any]:
        return [item.label for item in self._items]

    @property
    def done(self) -> int:
        """Items that finished well (sent now or taken from the cache)."""
        return sum(item.ok for item in self._items)

    @property
    def from_cache(self) -> int:
        return sum(item.cached for item in self._items)

    @property
    def failed(self) -> dict[Any, str]:
        """label -> error, for each item that was sent and failed."""
        return {item.label: item.error for item in self._items if item.error is not None}

    @property
    def pending(self) -> list[Any]:
        """Labels of the items not finished (the batch was interrupted before them)."""
        return [item.label for item in self._items if item.reply is None and item.error is None]

    @property
    def tokens(self) -> int:
        return sum(
            (item.reply.usage.total_tokens or 0)
            for item in self._items
            if item.reply is not None and item.reply.usage is not None
        )

    def retry(self, *, progress: str | bool = "auto") -> Batch:
        """Send again only the failed and the unfinished items; returns this batch."""
        todo = [item for item in self._items if not item.ok]
        for item in todo:
            item.reply, item.error, item.attempts, item.rate_limited = None, None, 0, 0
        self._runner.run(self, todo, progress)
        return self

    def summary(self) -> str:
        """One line: done, cached, failed, pending, tokens, time and rate."""
        parts = [f"{self.done} of {len(self)} done"]
        if self.from_cache:
            parts.append(f"{self.from_cache} from the cache")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.pending:
            parts.append(f"{len(self.pending)} not sent")
        parts.append(f"{self.tokens:,} tokens")
        rate = self.sent / self.elapsed if self.elapsed > 0 else 0.0
        parts.append(f"{self.elapsed:.1f} s" + (f" ({rate:.1f} requests/s)" if self.sent else ""))
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"<Batch: {self.summary()}>"

    def _repr_html_(self) -> str:
        from ._progress import summary_html

        return summary_html(self)

    # -- as data ------------------------------------------------------------------------------
    def to_records(self) -> list[dict[str, Any]]:
        """One dict per item (the rows of `to_pandas()`)."""
        schema = self._runner.schema
        columns = schema.columns() if schema is not None else []
        rows = []
        for item in self._items:
            reply = self._reply(item)
            row: dict[str, Any] = {} if self._kind == "frame" else {"input": item.value}
            if columns:
                values = _as_dict(reply.data)
                row.update({name: values.get(name) for name in columns})
            row["text"] = reply.text
            usage = reply.usage
            row.update(
                finish_reason=reply.finish_reason,
                prompt_tokens=usage.prompt_tokens if usage else None,
                completion_tokens=usage.completion_tokens if usage else None,
                latency=reply.elapsed,
                attempts=item.attempts,
                cached=item.cached,
                error=item.error if item.reply is not None or item.error else reply.error,
            )
            rows.append(row)
        return rows

    def to_pandas(self) -> Any:
        """A DataFrame, one row per item, indexed like the input (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Batch.to_pandas() needs pandas: pip install pandas.") from None
        frame = pd.DataFrame(self.to_records(), index=self.labels)
        if self._kind == "frame":  # the input's columns first; a clashing one gets "_input"
            inputs = pd.DataFrame([item.value for item in self._items], index=self.labels)
            inputs = inputs.rename(columns={c: f"{c}_input" for c in inputs if c in frame})
            frame = pd.concat([inputs, frame], axis=1)
        return frame


def _as_dict(data: Any) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    if hasattr(data, "model_dump"):
        return data.model_dump()
    if hasattr(data, "__dataclass_fields__"):
        return dict(vars(data))
    return {}


class _Runner:
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

    def run(self, batch: Batch, todo: list[_Item], progress: str | bool) -> None:
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

    def _from_cache(self, todo: list[_Item]) -> list[_Item]:
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

    async def _send_all(self, todo: list[_Item], counter: collections.Counter[str]) -> None:
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

    async def _one(self, item: _Item, client: Any) -> None:
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
        item: _Item,
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
    async def _take(self, item: _Item) -> None:
        assert self.limiter is not None
        await self.limiter.acquire()
        item.holding = True

    def _give(self, item: _Item, *, ok: bool, tokens: int | None = None) -> None:
        if item.holding and self.limiter is not None:
            item.holding = False
            self.limiter.release(ok=ok, tokens=tokens)

    def _count_attempt(self, item: _Item) -> None:
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


def _cache_for(cache: bool | str | os.PathLike[str] | ReplyCache | None) -> ReplyCache | None:
    if cache is None or cache is False:
        return None
    if isinstance(cache, ReplyCache):
        return cache
    path = default_cache_path() if cache is True else Path(cache)
    try:
        return ReplyCache(path)
    except OSError as exc:
        raise ConfigError(f"{exc} Give another path with cache=, or cache=False.") from None


def _current_settings() -> Settings:
    """With `%load_ext ipychat`: the settings `%chat_config` changed; else the file's."""
    magics = sys.modules.get("ipychat._magics")
    instance = getattr(magics, "_instance", None)
    return instance.settings if instance is not None else Settings.load()


def map(
    template: str,
    items: Any,
    *,
    schema: Any = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    rpm: float | None = None,
    tpm: float | None = None,
    cache: bool | str | os.PathLike[str] | ReplyCache | None = True,
    settings: Settings | None = None,
    namespace: Mapping[str, Any] | None = None,
    progress: str | bool = "auto",
    **options: Any,
) -> Batch:
    """Send `template` once per item, concurrently; return the replies in input order.

    `{item}` in the template is the item (for a DataFrame, the row, and `{column}` its
    column); other `{name}`s come from `namespace`. `options` are settings for these requests
    (model, temperature, max_tokens, system, stream, ...) over `settings` (default: those of
    `%chat_config` when the extension is loaded, else the config file and environment).
    `schema` makes each reply a validated value (`reply.data`). `cache` (default: the user's
    cache folder; a path; False) keeps finished replies, so running the same map again sends
    only what is missing.
    `progress` is "auto", "widget", "text" or False. Ctrl-C raises `BatchInterrupted`,
    whose `batch` holds what finished.
    """
    if not isinstance(template, str) or not template.strip():
        raise ConfigError("The template is empty: write the prompt, with {item} for the item.")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be a whole number of at least 1, not {concurrency!r}.")
    for name, limit in (("rpm", rpm), ("tpm", tpm)):
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int | float)
                                  or limit <= 0):
            raise ConfigError(f"{name} must be a positive number, not {limit!r}.")
    settings = settings if settings is not None else _current_settings()
    options.setdefault("stream", False)  # a batch shows progress, not text: whole replies
    resolved = settings.resolve(**options)  # refuses bad options before anything is sent
    spec = Schema.of(schema) if schema is not None else None
    inputs, kind = _inputs(items)
    base = dict(namespace or {})
    built = []
    for label, value, names in inputs:
        prompt = interpolate(template, {**base, **names, "item": value}).strip()
        messages = [{"role": "system", "content": resolved.system}] if resolved.system else []
        messages.append({"role": "user", "content": prompt})
        shape = {
            "model": resolved.model,
            "messages": messages,
            **resolved.generation_params(),
            **resolved.extra_body,
            "schema": spec.json if spec is not None else None,
        }
        built.append(_Item(label, value, prompt, messages, request_key(resolved.url, shape)))
    runner = _Runner(
        settings, options, resolved, spec, concurrency, rpm, tpm, _cache_for(cache)
    )
    batch = Batch(runner, built, kind)
    runner.run(batch, list(built), progress)
    return batch
