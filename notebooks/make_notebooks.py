"""Write the example notebooks from the cell sources in this file.

    python notebooks/make_notebooks.py            # (re)write notebooks/*.ipynb
    python notebooks/make_notebooks.py --check    # exit 1 if a notebook differs from this file

The notebooks are generated so they stay reviewable (review this file) and clean: no outputs,
no execution counts, fixed cell ids. Edit the cells here, run the script, commit both.
Every notebook runs offline: its first code cell starts the bundled server when no endpoint
is configured (IPYCHAT_BASE_URL unset). `tests/test_notebooks.py` executes them all.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

Cell = tuple[str, str]  # ("md" | "code", source)


def md(*paragraphs: str) -> Cell:
    """A markdown cell; each argument is dedented on its own, then joined by a blank line."""
    return ("md", "\n\n".join(textwrap.dedent(text).strip() for text in paragraphs))


def code(text: str) -> Cell:
    return ("code", textwrap.dedent(text).strip())


def setup(server_args: str = "", comment: str = "", preamble: str = "") -> Cell:
    """The first code cell: load ipychat, and start the offline server unless told otherwise."""
    note = f"    # {comment}\n" if comment else ""
    before = textwrap.dedent(preamble).strip() + "\n\n" if preamble else ""
    return (
        "code",
        "import os\n\n"
        "import ipychat\n\n"
        "%load_ext ipychat\n\n"
        f"{before}"
        "server = None\n"
        'if not os.environ.get("IPYCHAT_BASE_URL"):\n'
        "    # No endpoint configured: run the bundled offline server inside this kernel.\n"
        f"{note}"
        f"    server = ipychat.serve({server_args})\n"
        "    %chat_config base_url={server.base_url}",
    )


OFFLINE_NOTE = """
    The first code cell starts ipychat's **bundled offline server** inside this kernel, unless
    the environment variable `IPYCHAT_BASE_URL` names a real endpoint: no network, no key."""


QUICKSTART: list[Cell] = [
    md(
        """
        # ipychat quick start

        `%%chat` turns a cell into the next message of a conversation with a language model.
        The reply streams into the output and lands in a variable, ready for Python.
        """,
        OFFLINE_NOTE,
        """
        That server answers every message with `Echo: ` and the message itself, so you can see
        exactly what ipychat sends and keeps. Run the cells from top to bottom.
        """,
    ),
    setup(
        "token_delay=0.03",
        "token_delay: a short pause between words, so you can watch the reply stream.",
    ),
    md(
        """
        ## 1. Configure

        `%chat_config key=value ...` changes settings for this kernel; `%chat_config` on its
        own shows every setting and where it came from (`default`, `file`, `env` or `set`).
        """
    ),
    code(
        """
        %chat_config temperature=0.2
        %chat_config
        """
    ),
    md(
        """
        ## 2. Your first chat

        Everything below the `%%chat` line is your message.
        """
    ),
    code(
        """
        %%chat
        Hello! In one sentence, what is Jupyter?
        """
    ),
    md(
        """
        ## 3. A follow-up

        Each `%%chat` continues the same conversation: the earlier messages are sent along,
        so a real model knows what *it* means below. The echo server cannot show that it
        understood, but the history shows exactly what goes out with the next message.
        """
    ),
    code(
        """
        %%chat
        Who started it, and when?
        """
    ),
    code("%chat_config --history"),
    md(
        """
        ## 4. A system prompt

        `--system` sets the conversation's system prompt: instructions sent first, with every
        request. It stays until you change it.
        """
    ),
    code(
        """
        %%chat --system "You are a patient teacher. Answer in two sentences at most."
        What is a kernel?
        """
    ),
    md(
        """
        ## 5. Capture the reply

        The latest reply is always in `_chat`; `-o NAME` puts it in a variable of your choice
        as well. A reply is an object: its text, why it stopped, tokens and timings.
        """
    ),
    code(
        """
        %%chat -o tips
        Give me three tips for writing clear notebooks.
        """
    ),
    code(
        """
        print(tips.text)
        print(tips.finish_reason, tips.usage)
        print(f"first token: {tips.time_to_first_token:.2f} s, whole reply: {tips.elapsed:.2f} s")
        tips is _chat
        """
    ),
    md("`%chat` is the one-line form: it returns the reply instead of showing it."),
    code(
        """
        greeting = %chat Say hello in five words.
        greeting.text
        """
    ),
    md(
        """
        ## 6. A second conversation

        `-s NAME` (or `--session NAME`) keeps a separate conversation with its own history and
        system prompt. The default conversation is not touched.
        """
    ),
    code(
        """
        %%chat -s poet --system "You write short poems."
        Write a haiku about the sea.
        """
    ),
    code("%chat_config --sessions"),
    md(
        """
        ## 7. Show and clear history

        `--history` shows a conversation, `--clear` empties it (the system prompt stays),
        `--undo` removes only the last exchange. Add `-s NAME` for another conversation.
        """
    ),
    code("%chat_config --history -s poet"),
    code(
        """
        %chat_config --clear
        %chat_config --sessions
        """
    ),
    md(
        """
        ## Next

        - `02-capture-and-analyze.ipynb`: replies as data (code blocks, JSON, tables).
        - `03-teaching.ipynb`: a lesson that replays the same way every time.
        - `04-providers.ipynb`: real endpoints (DashScope, OpenAI, Ollama, vLLM, ...).

        `%%chat?` and `%chat_config?` list every option.
        """
    ),
]


CAPTURE: list[Cell] = [
    md(
        """
        # Replies as data

        A reply is a Python object, so you can test it, take code and JSON out of it, and put
        a whole conversation in a table.
        """,
        OFFLINE_NOTE,
        """
        Here it answers from `analysis.toml`, a short script of canned replies, so the prompts
        below get the kind of answer a model would give.
        """,
    ),
    setup('script="analysis.toml", token_delay=0.01'),
    md(
        """
        ## Several prompts, several variables

        `-o NAME` stores each reply under its own name.
        """
    ),
    code(
        """
        %%chat -o prime_reply
        Write a Python function `is_prime(n)` that returns True when n is a prime number.
        Reply with one python code block.
        """
    ),
    code(
        """
        %%chat -o planets_reply
        List the four inner planets as JSON: a list of objects with the keys "name" and "moons".
        Reply with the JSON only.
        """
    ),
    md(
        """
        ## Code blocks

        `reply.code_blocks()` returns the fenced code blocks in order; give a language to
        keep only those.
        """
    ),
    code(
        """
        blocks = prime_reply.code_blocks("python")
        print(f"{len(blocks)} python block; its code:\\n")
        print(blocks[0].code)
        """
    ),
    md(
        """
        Read model code before you run it. This one only defines a function, so it is safe:
        """
    ),
    code(
        """
        namespace = {}
        exec(blocks[0].code, namespace)
        is_prime = namespace["is_prime"]
        primes = [n for n in range(20) if is_prime(n)]
        primes
        """
    ),
    md(
        """
        ## JSON

        `reply.json()` parses the reply, also when it is wrapped in a json code block.
        """
    ),
    code(
        """
        planets = planets_reply.json()
        for planet in planets:
            print(f"{planet['name']:<8} {planet['moons']} moon(s)")
        """
    ),
    md(
        """
        ## Values in prompts

        `{name}` in a prompt is replaced by the variable's value. Only plain references are
        filled (`{x}`, `{x.attr}`, `{x[0]}`); other braces, as in code or JSON, are sent as
        written. `--no-interpolate` sends the cell exactly as typed.
        """
    ),
    code(
        """
        %%chat -o check_reply
        Are these all the primes below 20: {primes}? Answer yes or no, and why.
        """
    ),
    code("check_reply.prompt  # what was sent"),
    md(
        """
        ## The conversation as rows

        `ipychat.sessions` holds the `%%chat` sessions of this kernel; a session's
        `to_records()` gives one row per message, with tokens and timings on the assistant's
        rows. (`%chat_config --export PATH` writes the same conversation to a JSON file.)
        """
    ),
    code(
        """
        conversation = ipychat.sessions.get()  # the default session
        rows = conversation.to_records()
        [(row["index"], row["role"], row["content"][:40]) for row in rows]
        """
    ),
    md(
        """
        ## Tokens and latency per turn

        A DataFrame when pandas is installed, a plain table when it is not.
        """
    ),
    code(
        """
        from IPython.display import display


        def ms(seconds):
            return None if seconds is None else round(1000 * seconds)


        stats = [
            {
                "turn": number,
                "prompt": rows[index - 1]["content"][:30],
                "tokens": row["completion_tokens"],
                "first token (ms)": ms(row["time_to_first_token"]),
                "total (ms)": ms(row["elapsed"]),
            }
            for number, (index, row) in enumerate(
                ((i, r) for i, r in enumerate(rows) if r["role"] == "assistant"), start=1
            )
        ]

        try:
            import pandas as pd
        except ImportError:
            widths = {key: max(len(key), *(len(str(s[key])) for s in stats)) for key in stats[0]}
            for line in [{key: key for key in widths}, *stats]:
                print("  ".join(str(line[key]).ljust(widths[key]) for key in widths))
        else:
            display(pd.DataFrame(stats).set_index("turn"))
        """
    ),
    code(
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            print("Install matplotlib to see this as a chart: pip install matplotlib")
        else:
            fig, ax = plt.subplots(figsize=(6, 2))
            ax.barh([f"turn {s['turn']}" for s in stats], [s["total (ms)"] for s in stats])
            ax.invert_yaxis()
            ax.set_xlabel("time for the whole reply (ms)")
            plt.show()
        """
    ),
]


