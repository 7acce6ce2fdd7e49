"""Teaching: record a lesson through the pass-through, replay it offline, strict mode, lessons
from notebooks, class budgets and the request log."""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ipychat import APIStatusError, ChatClient, Settings
from ipychat._lesson import bundled_lessons, find_turn, load_script, normalize
from ipychat._server import Fault, LocalServer
from ipychat._server_budget import Students

from .cli import ROOT, run_cli, run_env

KEY = "sk-teacher-0123456789abcdef"
LIVE_SCRIPT = [
    {
        "prompt": "slicing",
        "reply": "Slicing takes part of a sequence: `s[1:3]` is the second and third item. "
        "Negative numbers count from the end, so `s[-1]` is the last one.",
        "reasoning": "The student asks about slicing; show one example and negatives.",
    },
    {"prompt": "f-strings?", "reply": "Write f\"{name}\" to put a value into a string."},
]


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "live", "messages": [{"role": "user", "content": text}], **extra}


def timed_stream(base_url: str, body: dict[str, Any], token: str = "") -> tuple[int, list[float]]:
    """Stream a request; (status, arrival time of each text chunk after the request went out)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    times: list[float] = []
    with httpx.Client(timeout=10) as http:
        started = time.perf_counter()
        with http.stream(
            "POST", base_url + "/chat/completions", json={**body, "stream": True}, headers=headers
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    choices = json.loads(line[6:])["choices"]
                    delta = choices[0]["delta"] if choices else {}
                    if delta.get("content") or delta.get("reasoning_content"):
                        times.append(time.perf_counter() - started)
            return response.status_code, times


def cadence(times: list[float]) -> tuple[float, float]:
    """(time to first chunk, chunks a second after it)."""
    return times[0], (len(times) - 1) / (times[-1] - times[0])


def client_for(base_url: str, **settings: Any) -> ChatClient:
    config = Settings.load(environ={})
    config.set(base_url=base_url, model="live", **settings)
    return ChatClient(config)


@pytest.fixture
def live() -> Any:
    """A second bundled server standing in for a live model: a script and a token delay."""
    with LocalServer(
        script=LIVE_SCRIPT, first_token_delay=0.6, token_delay=0.03, model="live"
    ) as server:
        yield server


def test_record_then_replay_gives_the_same_reply_usage_and_cadence(
    live: LocalServer, tmp_path: Path
) -> None:
    lesson = tmp_path / "lesson.toml"
    prompts = ["How does  SLICING work?", "What are f-strings?", "Something else"]
    log: list[str] = []
    with LocalServer(upstream=live.base_url, api_key=KEY, record=lesson, log=log.append) as relay:
        with client_for(relay.base_url) as client:
            recorded = [client.send([{"role": "user", "content": p}]) for p in prompts]
        _, live_times = timed_stream(relay.base_url, ask(prompts[0]))
    # The teacher's key went to the live model, and never into the lesson or the log.
    assert {r.headers.get("authorization") for r in live.requests} == {f"Bearer {KEY}"}
    text = lesson.read_text(encoding="utf-8")
    assert KEY[:8] not in text and not any(KEY[:8] in line for line in log)
    assert text.splitlines().count("[[turn]]") == 4 and 'match = "text"' in text
    assert [line.split()[-2] for line in log] == ["recorded"] * 4

    turns = load_script(lesson)
    assert turns[0].timing is not None and turns[0].usage == recorded[0].usage.__dict__
    with LocalServer(script=lesson) as replay:  # offline: the live model is not asked again
        asked = len(live.requests)
        with client_for(replay.base_url) as client:
            # Matching forgives whitespace and case, and needs the whole prompt.
            replayed = [
                client.send([{"role": "user", "content": p}])
                for p in ["how does slicing   work?", "WHAT ARE F-STRINGS?", "something else"]
            ]
        replays = [timed_stream(replay.base_url, ask("How does slicing work?"))[1] for _ in "abc"]
        assert len(live.requests) == asked
    for before, after in zip(recorded, replayed, strict=True):
        assert (after.text, after.reasoning) == (before.text, before.reasoning)
        assert after.usage == before.usage and after.finish_reason == before.finish_reason
    assert replayed[0].reasoning.startswith("The student asks")
    # The replay streams at the pace the live model had, as a student saw it through the
    # pass-through and as it was recorded: within 20% on both measures (median of 3 replays).
    live_first, live_rate = cadence(live_times)
    timing = turns[0].timing
    recorded_pace = (timing.time_to_first_token, timing.tokens_per_second)
    replay_first = statistics.median(cadence(times)[0] for times in replays)
    replay_rate = statistics.median(cadence(times)[1] for times in replays)
    for first, rate in ((live_first, live_rate), recorded_pace):
        assert abs(replay_first / first - 1) < 0.2, (first, replay_first)
        assert abs(replay_rate / rate - 1) < 0.2, (rate, replay_rate)


def test_replay_pace_fast_and_tokens_per_second(tmp_path: Path) -> None:
    timing = {"time_to_first_token": 0.4, "tokens_per_second": 5.0, "tokens": 4}
    script = [{"prompt": "go", "match": "text", "reply": "one two three four", "timing": timing}]
    with LocalServer(script=script, pace="fast") as server:
        _, fast = timed_stream(server.base_url, ask("go"))
        server.pace = 40.0
        _, paced = timed_stream(server.base_url, ask("go"))
        server.pace = "recorded"
        _, recorded = timed_stream(server.base_url, ask("go"))
    # Ratios within one run: recorded (0.4 s, then 0.2 s a token) is slowest, fast is fastest.
    assert fast[-1] < paced[-1] < recorded[-1]
    assert recorded[-1] - recorded[0] > 3 * (paced[-1] - paced[0])


def test_strict_refuses_a_prompt_that_is_not_in_the_lesson() -> None:
    script = [{"prompt": "Hello  There", "match": "text", "reply": "Hi!"}]
    with LocalServer(script=script, strict=True) as server:
        ok = httpx.post(server.base_url + "/chat/completions", json=ask(" hello there "))
        assert ok.json()["choices"][0]["message"]["content"] == "Hi!"
        for body in (ask("hello there, friend"), ask("other", stream=True)):
            refused = httpx.post(server.base_url + "/chat/completions", json=body)
            assert refused.status_code == 404
            assert refused.json()["error"]["code"] == "not_in_lesson"
            assert "not part of the lesson" in refused.json()["error"]["message"]
        with (
            client_for(server.base_url, max_retries=0) as client,
            pytest.raises(APIStatusError, match="not part of the lesson"),
        ):
            client.send([{"role": "user", "content": "not scripted"}])


def test_text_matching_ignores_whitespace_and_case_only() -> None:
    assert normalize("  What IS\n a\tlist? ") == "what is a list?"
    turns = load_script([{"prompt": "What is a list (in Python)?", "match": "text", "reply": "r"}])
    assert find_turn(turns, "what is a LIST  (in python)?") is turns[0]
    assert find_turn(turns, "what is a list?") is None  # a text prompt is not a regex


@pytest.mark.parametrize(
    ("turn", "message"),
    [
        ({"match": "glob"}, "match must be 'regex' or 'text'"),
        ({"usage": {"prompt_tokens": 1}}, "'usage' must be a table of"),
        ({"usage": {"prompt_tokens": 1, "completion_tokens": -1, "total_tokens": 0}}, ">= 0"),
        ({"timing": {"time_to_first_token": "x", "tokens_per_second": 1, "tokens": 1}}, "number"),
    ],
)
def test_bad_recorded_turns_are_refused(turn: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_script([{"prompt": "p", "reply": "r", **turn}])


def notebook(cells: list[dict[str, Any]]) -> dict[str, Any]:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}


def display(data: dict[str, Any]) -> dict[str, Any]:
    return {"output_type": "display_data", "data": data, "metadata": {}}


def code(source: str, *outputs: dict[str, Any]) -> dict[str, Any]:
    return {"cell_type": "code", "source": source, "outputs": list(outputs), "metadata": {}}


def test_lesson_from_a_saved_notebook(tmp_path: Path) -> None:
    exchange = {
        "format": "ipychat.exchange",
        "user": "What is a tuple?",
        "reply": "A tuple is a list you cannot change.",
        "reasoning": "Keep it short.",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 4, "completion_tokens": 9, "total_tokens": 13},
        "timings": {"time_to_first_token": 0.2, "elapsed": 1.0},
    }
    saved = tmp_path / "class.ipynb"
    cells = [
        code("%load_ext ipychat"),
        code(
            "%%chat\nWhat is a tuple?",
            {"output_type": "display_data", "data": {"text/plain": ["ignored"]}},
            {
                "output_type": "display_data",
                "data": {"application/vnd.ipychat.exchange+json": exchange, "text/plain": "x"},
            },
        ),
        code(  # an older notebook: no exchange saved, the outputs show the reply
            "%%chat --session s2\n  Explain   sets. \n",
            display({"text/markdown": ["A **set** has ", "no order."]}),
        ),
        code("%%chat\nNo reply was saved"),
        {"cell_type": "markdown", "source": "%%chat\nnot code", "metadata": {}},
    ]
    saved.write_text(json.dumps(notebook(cells)), encoding="utf-8")
    result = run_cli("lesson", str(saved))
    assert result.returncode == 0, result.stderr
    lesson = tmp_path / "lesson.toml"
    lesson.write_text(result.stdout, encoding="utf-8")
    turns = load_script(lesson)
    assert [t.reply for t in turns] == [exchange["reply"], "A **set** has no order."]
    assert turns[0].usage == exchange["usage"] and turns[0].reasoning == "Keep it short."
    assert turns[0].timing is not None and turns[0].timing.time_to_first_token == 0.2
    with LocalServer(script=lesson, strict=True) as server:
        answer = httpx.post(server.base_url + "/chat/completions", json=ask("explain sets."))
        assert answer.json()["choices"][0]["message"]["content"] == "A **set** has no order."

    empty = tmp_path / "empty.ipynb"
    empty.write_text(json.dumps(notebook([code("print(1)")])), encoding="utf-8")
    result = run_cli("lesson", str(empty))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().endswith("it has no %%chat cell with a saved reply.")


def students_file(tmp_path: Path) -> Path:
    path = tmp_path / "students.txt"
    path.write_text(
        "# class 7b\nana-7f3k\nben-91qz max_requests=1\n\ncleo-x2 max_tokens=12  # small\n",
        encoding="utf-8",
    )
    return path


def test_students_budgets_refuse_before_anything_is_sent(tmp_path: Path) -> None:
    students = Students.load(students_file(tmp_path), max_requests=3)
    log: list[str] = []
    with LocalServer(students=students, log=log.append) as server:
        url = server.base_url + "/chat/completions"

        def post(token: str, text: str = "hi", **extra: Any) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return httpx.post(url, json=ask(text, **extra), headers=headers, timeout=5)

        assert post("").status_code == 401
        assert "class token" in post("").json()["error"]["message"]
        assert post("nobody").json()["error"]["code"] == "unknown_student"
        assert [post("ana-7f3k").status_code for _ in range(4)] == [200, 200, 200, 403]
        assert "3 of 3 requests used" in post("ana-7f3k").json()["error"]["message"]
        assert [post("ben-91qz").status_code for _ in range(2)] == [200, 403]
        # cleo may spend 12 tokens: "Echo: one two" costs 2 + 3; a reply that would pass the
        # budget is refused whole, before a byte of it, and a small one still fits.
        assert post("cleo-x2", "one two").status_code == 200
        big = post("cleo-x2", "one two three four five", stream=True)
        assert big.status_code == 403 and big.headers["content-type"] == "application/json"
        assert "needs 11 tokens and 7 are left" in big.json()["error"]["message"]
        assert post("cleo-x2", "one").status_code == 200
        last = post("cleo-x2", "a b c").json()["error"]
        assert last["code"] == "budget_spent" and "needs 7 tokens and 4 are left" in last["message"]
    assert not any(token in "\n".join(log) for token in ("ana-7f3k", "ben-91qz", "cleo-x2"))
    assert "student#5" in log[-1] and " 403 budget_spent " in log[-1]
    assert "student#2" in log[3] and " 200 ok " in log[3]


def test_students_file_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("ana\nben max_request=3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: expected TOKEN"):
        Students.load(bad)
    bad.write_text("ana\nana\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: this token is already on a line"):
        Students.load(bad)


def test_request_log_has_time_client_model_tokens_and_outcome() -> None:
    log: list[str] = []
    with LocalServer(log=log.append) as server:
        url = server.base_url + "/chat/completions"
        httpx.post(url, json=ask("one two", model="tutor\x1b[31m"))
        httpx.post(url, json={"model": "m", "messages": []})
    first, second = log
    parts = first.split()
    assert parts[0].count(":") == 2 and parts[1] == "127.0.0.1"
    assert "\x1b" not in first and "tutor" in parts[2]
    assert "2+3 tokens 200 ok" in first
    assert " 400 invalid request " in second


def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ipychat", "serve", "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env or run_env(),
    )


def base_url_of(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().split()[4]


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Stop the server; (the rest of its stdout, its stderr)."""
    assert process.stdout is not None and process.stderr is not None
    process.terminate()
    process.wait(timeout=10)
    return process.stdout.read(), process.stderr.read()


