"""`python -m ipychat`: command line tools, starting with the offline server for classrooms.

    python -m ipychat serve --port 8765 --script lesson.toml

Only the standard library and `ipychat._server` load here, so it starts fast and works in an
environment without IPython.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from ._server import LocalServer


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
        "no network and no key needed. Replies echo the prompt, or follow a lesson script.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8765, help="port to listen on (0: any free)")
    serve.add_argument("--script", metavar="FILE", help="lesson script: TOML [[turn]] tables")
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
    serve.set_defaults(run=_serve)
    return parser


def _serve(args: argparse.Namespace) -> int:
    try:
        server = LocalServer(
            args.host,
            args.port,
            script=args.script,
            token_delay=args.token_delay,
            first_token_delay=args.first_token_delay,
            model=args.model,
        ).start()
    except (OSError, ValueError) as error:
        print(f"ipychat: cannot start the server: {error}", file=sys.stderr)
        return 1
    print(f"ipychat local server on {server.base_url} (Ctrl-C to stop)", flush=True)
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


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Treat SIGTERM like Ctrl-C, so a service manager stops the server cleanly too."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