TEACHING: list[Cell] = [
    md(
        """
        # A lesson that replays the same way every time

        For a class, you want every student to see the same answers, with no network and no
        keys to hand out. The bundled server can follow a **script**: `lesson.toml`, next to
        this notebook, pairs what students may ask with what the "model" replies.
        """,
        OFFLINE_NOTE,
    ),
    setup('script="lesson.toml", token_delay=0.02'),
    md(
        """
        ## The lesson (what students run)
        """
    ),
    code(
        """
        %%chat
        Hello! What are we learning today?
        """
    ),
    code(
        """
        %%chat
        How does slicing work?
        """
    ),
    code(
        """
        %%chat
        And f-strings?
        """
    ),
    md(
        """
        A reply can come with **reasoning**, the way reasoning models (Qwen3, DeepSeek-R1)
        stream their thinking first. It is shown folded; click *Reasoning* to open it.
        """
    ),
    code(
        """
        %%chat
        Can I have an exercise?
        """
    ),
    code(
        """
        %%chat
        Here is my answer. Can I see the solution?
        """
    ),
    md("A question the script does not cover gets the catch-all reply:"),
    code(
        """
        %%chat
        What is the capital of Peru?
        """
    ),
    md(
        """
        ## For teachers: writing the script

        Here is the whole script. Each `[[turn]]` has a `prompt` and a `reply`:
        """
    ),
    code(
        """
        from pathlib import Path

        print(Path("lesson.toml").read_text(encoding="utf-8"))
        """
    ),
    md(
        """
        The rules:

        - `prompt` is a regular expression, searched case-insensitively in the student's
          latest message. The **first** turn that matches gives the reply, so put specific
          turns first and a catch-all (`prompt = '.'`) last.
        - Without a catch-all, a message that matches nothing is echoed: `Echo: ...`.
        - `reply` is Markdown: code blocks, lists, bold. Use `\"\"\"triple quotes\"\"\"` for
          several lines.
        - Optional: `reasoning` (shown folded before the reply) and `finish_reason`
          (default `stop`; `length` shows the reply as cut off).
        - Write prompts as `'single-quoted'` TOML strings, so `\\b` stays a word boundary.
        - `/repeat N WORD` always answers WORD N times: handy to show a long, streaming reply.

        ### Check a script before class

        The server checks the whole script as soon as it gets it and refuses a broken one
        with a message that names the turn, so a typo shows up now and not in front of the
        class:
        """
    ),
    code(
        """
        try:
            ipychat.LocalServer(script=[{"prompt": "(slicing", "reply": "..."}])
        except ValueError as error:
            print("Refused:", error)
        """
    ),
    md(
        """
        ### Change the script while the lesson runs

        Give the running server a new script (a file name or a list of turns); no restart,
        and the conversation so far is kept.
        """
    ),
    code(
        """
        if server is not None:
            quiz = {"prompt": r"\\bquiz\\b", "reply": "Quick quiz: what is `'notebook'[-4:]`?"}
            server.script = [quiz]
        """
    ),
    code(
        """
        %%chat
        Quiz me!
        """
    ),
    code(
        """
        if server is not None:
            server.script = "lesson.toml"  # back to the lesson; also reloads it after edits
        """
    ),
    md(
        """
        ## Record a lesson once with a live model, replay it offline

        Writing every reply by hand is slow. Instead, rehearse the lesson with a real model
        through ipychat's **pass-through**, which records each exchange (prompt, reply,
        reasoning, token usage and the stream's timing) into a lesson script:

        ```bash
        export IPYCHAT_API_KEY=...   # or leave it unset: it asks with a hidden prompt
        python -m ipychat serve --upstream https://dashscope.aliyuncs.com/compatible-mode/v1 \\
            --record lesson.toml
        ```

        The key goes to the live model only; it is never written to the lesson or the log.
        Here a second bundled server stands in for the live model: a slow one (0.05 s a
        token), with answers of its own.
        """
    ),
    code(
        """
        import tempfile

        live = ipychat.serve(  # stands in for a real model
            script=[
                {
                    "prompt": "comprehension",
                    "reply": "A list comprehension builds a list in one line: "
                    "`[n * n for n in range(5)]` gives `[0, 1, 4, 9, 16]`.",
                    "reasoning": "One short example, then the result.",
                }
            ],
            first_token_delay=0.3,
            token_delay=0.05,
            model="live-model",
        )
        recorded = Path(tempfile.mkdtemp()) / "recorded-lesson.toml"
        relay = ipychat.serve(upstream=live.base_url, record=recorded)  # real model: api_key=...
        %chat_config base_url={relay.base_url} model=live-model
        """
    ),
    code(
        """
        %%chat
        What is a list comprehension?
        """
    ),
    md("The recorded turn, as the pass-through appended it:"),
    code(
        """
        print(recorded.read_text(encoding="utf-8"))
        """
    ),
    md(
        """
        Now the class replays it, with no live model and no key: `pace="recorded"` (the
        default) streams each reply at the pace the live model had, and `strict=True` refuses
        a prompt the lesson does not contain instead of echoing it. A recorded prompt matches
        whatever the case and spacing a student types. On the command line:
        `python -m ipychat serve --script lesson.toml --pace recorded --strict`.
        """
    ),
    code(
        """
        relay.stop()
        live.stop()
        replay = ipychat.serve(script=recorded, strict=True)
        %chat_config base_url={replay.base_url}
        """
    ),
    code(
        """
        %%chat
        what is a  LIST comprehension?
        """
    ),
    code(
        """
        import httpx

        refused = httpx.post(
            replay.base_url + "/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "Tell me a joke"}]},
        )
        print(refused.status_code, refused.json()["error"]["message"])
        """
    ),
    code(
        """
        replay.stop()
        %chat_config --reset
        if server is not None:
            %chat_config base_url={server.base_url}
        """
    ),
    md(
        """
        ### One server for the whole class

        Instead of one server per notebook, run one on your machine for everybody:

        ```bash
        python -m ipychat serve --host 0.0.0.0 --port 8765 --script lesson.toml
        ```

        It prints the addresses students can use, then one line per request (time, student,
        model, tokens, outcome; `--quiet` turns that off). Students point ipychat at it, for
        example with `IPYCHAT_BASE_URL=http://YOUR-MACHINE:8765/v1` set before they start
        Jupyter. One server holds a class of 200 streaming at once. More options:

        - `--script intro` serves a lesson bundled with ipychat; `--list-lessons` lists them.
        - `--students students.txt`: one token per line, handed to each student as their
          API key, each with a budget (`ana-7f3k max_requests=30 max_tokens=20000`, or
          `--max-requests-per-student N` for all); a request over budget is refused before
          anything is sent.
        - `python -m ipychat lesson class.ipynb > lesson.toml` turns a notebook you ran with a
          live model into a lesson script.

        In a notebook, `%chat_config max_requests_per_session=20 max_tokens_per_session=5000`
        caps what a session may spend; the status line under each reply shows what is left.

        ## Later: the same notebook with a real model

        Nothing in the lesson cells changes. Students set three environment variables before
        starting Jupyter, and the first cell then leaves the offline server out:

        ```bash
        export IPYCHAT_BASE_URL=https://dashscope.aliyuncs.com/compatible-mode/v1
        export IPYCHAT_MODEL=qwen-plus
        export IPYCHAT_API_KEY=...   # never put the key itself in a notebook
        ```

        Or they switch inside the notebook. Setting values sends nothing yet:
        """
    ),
    code(
        """
        %chat_config base_url=https://dashscope.aliyuncs.com/compatible-mode/v1 model=qwen-plus
        %chat_config
        """
    ),
    md(
        """
        and then `%chat_config --api-key`, which asks for the key with a hidden prompt, so it
        is never saved in the notebook. Here we go back to the offline server instead:
        `--reset` forgets what was set in this kernel.
        """
    ),
    code(
        """
        %chat_config --reset
        if server is not None:
            %chat_config base_url={server.base_url}
        """
    ),
    code(
        """
        %%chat
        Thank you, bye!
        """
    ),
]


