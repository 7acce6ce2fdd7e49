"""One prompt over many inputs: `ipychat.map(template, items)` and the `Batch` it returns.

Each item is its own one-shot exchange (the system prompt and generation options apply; no
session history is sent or recorded): the template with `{item}` (and, for a DataFrame, each
`{column}`) filled in. Requests run concurrently (`_batchsend`, `_batchrun`), finished replies
are kept in a SQLite cache (`_cache`) so a re-run sends only what is missing, and a schema
makes each reply a validated value (`_structured`). A `Batch` is the list of replies in input
order, with the per-item facts (attempts, latency, error, cache) and `to_pandas()`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

from ._batchsend import BatchInterrupted, Item, Runner
from ._cache import ReplyCache, default_cache_path, request_key
from ._config import Settings
from ._errors import ConfigError
from ._interpolate import interpolate
from ._reply import Reply
from ._structured import Schema

__all__ = ["Batch", "BatchInterrupted", "map"]

DEFAULT_CONCURRENCY = 8


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

    def __init__(self, runner: Runner, items: list[Item], kind: str) -> None:
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
    def _reply(item: Item) -> Reply:
        if item.reply is not None:
            return item.reply
        error = item.error or "Not sent: the batch was interrupted first."
        return Reply(prompt=item.prompt, complete=False, error=error)

    # -- what happened ----------------------------------------------------------------------
    @property
    def labels(self) -> list[Any]:
        return [item.label for item in self._items]

    @property
    def attempts(self) -> list[int]:
        """Requests sent per item by the last run (retries, refusals and repairs included)."""
        return [item.attempts for item in self._items]

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
        built.append(Item(label, value, prompt, messages, request_key(resolved.url, shape)))
    runner = Runner(
        settings, options, resolved, spec, concurrency, rpm, tpm, _cache_for(cache)
    )
    batch = Batch(runner, built, kind)
    runner.run(batch, list(built), progress)
    return batch
