"""ipychat.map against the bundled server: order, rate limits, interrupts, cache, failures, data."""

from __future__ import annotations

import _thread
import collections
import sqlite3
import threading
from pathlib import Path

import pandas as pd
import pytest

import ipychat
from ipychat import BatchInterrupted, Fault, LocalServer, Settings
from ipychat._batchrun import Limiter
from ipychat._cache import ReplyCache, request_key


def settings_for(server: LocalServer, **values: object) -> Settings:
    settings = Settings()
    settings.set(base_url=server.base_url, **values)
    return settings


def run_map(server: LocalServer, template: str, items: object, **options: object):
    options.setdefault("cache", False)
    options.setdefault("progress", False)
    return ipychat.map(template, items, settings=settings_for(server), **options)


def test_replies_come_back_in_input_order(server):
    server.clear()
    server.token_delay = 0.002
    try:
        # Later items are shorter, so they tend to finish first: order must not follow finishing.
        items = [f"/repeat {1 + (199 - i) % 7} w{i}" for i in range(200)]
        batch = run_map(server, "{item}", items, concurrency=8)
    finally:
        server.token_delay = 0.0
    assert len(batch) == 200 and batch.done == 200 and not batch.failed
    for i, reply in enumerate(batch):
        assert reply.text == " ".join([f"w{i}"] * (1 + (199 - i) % 7))
    assert len(server.requests) == 200
    assert not any(r.body.get("stream") for r in server.requests), "batches ask for whole replies"
    assert 1 < server.max_in_flight <= 8


def test_each_item_is_a_one_shot_exchange_with_the_system_prompt(server):
    server.clear()
    batch = run_map(server, "Name {item}", ["a", "b"], system="Be brief.", temperature=0.5)
    assert [r.text for r in batch] == ["Echo: Name a", "Echo: Name b"]
    for request in server.requests:
        assert [m["role"] for m in request.body["messages"]] == ["system", "user"]
        assert request.body["temperature"] == 0.5
    assert ipychat.sessions.get().messages == [], "no session history is recorded"


def test_a_rate_limit_slows_the_whole_batch_and_loses_nothing(tmp_path):
    with LocalServer(first_token_delay=0.2) as srv:
        control = run_map(srv, "{item}", [f"c{i}" for i in range(48)], concurrency=16)
        assert control.done == 48
        unlimited = srv.max_in_flight
        srv.clear()
        srv.push_fault(Fault("status", status=429, headers={"Retry-After": "0.2"}, times=16))
        items = [f"x{i}" for i in range(150)]
        batch = run_map(srv, "{item}", items, concurrency=16)
    assert batch.done == 150 and not batch.failed, batch.failed
    assert [r.text for r in batch] == [f"Echo: {x}" for x in items]
    refused = [r for r in srv.requests[:16]]
    assert len(srv.requests) == 150 + 16, "each refused request was sent once more, no more"
    admitted = srv.requests[16:]
    limited = max(r.in_flight for r in admitted[:24])  # right after the 429s
    assert unlimited >= 12, "without limits the batch keeps about 16 in flight"
    assert limited + 1 <= 16 // 2 + 3, "after the 429s it keeps fewer in flight"
    assert refused and all(r.body["messages"][-1]["content"] in items for r in refused)
    assert max(batch.attempts) >= 2


def test_5xx_retries_per_item_and_a_refusal_is_recorded_as_that_items_failure(server):
    server.clear()
    server.push_fault(Fault("status", status=503, headers={"retry-after-ms": "10"}))
    batch = run_map(server, "{item}", ["a"], max_retries=2)
    assert batch.done == 1 and batch.attempts == [2]
    server.clear()
    server.push_fault(Fault("status", status=400, body={"error": {"message": "bad item"}}))
    batch = run_map(server, "{item}", ["a", "b", "c"], concurrency=1)
    assert batch.done == 2
    assert list(batch.failed) == [0] and "bad item" in batch.failed[0]
    assert batch[0].error and batch[0].text == ""
    assert len(server.requests) == 3, "a 400 is not sent again"
    frame = batch.to_pandas()
    assert frame.loc[0, "error"] == batch.failed[0] and frame["error"].isna().sum() == 2
    batch.retry()
    assert batch.done == 3 and not batch.failed
    assert len(server.requests) == 4, "retry() sends only the item that failed"
    assert batch[0].text == "Echo: a"


