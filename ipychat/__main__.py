"""`python -m ipychat`: command line tools for classrooms: the offline server, and lessons.

    python -m ipychat serve --port 8765 --script intro
    python -m ipychat serve --record lesson.toml --upstream https://api.example.com/v1
    python -m ipychat serve --script lesson.toml --pace recorded --strict
    python -m ipychat lesson notebook.ipynb > lesson.toml

Only the standard library and `ipychat._server` load for serving, so it starts fast and works in
an environment without IPython; recording imports httpx and tomli-w when asked to.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import signal
import socket
import sys
import threading
import time
from types import FrameType

from ._lesson import bundled_lessons, resolve_script
from ._server import LocalServer
from ._server_budget import Students


def main(argv: list[str] | None = None) -> int:
    """Run the command line with `argv` (default: `sys.argv[1:]`); return the exit status."""
    args = _parser().parse_args(argv)
    return args.run(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ipychat",
        description="Command line tools for ipychat, the Jupyter chat magic.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the offline OpenAI-compatible server",
        description="Run the bundled offline OpenAI-compatible server in the foreground: "
        "no network and no key needed. Replies echo the prompt, or follow a lesson script; "
        "with --upstream it relays to a real model and --record writes a lesson from that.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8765, help="port to listen on (0: any free)")
    serve.add_argument(
        "--script", metavar="LESSON", help="lesson script: a TOML file, or a bundled lesson's name"
    )
    serve.add_argument("--list-lessons", action="store_true", help="list the bundled lessons")
    serve.add_argument(
        "--pace",
        default="recorded",
        metavar="recorded|fast|N",
        help="recorded turns stream at their recorded pace (default), as fast as possible, "
        "or N tokens a second",
    )
    serve.add_argument(
        "--strict",
        action="store_true",
        help="answer a prompt that is not in the lesson with an error instead of an echo",
    )
    serve.add_argument("--upstream", metavar="URL", help="relay to this OpenAI-compatible base URL")
    serve.add_argument(
        "--record", metavar="LESSON", help="append each relayed exchange to this lesson script"
    )
    serve.add_argument(
        "--students", metavar="FILE", help="class list: one bearer token per line, with budgets"
    )
    serve.add_argument("--max-requests-per-student", type=int, metavar="N")
    serve.add_argument("--max-tokens-per-student", type=int, metavar="N")
    serve.add_argument("--quiet", action="store_true", help="no request log lines")
    serve.add_argument(
        "--token-delay", type=float, default=0.0, metavar="S", help="seconds between tokens"
    )
    serve.add_argument(
        "--first-token-delay",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds before the first token",
    )
    serve.add_argument("--model", default="ipychat-local", help="model name to list")
    serve.add_argument(
        "--response-formats",
        default="text,json_object,json_schema",
        metavar="LIST",
        help="response_format types accepted (others get 400), e.g. text,json_object",
    )
    serve.add_argument(
        "--max-concurrent", type=int, metavar="N", help="answer 429 beyond N requests at a time"
    )
    serve.add_argument(
        "--retry-after", type=float, default=1.0, metavar="S", help="the 429's Retry-After"
    )
    serve.set_defaults(run=_serve)
    lesson = commands.add_parser(
        "lesson",
        help="turn a saved notebook's chats into a lesson script",
        description="Print a lesson script (TOML) made from the %%chat replies saved in a "
        "notebook, for `serve --script`.",
    )
    lesson.add_argument("notebook", metavar="NOTEBOOK.ipynb")
    lesson.set_defaults(run=_lesson)
    return parser


def _serve(args: argparse.Namespace) -> int:
    if args.list_lessons:
        for name, path in bundled_lessons().items():
            print(f"{name}\t{_first_comment(path)}")
        return 0
    if args.record and not args.upstream:
        print("ipychat: --record needs --upstream URL, the model to record.", file=sys.stderr)
        return 2
    log = None if args.quiet else _log
    try:
        script = resolve_script(args.script) if args.script else None
        students = None
        if args.students:
            students = Students.load(
                args.students,
                max_requests=args.max_requests_per_student,
                max_tokens=args.max_tokens_per_student,
            )
        api_key = _api_key(args.upstream) if args.upstream else ""
        server = LocalServer(
            args.host,
            args.port,
            script=script,
            token_delay=args.token_delay,
            first_token_delay=args.first_token_delay,
            model=args.model,
            pace=args.pace,
            strict=args.strict,
            upstream=args.upstream,
            api_key=api_key,
            record=args.record,
            students=students,
            log=log,
            keep_requests=False,
            response_formats=tuple(filter(None, args.response_formats.split(","))),
            max_concurrent=args.max_concurrent,
            retry_after=args.retry_after,
        ).start()
    except (OSError, ValueError) as error:
        print(f"ipychat: cannot start the server: {error}", file=sys.stderr)
        return 1
    print(f"ipychat local server on {server.base_url} (Ctrl-C to stop)", flush=True)
    for line in _about(server, args):
        print(line, flush=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0


def _about(server: LocalServer, args: argparse.Namespace) -> list[str]:
    """What a teacher needs to know once the server runs: where students connect, and how."""
    lines = []
    if args.host in ("0.0.0.0", ""):
        hosts = _lan_addresses()
        for host in hosts:
            lines.append(f"  students connect to http://{host}:{server.port}/v1")
        if not hosts:
            lines.append("  no network address found; find this machine's with `hostname -I`")
    if server.upstream is not None:
        lines.append(f"  relaying to {server.upstream.where}")
        if server.students is None and not args.host.startswith("127."):
            lines.append(
                "  warning: anyone who can reach this server spends your key; "
                "give out tokens with --students FILE"
            )
    if server.recorder is not None:
        lines.append(f"  recording each exchange to {server.recorder.path}")
    if server.students is not None:
        lines.append(f"  {len(server.students)} student tokens; requests without one are refused")
    return lines


def _lan_addresses() -> list[str]:
    """This machine's addresses other machines can reach, best first; no packet is sent."""
    found: list[str] = []
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 1))  # UDP connect only picks the outgoing interface
        found.append(probe.getsockname()[0])
    return [host for host in found if not host.startswith(("127.", "0."))]


def _api_key(upstream: str) -> str:
    """The upstream key: from IPYCHAT_API_KEY, else asked for without echo. Never written."""
    key = os.environ.get("IPYCHAT_API_KEY")
    if key is not None:
        return key.strip()
    if not sys.stdin.isatty():
        return ""
    return getpass.getpass(f"API key for {upstream} (hidden; Enter for none): ").strip()


_log_lock = threading.Lock()


def _log(line: str) -> None:
    with _log_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _first_comment(path: os.PathLike[str]) -> str:
    with open(path, encoding="utf-8") as file:
        for line in file:
            if line.startswith("#"):
                return line.lstrip("# ").rstrip()
    return ""


def _lesson(args: argparse.Namespace) -> int:
    from ._lesson_notebook import lesson_from_notebook

    try:
        text = lesson_from_notebook(args.notebook)
    except (OSError, ValueError) as error:
        print(f"ipychat: cannot make a lesson from {args.notebook}: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Treat SIGTERM like Ctrl-C, so a service manager stops the server cleanly too."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
