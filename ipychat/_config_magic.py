"""`%chat_config`: one small handler per subcommand, found through a table.

Each subcommand is a function `handler(magics, args)` registered with `@command(flag, ...)`;
its option is added to `%chat_config`'s parser (and so to `%chat_config?`) from this table, and
`run` calls the first handler whose option was given. Options that only modify a subcommand
(`-s`, `--with-key`) are listed in `MODIFIERS`. To add a subcommand, add one decorated function
here (or in a module of its own imported below); nothing in `_magics.py` changes.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import StdinNotImplementedError, UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from ._config import Secret, parse_value
from ._conversation import Conversation

if TYPE_CHECKING:
    from argparse import Namespace

    from ._magics import ChatMagics

__all__ = ["COMMANDS", "MODIFIERS", "Command", "command", "config_arguments", "run"]

Handler = Callable[["ChatMagics", "Namespace"], Any]


@dataclass(frozen=True)
class Command:
    """One `%chat_config` subcommand: its option (flags and argparse keywords) and handler."""

    flags: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    handler: Handler | None = None

    @property
    def dest(self) -> str:
        return self.flags[-1].lstrip("-").replace("-", "_")


# dest -> Command, in the order `run` looks for them (the first given one runs).
COMMANDS: dict[str, Command] = {}
# Options that change how a subcommand acts, not subcommands themselves.
MODIFIERS: list[Command] = [
    Command(("-s", "--session"), {"help": "The session to act on (with --use: switch to it)."}),
    Command(("--with-key",), {"action": "store_true", "help": "With --save: also save the key."}),
]


def command(*flags: str, **options: Any) -> Callable[[Handler], Handler]:
    """Register `handler` as the subcommand behind `flags` (a flag unless `metavar` is given)."""
    if "metavar" not in options:
        options.setdefault("action", "store_true")

    def register(handler: Handler) -> Handler:
        entry = Command(tuple(flags), options, handler)
        COMMANDS[entry.dest] = entry
        return handler

    return register


def config_arguments(func: Any) -> Any:
    """Give the `%chat_config` method its parser, built from `MODIFIERS` and `COMMANDS`."""
    entries = [*COMMANDS.values(), *MODIFIERS]
    for entry in reversed(entries):  # argument decorators apply bottom-up
        func = argument(*entry.flags, **entry.options)(func)
    func = argument("assignments", nargs="*", help="key=value settings to change.")(func)
    return magic_arguments()(func)


def run(magics: ChatMagics, args: Namespace, assignments: list[tuple[str, str]]) -> Any:
    """Do what the parsed line asks: set values, or run the first subcommand given."""
    if assignments:
        return set_values(magics, assignments)
    for dest, entry in COMMANDS.items():
        if getattr(args, dest, None) and entry.handler is not None:
            return entry.handler(magics, args)
    return show_settings(magics, args)


def _display(obj: Any) -> None:
    from IPython.display import display

    display(obj)


def _session(magics: ChatMagics, args: Namespace, *, create: bool = False) -> Conversation:
    """The session the line names (`-s NAME`), or the current one."""
    return magics.sessions.get(args.session, create=not args.session or create)


# -- settings ------------------------------------------------------------------------------------
def set_values(magics: ChatMagics, assignments: list[tuple[str, str]]) -> None:
    values = {key: parse_value(key, text) for key, text in assignments}
    magics.settings.set(**values)
    magics.sync_traits()
    if values.get("api_key"):
        print(
            "Warning: a key typed in a cell is saved with the notebook; prefer "
            "%chat_config --api-key or the IPYCHAT_API_KEY environment variable.",
            file=sys.stderr,
        )


def show_settings(magics: ChatMagics, args: Namespace) -> None:
    from ._tables import SettingsTable

    _display(SettingsTable(magics.settings, magics.sessions.current))


@command("--api-key", help="Ask for the API key with a hidden prompt.")
def api_key(magics: ChatMagics, args: Namespace) -> None:
    try:
        key = getpass.getpass("API key (input hidden): ")
    except (StdinNotImplementedError, EOFError):
        raise UsageError(
            "This front end cannot ask for input; set the IPYCHAT_API_KEY environment "
            "variable or put api_key in the config file instead."
        ) from None
    if not key.strip():
        raise UsageError("No key entered; the API key is unchanged.")
    magics.settings.set(api_key=key)
    print(f"api_key set ({Secret(key.strip()).masked()}).")


@command("--reset", help="Settings back to defaults, file and env.")
def reset(magics: ChatMagics, args: Namespace) -> None:
    magics.settings.reset()
    magics.sync_traits()
    print("Settings reset to defaults, config file and environment.")


@command("--save", help="Save settings to the user config file.")
def save(magics: ChatMagics, args: Namespace) -> None:
    # A key that came from the file itself is kept there: rewriting must not lose it.
    kept = magics.settings.source("api_key") == "file"
    path = magics.settings.save(include_api_key=args.with_key or kept)
    key_note = " (with the API key)" if args.with_key or kept else ""
    print(f"Saved settings to {path}{key_note}.")


# -- sessions ------------------------------------------------------------------------------------
@command("--sessions", help="List the sessions.")
def list_sessions(magics: ChatMagics, args: Namespace) -> None:
    from ._tables import SessionsTable

    _display(SessionsTable(magics.sessions))


@command("--use", help="Make --session the default for %%chat.")
def use(magics: ChatMagics, args: Namespace) -> None:
    if not args.session:
        raise UsageError("--use needs --session NAME.")
    magics.sessions.get(args.session)
    magics.sessions.current = args.session
    print(f"%%chat now uses session {args.session!r}.")


@command("--clear", help="Clear the session's history.")
def clear(magics: ChatMagics, args: Namespace) -> None:
    conversation = _session(magics, args)
    conversation.reset()
    print(f"Cleared the history of session {conversation.name!r}.")


@command("--undo", help="Remove the session's last exchange.")
def undo(magics: ChatMagics, args: Namespace) -> None:
    removed = _session(magics, args).undo()
    print("Removed the last exchange." if removed else "There is no exchange to undo.")


@command("--export", metavar="PATH", help="Write the session to PATH (.json or .md).")
def export(magics: ChatMagics, args: Namespace) -> None:
    conversation = _session(magics, args)
    path = Path(args.export).expanduser()
    text = conversation.to_markdown() if path.suffix == ".md" else conversation.to_json()
    path.write_text(text, encoding="utf-8")
    print(f"Wrote {len(conversation)} exchanges of {conversation.name!r} to {path}.")


@command("--load", metavar="PATH", help="Load the session from a JSON export.")
def load(magics: ChatMagics, args: Namespace) -> None:
    path = Path(args.load).expanduser()
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not text; --load needs a JSON export.") from None
    loaded = Conversation.from_json(text)
    loaded.name = args.session or loaded.name
    magics.sessions.add(loaded)
    print(f"Loaded {len(loaded)} exchanges into session {loaded.name!r}.")


@command(
    "--restore",
    metavar="PATH",
    nargs="?",
    const=True,
    help="Rebuild every session from a saved notebook's replies (default: this notebook).",
)
def restore(magics: ChatMagics, args: Namespace) -> None:
    from ._restore import notebook_path
    from ._restore import restore as restore_notebook

    path = args.restore if isinstance(args.restore, str) else None
    if path is None:
        path = notebook_path(magics.shell.user_ns if magics.shell else None)
        if path is None:
            raise UsageError(
                "This front end does not say which notebook this is; "
                "give its path: %chat_config --restore PATH.ipynb"
            )
    print(restore_notebook(path, magics.sessions).summary())


def restore_at_load(magics: ChatMagics) -> None:
    """`ChatMagics.restore = True`: restore at `%load_ext` when the notebook is known."""
    from ._errors import ChatError
    from ._restore import notebook_path
    from ._restore import restore as restore_notebook

    path = notebook_path(magics.shell.user_ns if magics.shell else None)
    if path is None:
        print(
            "ipychat: ChatMagics.restore is on, but this front end does not say which notebook "
            "this is; run %chat_config --restore PATH.ipynb.",
            file=sys.stderr,
        )
        return
    try:
        print(f"ipychat: {restore_notebook(path, magics.sessions).summary()}")
    except (ChatError, OSError) as exc:
        print(f"ipychat: could not restore from {path}: {exc}", file=sys.stderr)


@command("--history", help="Show the session's history.")
def history(magics: ChatMagics, args: Namespace) -> None:
    from ._tables import HistoryTable

    _display(HistoryTable(_session(magics, args)))