def test_interrupt_keeps_finished_items_and_the_rerun_sends_only_the_rest(tmp_path):
    cache = tmp_path / "cache.sqlite"
    items = [f"i{n}" for n in range(60)]
    with LocalServer(first_token_delay=0.05) as srv:

        def interrupt_halfway() -> None:
            while len(srv.requests) < 25:
                threading.Event().wait(0.01)
            _thread.interrupt_main()

        threading.Thread(target=interrupt_halfway, daemon=True).start()
        with pytest.raises(BatchInterrupted) as caught:
            run_map(srv, "{item}", items, concurrency=4, cache=cache)
        first = caught.value.batch
        assert first.interrupted and 0 < first.done < 60
        assert "finished" in str(caught.value)
        finished = [i for i, r in enumerate(first) if r.error is None]
        assert [first[i].text for i in finished] == [f"Echo: {items[i]}" for i in finished]
        assert len(first.pending) == 60 - first.done
        srv.clear()
        again = run_map(srv, "{item}", items, concurrency=4, cache=cache)
    assert again.done == 60 and again.from_cache == first.done
    sent = sorted(r.body["messages"][-1]["content"] for r in srv.requests)
    assert sent == sorted(items[i] for i in range(60) if i not in finished)
    assert [r.text for r in again] == [f"Echo: {x}" for x in items]


def test_cache_key_has_everything_that_shapes_a_request_but_never_the_key(server, tmp_path):
    path = tmp_path / "c.sqlite"
    canary = "sk-canary-batch-0123456789"
    settings = settings_for(server, api_key=canary)
    server.clear()
    ipychat.map("{item}", ["a", "b"], settings=settings, cache=path, progress=False)
    ipychat.map("{item}", ["a", "b"], settings=settings_for(server), cache=path, progress=False)
    assert len(server.requests) == 2, "another key is the same request: answered from the cache"
    ipychat.map("{item}", ["a"], settings=settings, cache=path, progress=False, temperature=0.3)
    ipychat.map("{item}", ["a"], settings=settings, cache=path, progress=False, model="other")
    assert len(server.requests) == 4, "other parameters or another model are new requests"
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert canary[:8].encode() not in data and canary[-8:].encode() not in data
    assert len(ReplyCache(path)) == 4
    with sqlite3.connect(path) as db:
        assert db.execute("select count(*) from replies").fetchone()[0] == 4
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert request_key("http://u:secretpw@h/v1", body) == request_key("http://h/v1", body)
    assert request_key("http://h/v1", {**body, "stream": True}) == request_key("http://h/v1", body)


def test_cached_batch_says_so_and_no_cache_sends_again(server, tmp_path):
    path = tmp_path / "c.sqlite"
    server.clear()
    run_map(server, "{item}", ["a", "b"], cache=path)
    batch = run_map(server, "{item}", ["a", "b"], cache=path)
    assert batch.from_cache == 2 and "2 from the cache" in batch.summary()
    assert [r.text for r in batch] == ["Echo: a", "Echo: b"]
    assert run_map(server, "{item}", ["a"], cache=False).from_cache == 0
    assert len(server.requests) == 3


