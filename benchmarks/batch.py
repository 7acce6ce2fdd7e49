"""`ipychat.map` against a hand-written `openai.AsyncOpenAI` + `asyncio.Semaphore` loop.

Both send the same `items` one-shot requests at the same concurrency to the bundled server in
its own process, which waits `delay` seconds before each answer, so the ideal wall time is
`items × delay / concurrency`. Measured: wall time, and this process's CPU per request (all
threads: ipychat's loop thread included). The clients take turns run by run. ipychat runs
without cache and progress, as the loop does; openai is in the `bench` extra.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ipychat import Settings
from ipychat import map as batch_map

from .common import API_KEY, MODEL, Goal, Section, ServerProcess, Spread, Stopwatch

__all__ = ["run"]

CONCURRENCY = 16
DELAY = 0.02  # seconds the server takes per answer
WALL_GOAL = 1.25  # ipychat's wall time at most this times the hand-written loop's


def _prompts(items: int) -> list[str]:
    return [f"Classify ticket {n}" for n in range(items)]


def _ipychat(base_url: str, prompts: list[str]) -> int:
    settings = Settings()
    settings.set(base_url=base_url, model=MODEL, api_key=API_KEY)
    batch = batch_map(
        "{item}", prompts, settings=settings, concurrency=CONCURRENCY, cache=False, progress=False
    )
    return batch.done


def _openai(base_url: str, prompts: list[str]) -> int:
    import openai

    async def main() -> int:
        limit = asyncio.Semaphore(CONCURRENCY)
        async with openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY) as client:

            async def one(prompt: str) -> str:
                async with limit:
                    done = await client.chat.completions.create(
                        model=MODEL, messages=[{"role": "user", "content": prompt}]
                    )
                return done.choices[0].message.content or ""

            replies = await asyncio.gather(*(one(p) for p in prompts))
        return sum(bool(r) for r in replies)

    return asyncio.run(main())


def run(items: int, repeat: int) -> Section:
    """`repeat` runs of `items` requests per client."""
    try:
        import openai  # noqa: F401
    except ImportError:
        clients = {"ipychat": _ipychat}
    else:
        clients = {"ipychat": _ipychat, "openai": _openai}
    prompts = _prompts(items)
    samples: dict[str, dict[str, list[float]]] = {
        name: {"wall_s": [], "cpu_s": [], "done": []} for name in clients
    }
    with ServerProcess(first_token_delay=DELAY) as base_url:
        for client in clients.values():  # warm-up: imports, first connections
            client(base_url, prompts[: CONCURRENCY * 2])
        for index in range(repeat):
            names = list(clients)
            for name in names[index % len(names) :] + names[: index % len(names)]:
                with Stopwatch() as watch:
                    done = clients[name](base_url, prompts)
                samples[name]["wall_s"].append(watch.wall)
                samples[name]["cpu_s"].append(watch.cpu)
                samples[name]["done"].append(done)
    ideal = items * DELAY / CONCURRENCY
    rows = []
    data: dict[str, Any] = {"items": items, "concurrency": CONCURRENCY, "delay_s": DELAY,
                            "repeat": repeat, "ideal_wall_s": ideal, "samples": samples}
    for name in clients:
        wall = Spread.of(samples[name]["wall_s"])
        cpu = Spread.of([c / items for c in samples[name]["cpu_s"]])
        vs_ideal = Spread.of([w / ideal for w in samples[name]["wall_s"]])
        per_request = cpu.format(scale=1e3, unit=" ms")
        rows.append([name, wall.format(unit=" s"), vs_ideal.format(), per_request])
        data[name] = {"wall_vs_ideal": vs_ideal.to_json()}
    goals = []
    if "openai" in clients:
        pairs = list(zip(samples["ipychat"]["wall_s"], samples["openai"]["wall_s"], strict=True))
        wall_ratio = Spread.of([a / b for a, b in pairs])
        cpus = zip(samples["ipychat"]["cpu_s"], samples["openai"]["cpu_s"], strict=True)
        cpu_ratio = Spread.of([a / b for a, b in cpus])
        data["ipychat"]["wall_vs_openai"] = wall_ratio.to_json()
        data["ipychat"]["cpu_vs_openai"] = cpu_ratio.to_json()
        rows.append(["ipychat / openai", wall_ratio.format(), "", cpu_ratio.format()])
        goals.append(
            Goal(
                f"ipychat.map wall time at most {WALL_GOAL}x the AsyncOpenAI + Semaphore loop",
                f"{wall_ratio.median:.2f}x (CPU per request {cpu_ratio.median:.2f}x)",
                wall_ratio.median <= WALL_GOAL,
            )
        )
    return Section(
        key="batch",
        title=f"6. Batch: {items:,} requests at concurrency {CONCURRENCY} ({repeat} runs)",
        method=(
            f"The bundled server in its own process answers each request after {DELAY * 1000:g}"
            f" ms, so the ideal is items × delay / concurrency = {ideal:.2f} s. ipychat.map "
            "(no cache, no progress) against openai.AsyncOpenAI with an asyncio.Semaphore, "
            "taking turns; CPU is this process's, all threads, per request."
        ),
        header=["client", "wall time", "wall / ideal", "CPU per request"],
        rows=rows,
        goals=goals,
        data=data,
    )