def test_cli_records_through_the_pass_through_with_the_key_from_the_environment(
    live: LocalServer, tmp_path: Path
) -> None:
    lesson = tmp_path / "rec.toml"
    env = run_env(IPYCHAT_API_KEY=KEY)
    process = start_cli("--upstream", live.base_url, "--record", str(lesson), env=env)
    try:
        base = base_url_of(process)
        status, times = timed_stream(base, ask("Explain slicing"))
        assert status == 200 and len(times) > 5
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]  # the log line follows the stream
    finally:
        out, err = stop(process)
    out = "".join(lines) + out
    assert live.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert f"relaying to {live.url}" in out and f"recording each exchange to {lesson}" in out
    assert " recorded " in lines[2] and KEY[:8] not in out + err + lesson.read_text("utf-8")
    assert load_script(lesson)[0].reply == LIVE_SCRIPT[0]["reply"]


def test_cli_bundled_lessons_by_name_strict_and_quiet() -> None:
    listed = run_cli("serve", "--list-lessons")
    assert listed.returncode == 0
    assert listed.stdout.split("\t")[0] == "intro" and set(bundled_lessons()) >= {"intro"}
    process = start_cli("--script", "intro", "--strict", "--quiet", "--pace", "fast")
    try:
        base = base_url_of(process)
        hello = httpx.post(base + "/chat/completions", json=ask("hello!"), timeout=5).json()
        assert hello["choices"][0]["message"]["content"].startswith("Hello! I'm your Python tutor")
        other = httpx.post(base + "/chat/completions", json=ask("zzz"), timeout=5)
        assert other.json()["error"]["code"] == "not_in_lesson"
    finally:
        out, err = stop(process)
    assert out == "" and err == ""  # --quiet: no request lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--script", "nosuch"], "nosuch: no such file, nor a bundled lesson (bundled: intro"),
        (["--record", "x.toml"], "--record needs --upstream URL"),
        (["--pace", "slow"], "pace must be 'recorded', 'fast' or tokens a second > 0"),
        (["--upstream", "ftp://x"], "--upstream must be an http(s) base URL"),
    ],
)
def test_cli_refuses_bad_options_in_one_line(args: list[str], message: str) -> None:
    result = run_cli("serve", "--port", "0", *args)
    assert result.returncode in (1, 2)
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_host_all_interfaces_prints_addresses_students_can_use(monkeypatch: Any) -> None:
    from types import SimpleNamespace

    from ipychat import __main__ as cli

    monkeypatch.setattr(cli, "_lan_addresses", lambda: ["192.168.1.20"])
    server = SimpleNamespace(port=8765, upstream=None, recorder=None, students=None)
    args = SimpleNamespace(host="0.0.0.0")
    assert cli._about(server, args) == ["  students connect to http://192.168.1.20:8765/v1"]
    monkeypatch.setattr(cli, "_lan_addresses", lambda: [])
    assert "hostname -I" in cli._about(server, args)[0]
    assert cli._about(server, SimpleNamespace(host="127.0.0.1")) == []
    relay = SimpleNamespace(**{**vars(server), "upstream": SimpleNamespace(where="https://x")})
    assert "spends your key" in cli._about(relay, args)[-1]
    assert "spends your key" not in "".join(cli._about(relay, SimpleNamespace(host="127.0.0.1")))