def test_dataframe_series_and_dict_inputs(server):
    frame = pd.DataFrame({"name": ["Ada", "Bob"], "age": [36, 41]}, index=["x", "y"])
    batch = run_map(server, '{name} is {age}; row {item["name"]}', frame)
    assert [r.text for r in batch] == ["Echo: Ada is 36; row Ada", "Echo: Bob is 41; row Bob"]
    out = batch.to_pandas()
    assert list(out.index) == ["x", "y"]
    assert list(out.columns) == [
        "name",
        "age",
        "text",
        "finish_reason",
        "prompt_tokens",
        "completion_tokens",
        "latency",
        "attempts",
        "cached",
        "error",
    ]
    series = pd.Series(["p", "q"], index=[10, 20])
    out = run_map(server, "S {item}", series).to_pandas()
    assert list(out.index) == [10, 20] and list(out["input"]) == ["p", "q"]
    assert list(out["text"]) == ["Echo: S p", "Echo: S q"] and list(out["attempts"]) == [1, 1]
    out = run_map(server, "D {item} {other}", {"k1": 1, "k2": 2}, namespace={"other": "o"})
    assert [r.text for r in out] == ["Echo: D 1 o", "Echo: D 2 o"] and out.labels == ["k1", "k2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", [1]), "template is empty"),
        (("{item}", 5), "list, dict"),
        (("{item}", "abc"), "list, dict"),
        (("{item}", [1], {"concurrency": 0}), "concurrency"),
        (("{item}", [1], {"rpm": -1}), "rpm"),
        (("{item}", [1], {"temperature": 5}), "temperature"),
        (("{item}", [1], {"schema": 3}), "schema"),
    ],
)
def test_bad_arguments_fail_before_anything_is_sent(server, args, message):
    server.clear()
    options = args[2] if len(args) > 2 else {}
    with pytest.raises(ipychat.ConfigError, match=message):
        run_map(server, args[0], args[1], **options)
    assert server.requests == []


def test_limiter_halves_once_per_window_and_climbs_back():
    now = [0.0]
    limiter = Limiter(16, clock=lambda: now[0])
    limiter.in_flight = 1
    limiter.throttle(0.5)
    limiter.throttle(0.5)  # the same burst: counted once
    assert limiter.limit == 8 and limiter.throttled == 2
    assert limiter._wait_needed(now[0]) == pytest.approx(0.5)
    now[0] = 0.6
    limiter.throttle(None)
    assert limiter.limit == 4
    for _ in range(40):
        limiter.in_flight += 1
        limiter.release(ok=True)
    assert 8 < limiter.limit <= 16, "additive increase, up to the ceiling"


def test_rpm_spaces_the_starts():
    now = [100.0]
    limiter = Limiter(4, rpm=120, clock=lambda: now[0])
    limiter._last_start = 100.0
    assert limiter._wait_needed(100.0) == pytest.approx(0.5)


def test_cache_file_lives_in_the_user_cache_folder(tmp_path):
    from ipychat._cache import default_cache_path

    assert default_cache_path({"IPYCHAT_CACHE_DIR": str(tmp_path)}) == tmp_path / "batch.sqlite"
    path = default_cache_path({"HOME": str(tmp_path), "XDG_CACHE_HOME": ""})
    assert path.parts[-3:] == (".cache", "ipychat", "batch.sqlite") or "Caches" in str(path)
    assert isinstance(path, Path)


def test_the_streamed_path_works_too(server):
    server.clear()
    batch = run_map(server, "{item}", ["/repeat 5 s", "/repeat 3 t"], stream=True)
    assert [r.text for r in batch] == ["s s s s s", "t t t"]
    assert all(r.body.get("stream") is True for r in server.requests)


def test_tpm_waits_for_the_minute_to_free_enough_tokens():
    now = [0.0]
    limiter = Limiter(4, tpm=100, clock=lambda: now[0])
    assert limiter._wait_needed(0.0) <= 0, "nothing is known before the first reply"
    limiter.in_flight = 1
    limiter.release(ok=True, tokens=60)
    now[0] = 10.0
    assert limiter._wait_needed(10.0) == pytest.approx(50.0), "60 used + 60 expected > 100"
    now[0] = 61.0
    assert limiter._wait_needed(61.0) <= 0


def test_a_terminal_gets_one_line_rewritten_in_place(server):
    import io

    from ipychat._progress import _TextProgress

    server.clear()
    batch = run_map(server, "{item}", ["a", "b"])
    out = io.StringIO()
    view = _TextProgress(batch, Limiter(2), collections.Counter(done=2), stream=out)
    view.update()
    view.update()  # within the same quarter second: not drawn again
    view.finish()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert "2/2 done" in text and "2 of 2 done" in text
    assert view.draws == 1