PROVIDERS: list[Cell] = [
    md(
        """
        # Providers: pointing ipychat at a real endpoint

        ipychat speaks the OpenAI-compatible `/chat/completions` protocol, so one setting,
        `base_url`, chooses the provider. This notebook shows the settings for common ones.
        The cells only **set** values, and nothing is sent until a `%%chat` runs; at the end
        we go back to the offline server, so the notebook runs anywhere.
        """,
        OFFLINE_NOTE,
        """
        Here the server also has one scripted reply with reasoning, for the last section.
        """,
    ),
    setup(
        "script=[THINKING]",
        preamble="""
        # One scripted reply with reasoning, for the last section; anything else is echoed.
        THINKING = {
            "prompt": r"\\bprime\\b",
            "reasoning": "91 is odd. 91 = 7 x 13, so it has divisors besides 1 and 91.",
            "reply": "No. 91 is 7 times 13, so it is not a prime number.",
        }
        """,
    ),
    md(
        """
        ## Where settings come from

        From lowest to highest: built-in defaults, the config file
        (`~/.config/ipychat/config.toml`, or `$IPYCHAT_CONFIG`), the environment
        (`IPYCHAT_BASE_URL`, `IPYCHAT_API_KEY`, `IPYCHAT_MODEL`, falling back to
        `OPENAI_BASE_URL` and `OPENAI_API_KEY`), then `%chat_config key=value` in this kernel,
        then options on a single `%%chat`. `%chat_config` shows each value and its source.

        ## The reference service: `host=`

        For the OpenSearch-hosted service, give its address as `host`; ipychat adds the
        `/compatible-mode/v1` path.
        """
    ),
    code(
        """
        %chat_config host=http://xxxx-cn-shanghai.opensearch.aliyuncs.com model=ops-qwen-turbo
        %chat_config
        """
    ),
    md(
        """
        ## DashScope (Alibaba Cloud Model Studio), compatible mode

        Use `dashscope-intl.aliyuncs.com` outside mainland China.
        """
    ),
    code(
        """
        %chat_config base_url=https://dashscope.aliyuncs.com/compatible-mode/v1 model=qwen-plus
        """
    ),
    md("## OpenAI"),
    code("%chat_config base_url=https://api.openai.com/v1 model=gpt-4o-mini"),
    md(
        """
        ## Ollama

        Start it with `ollama serve` and `ollama pull llama3.2`; it needs no key.
        """
    ),
    code("%chat_config base_url=http://localhost:11434/v1 model=llama3.2"),
    md(
        """
        ## vLLM

        `vllm serve Qwen/Qwen2.5-1.5B-Instruct` serves on port 8000; the model name is the
        one it was started with. Set a key only if you started it with `--api-key`.
        """
    ),
    code("%chat_config base_url=http://localhost:8000/v1 model=Qwen/Qwen2.5-1.5B-Instruct"),
    md(
        """
        ## llama.cpp server

        `llama-server -m model.gguf --port 8080` serves the one model it loaded, whatever the
        `model` setting says.
        """
    ),
    code("%chat_config base_url=http://localhost:8080/v1 model=local"),
    md(
        """
        ## LiteLLM proxy

        The proxy (port 4000 by default) routes each `model` name to the provider in its
        config, so one `base_url` reaches many providers.
        """
    ),
    code("%chat_config base_url=http://localhost:4000/v1 model=gpt-4o"),
    md(
        """
        ## API keys

        Best: set `IPYCHAT_API_KEY` in the environment before starting Jupyter, or run
        `%chat_config --api-key`, which asks with a hidden prompt. A key typed into a cell is
        saved with the notebook, so ipychat warns about it. Either way the key is shown
        masked, and `%chat_config --save` leaves it out of the config file unless you add
        `--with-key`. A fake key, to show the masking:
        """
    ),
    code(
        """
        %chat_config api_key=sk-demo-not-a-real-key-7f3a
        %chat_config
        """
    ),
    md(
        """
        ## Reasoning models

        Reasoning models stream their thinking before the answer, as `reasoning_content`
        (DeepSeek-R1, Qwen3 and QwQ on DashScope) or `reasoning` (vLLM, Ollama). ipychat shows
        it folded above the reply and keeps it apart in `reply.reasoning`, so `reply.text`
        is only the answer. Some need a switch in the request body, through `extra_body`:
        """
    ),
    code(
        """
        # DashScope: Qwen3-based models think or not as enable_thinking says.
        %chat_config base_url=https://dashscope.aliyuncs.com/compatible-mode/v1 model=qwen-plus
        %chat_config extra_body={"enable_thinking": True}
        """
    ),
    code(
        """
        # DeepSeek-R1: always reasons, and ignores temperature.
        %chat_config base_url=https://api.deepseek.com/v1 model=deepseek-reasoner extra_body=None
        """
    ),
    code(
        """
        # vLLM serving Qwen3: turn thinking off through the chat template.
        %chat_config base_url=http://localhost:8000/v1 model=Qwen/Qwen3-8B
        %chat_config extra_body={"chat_template_kwargs": {"enable_thinking": False}}
        """
    ),
    md(
        """
        ## Extra body fields and headers

        `extra_body` adds any field the provider understands (`seed`, `top_k`,
        `response_format`, ...); `extra_headers` adds HTTP headers. ipychat refuses to let
        them replace what it sends itself (`messages`, `model`, `stream`, `Authorization`).
        """
    ),
    code(
        """
        %chat_config extra_body={"seed": 42, "top_k": 20} extra_headers={"X-Course": "python-101"}
        %chat_config
        """
    ),
    md(
        """
        ## Back to the offline server

        `--reset` forgets everything set in this kernel: back to the defaults, the config file
        and the environment. Then point ipychat at the offline server again.
        """
    ),
    code(
        """
        %chat_config --reset
        if server is not None:
            %chat_config base_url={server.base_url}
        %chat_config
        """
    ),
    md(
        """
        ## Per-cell options

        Options on the `%%chat` line override the settings for that one cell: model,
        temperature, `--max-tokens`, `--stop` and more (`%%chat?` lists them). Here a
        five-token limit cuts the reply off, and the status line says so.
        """
    ),
    code(
        """
        %%chat -m my-model -t 0.3 --max-tokens 5
        Describe the ocean in twenty words.
        """
    ),
    code("_chat.finish_reason, _chat.truncated"),
    md(
        """
        ## A reasoning reply, offline

        The scripted reply below comes with reasoning, as a reasoning model's would.
        """
    ),
    code(
        """
        %%chat
        Is 91 a prime number?
        """
    ),
    code(
        """
        print("reasoning:", _chat.reasoning)
        print("answer:   ", _chat.text)
        """
    ),
]