def test_pass_through_relays_errors_masks_the_key_and_records_only_replies(
    live: LocalServer, tmp_path: Path
) -> None:
    lesson = tmp_path / "lesson.toml"
    echoed = {"error": {"message": f"bad key Bearer {KEY}", "type": "auth", "code": "x"}}
    live.push_fault(Fault("status", status=429, body=echoed, headers={"Retry-After": "3"}))
    with LocalServer(upstream=live.base_url, api_key=KEY, record=lesson) as relay:
        url = relay.base_url + "/chat/completions"
        limited = httpx.post(url, json=ask("slicing", stream=True), timeout=10)
        assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
        assert KEY[:8] not in limited.text and "Bearer ****" in limited.text
        whole = httpx.post(url, json=ask("What are f-strings?"), timeout=10).json()
        assert whole["choices"][0]["message"]["content"] == LIVE_SCRIPT[1]["reply"]
    turns = load_script(lesson)  # the 429 was not recorded; the plain reply was, untimed
    assert len(turns) == 1 and turns[0].timing is None and turns[0].usage is not None
    assert turns[0].reply == LIVE_SCRIPT[1]["reply"]


def test_pass_through_to_an_unreachable_upstream_is_one_clear_error() -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with LocalServer(upstream=f"http://127.0.0.1:{port}/v1", api_key=KEY) as relay:
        answer = httpx.post(relay.base_url + "/chat/completions", json=ask("hi"), timeout=10)
    assert answer.status_code == 502
    message = answer.json()["error"]["message"]
    assert message == f"The upstream http://127.0.0.1:{port} did not answer: ConnectError."


def test_pass_through_with_students_caps_what_the_upstream_may_spend(
    live: LocalServer, tmp_path: Path
) -> None:
    students = Students.load(students_file(tmp_path))
    with LocalServer(upstream=live.base_url, students=students) as relay:
        url = relay.base_url + "/chat/completions"
        headers = {"Authorization": "Bearer cleo-x2"}
        first = httpx.post(url, json=ask("slicing"), headers=headers, timeout=10)
        assert first.status_code == 200
        assert live.requests[-1].body["max_tokens"] == 12  # all of cleo's 12 tokens are left
        assert first.json()["choices"][0]["finish_reason"] == "length"
        spent = httpx.post(url, json=ask("slicing"), headers=headers, timeout=10)
        assert spent.status_code == 403 and len(live.requests) == 1
        assert "authorization" not in live.requests[-1].headers  # no key: none forwarded
