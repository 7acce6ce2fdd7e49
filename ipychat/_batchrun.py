"""Sending a batch: bounded concurrency that backs off together when the server says 429.

Requests go out through one `AsyncChatClient` (one connection pool, sized to the concurrency)
on an event loop in a worker thread, so `ipychat.map` works the same in a plain script and
inside a Jupyter kernel, whose own loop is already running, and the calling thread stays free
to draw progress and to take Ctrl-C. An interrupt cancels the loop's tasks: requests in flight
are abandoned (their connections closed), finished items stay finished.

Rate limits are shared, so they are handled for the whole batch (`Limiter`): a 429 halves the
number of requests allowed in flight (once per `Retry-After` window) and pauses new ones for
the time the server asked; each success adds back 1/limit (additive increase, multiplicative
decrease). Every other fault is the client's business: `retry_delay` from `_client` decides,
per item, whether and when to send again, so the batch follows exactly the rules of `%%chat`
and never re-sends work the server may already have done.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

__all__ = ["Limiter", "run_in_thread"]

RATE_LIMIT_TRIES = 8  # 429s one item may meet before it is recorded as failed
DEFAULT_PAUSE = 1.0  # seconds to hold new requests after a 429 that named no wait


class Limiter:
    """How many requests may be in flight now, and when the next may start (rpm, tpm).

    Used from the batch's event loop only, so it needs no lock; waiters sleep on an event that
    every change replaces.
    """

    def __init__(
        self,
        ceiling: int,
        *,
        rpm: float | None = None,
        tpm: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.rpm = rpm
        self.tpm = tpm
        self.clock = clock
        self.in_flight = 0
        self.max_in_flight = 0
        self.throttled = 0  # 429s seen
        self.lowest = float(ceiling)  # the smallest limit reached
        self._paused_until = 0.0
        self._calm_after = 0.0  # no second decrease before this: one burst of 429s counts once
        self._last_start = -1e9
        self._tokens: collections.deque[tuple[float, int]] = collections.deque()
        self._finished = 0
        self._token_total = 0
        self._wake: asyncio.Event | None = None

    def _changed(self) -> None:
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    def _wait_needed(self, now: float) -> float:
        """Seconds until a request may start, ignoring the in-flight count."""
        wait = self._paused_until - now
        if self.rpm:
            wait = max(wait, self._last_start + 60.0 / self.rpm - now)
        if self.tpm and self._finished:
            while self._tokens and self._tokens[0][0] <= now - 60.0:
                self._tokens.popleft()
            expected = self._token_total / self._finished
            used = sum(count for _, count in self._tokens)
            if self._tokens and used + expected > self.tpm:
                wait = max(wait, self._tokens[0][0] + 60.0 - now)
        return wait

    async def acquire(self) -> None:
        while True:
            wait = self._wait_needed(self.clock())
            if wait <= 0 and self.in_flight < max(1, int(self.limit)):
                break
            if self._wake is None:
                self._wake = asyncio.Event()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait if wait > 0 else None)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self._last_start = self.clock()

    def release(self, *, ok: bool, tokens: int | None = None) -> None:
        self.in_flight -= 1
        if ok:
            self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)
        if tokens is not None:
            self._tokens.append((self.clock(), tokens))
            self._finished += 1
            self._token_total += tokens
        self._changed()

    def throttle(self, retry_after: float | None) -> None:
        """A 429: fewer in flight, and no new request before the server's wait is over."""
        now = self.clock()
        pause = DEFAULT_PAUSE if retry_after is None else retry_after
        self.throttled += 1
        if now >= self._calm_after:
            self.limit = max(1.0, self.limit / 2)
            self.lowest = min(self.lowest, self.limit)
            self._calm_after = now + max(pause, 0.05)
        self._paused_until = max(self._paused_until, now + pause)
        self._changed()


def run_in_thread(
    make: Callable[[], Coroutine[Any, Any, Any]],
    *,
    tick: Callable[[], None] | None = None,
    interval: float = 0.1,
) -> Any:
    """Run `make()` on a fresh event loop in a worker thread; call `tick` every `interval`.

    A KeyboardInterrupt in the calling thread cancels the coroutine, waits (up to a second)
    for it to unwind, and is raised again, so Ctrl-C stops a batch within a second.
    """
    started, unwound = threading.Event(), threading.Event()
    loop = asyncio.new_event_loop()

    async def main() -> Any:
        try:
            return await make()
        finally:
            unwound.set()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        loop.run_forever()

    thread = threading.Thread(target=serve, name="ipychat-batch", daemon=True)
    thread.start()
    started.wait()
    future = asyncio.run_coroutine_threadsafe(main(), loop)
    try:
        while True:
            try:
                result = future.result(timeout=interval)
                break
            except concurrent.futures.TimeoutError:
                if tick is not None:
                    tick()
    except BaseException:
        future.cancel()
        unwound.wait(timeout=1.0)  # requests in flight are cancelled, connections closed
        raise
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=1.0)
        if not thread.is_alive():
            loop.close()
    return result


async def gather_workers(count: int, work: Callable[[], Awaitable[None]]) -> None:
    """Run `count` copies of `work`; the first error (or a cancel) cancels the others."""
    tasks = [asyncio.ensure_future(work()) for _ in range(count)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