BATCH: list[Cell] = [
    md(
        """
        # One prompt over a table

        `%%chat --map NAME` sends the cell once for each item of a list, dict, pandas Series or
        DataFrame, many at a time, and collects the replies in input order. With `--schema`
        each reply becomes validated data, so the answers land in DataFrame columns. This
        notebook needs pandas and matplotlib.
        """,
        OFFLINE_NOTE,
        """
        The offline server answers a request for JSON with a value that fits the schema; for a
        category it picks the one the ticket mentions, so the result looks like a model's.
        """,
    ),
    setup("first_token_delay=0.05", "first_token_delay: each answer takes 50 ms, like a model."),
    md(
        """
        ## The table and the schema

        Eight support tickets, and the shape we want back for each: a category and whether
        it is urgent. A dataclass, a TypedDict, a pydantic model, a JSON Schema dict or a dict
        of `name: type` all work as the schema.
        """
    ),
    code(
        """
        import tempfile
        from dataclasses import dataclass
        from pathlib import Path
        from typing import Literal

        import pandas as pd

        tickets = pd.DataFrame(
            {
                "customer": ["ana", "ben", "chen", "dara", "eli", "fay", "gus", "hana"],
                "text": [
                    "The export button crashes the app: a bug since the update.",
                    "I was charged twice this month, please fix my billing.",
                    "I cannot log in to my account after the password reset.",
                    "Another bug: the chart shows the wrong dates.",
                    "Why does my billing statement show an old address?",
                    "Please delete my account and all my data.",
                    "The app freezes when I open settings; surely a bug.",
                    "Can I pay the billing by bank transfer?",
                ],
            }
        )


        @dataclass
        class Ticket:
            category: Literal["billing", "bug", "account", "other"]
            urgent: bool


        cache_file = Path(tempfile.gettempdir()) / "ipychat-demo-batch.sqlite"
        tickets
        """
    ),
    md(
        """
        ## Classify every row

        The cell is the template: `{text}` is the row's `text` column (`{item}` would be the
        whole row). `--concurrency 4` sends four at a time; the progress bar is replaced by a
        one-line summary when the batch is done, and the table of results is shown.
        Finished replies are kept in a cache file (by default in your cache folder), so
        running the cell again, after an interrupt or a restart, sends only what is missing.
        """
    ),
    code(
        """
        %%chat --map tickets --schema Ticket --concurrency 4 --cache {cache_file} -o labels
        Classify this support ticket as billing, bug, account or other, and say if it is urgent.
        Ticket: {text}
        """
    ),
    code(
        """
        table = labels.to_pandas()[["customer", "category", "urgent", "latency", "error"]]
        table
        """
    ),
    md(
        """
        ## Plot the result
        """
    ),
    code(
        """
        import matplotlib.pyplot as plt

        counts = table["category"].value_counts().reindex(["billing", "bug", "account", "other"])
        fig, ax = plt.subplots(figsize=(5, 2.2))
        ax.barh(counts.index, counts.fillna(0).values)
        ax.invert_yaxis()
        ax.set_xlabel("tickets")
        ax.set_title("Support tickets by category")
        plt.show()
        """
    ),
    md(
        """
        ## Again, from the cache, and from Python

        The same batch again is answered from the cache: no request is sent. `ipychat.map` is
        the same thing from plain Python; `.failed` lists what failed and `.retry()` sends
        only those again.
        """
    ),
    code(
        """
        again = ipychat.map(
            "Classify this support ticket as billing, bug, account or other, "
            "and say if it is urgent.\\nTicket: {text}",
            tickets,
            schema=Ticket,
            cache=cache_file,
        )
        print(again.summary())
        print("failed:", again.failed)
        print("first:", again[0].data)
        """
    ),
]


NOTEBOOKS: dict[str, list[Cell]] = {
    "01-quickstart.ipynb": QUICKSTART,
    "02-capture-and-analyze.ipynb": CAPTURE,
    "03-teaching.ipynb": TEACHING,
    "04-providers.ipynb": PROVIDERS,
    "05-batch.ipynb": BATCH,
}


def build(cells: list[Cell]) -> nbformat.NotebookNode:
    """A notebook with no outputs and stable cell ids, so regenerating changes nothing."""
    nb = new_notebook()
    nb.metadata = {
        "kernelspec": {
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "name": "python3",
        },
        "language_info": {"name": "python"},
    }
    for number, (kind, source) in enumerate(cells, start=1):
        cell = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        cell.id = f"cell-{number:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(cells: list[Cell]) -> str:
    return nbformat.writes(build(cells)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write to")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a notebook is out of date"
    )
    args = parser.parse_args(argv)
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = args.out / name
        text = render(cells)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print(
            f"Out of date: {', '.join(stale)}; run python notebooks/make_notebooks.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
