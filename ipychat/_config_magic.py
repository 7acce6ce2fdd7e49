"""`%chat_config`: one small handler per subcommand, found through a table.

Each subcommand is a function `handler(magics, args)` registered with `@command(flag, ...)`;
its option is added to `%chat_config`'s parser (and so to `%chat_config?`, `-h` and tab
completion) from this table. Options that only modify a subcommand (`-s`, `--with-key`,
`--new`) are listed in `MODIFIERS`. To add a subcommand, add one decorated function here (or in
a module of its own imported at the end of this one); nothing in `_magics.py` changes.

Setting commands (`kind="setting"`) may be combined and run in table order: `--reset`,
`--unset`, `key=value`, `--api-key`, `--save`. Every other command runs alone: given with
anything else, the line is refused with one line and nothing happens.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import StdinNotImplementedError, UsageError
from IPython.core.magic_arguments import argument

from ._config import Secret, parse_value
from ._conversation import Conversation
from ._safetext import one_line

if TYPE_CHECKING:
    from argparse import Namespace

    from ._magics import ChatMagics

__all__ = [
    "COMMANDS",
    "MODIFIERS",
    "Command",
    "add_arguments",
    "command",
    "run",
]

Handler = Callable[["ChatMagics", "Namespace"], Any]


@dataclass(frozen=True)
class Command:
    """One `%chat_config` subcommand: its option (flags and argparse keywords) and handler.

    `dest` is where argparse (or the line splitter, for `key=value` and bare names) puts it;
    a command without flags has no option of its own.
    """

    dest: str
    flags: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    handler: Handler | None = None
    kind: str = "action"  # "setting" commands combine, in table order; an "action" runs alone

    @property
    def shown(self) -> str:
        """How the user wrote it, for messages."""
        if self.flags:
            return self.flags[-1]
        return "key=value" if self.dest == "assignments" else "a setting name"


# dest -> Command, in the order they run.
COMMANDS: dict[str, Command] = {}
# Options that change how a subcommand acts, not subcommands themselves.
MODIFIERS: list[Command] = [
    Command("session", ("-s", "--session"), {"help": "The session to act on."}),
    Command("with_key", ("--with-key",), {"action": "store_true", "help": "--save the key too."}),
    Command("new", ("--new",), {"action": "store_true", "help": "--use: create the session."}),
    Command("help", ("-h", "--help"), {"action": "store_true", "help": "Show this help."}),
]


def command(*flags: str, kind: str = "action", **options: Any) -> Callable[[Handler], Handler]:
    """Register `handler` as the subcommand behind `flags` (a flag unless `metavar` is given)."""
    if "metavar" not in options:
        options.setdefault("action", "store_true")

    def register(handler: Handler) -> Handler:
        dest = flags[-1].lstrip("-").replace("-", "_")
        COMMANDS[dest] = Command(dest, tuple(flags), options, handler, kind)
        return handler

    return register


def add_arguments(func: Any) -> Any:
    """Give the `%chat_config` method its options, from `COMMANDS` and `MODIFIERS`.

    Called when its parser is first built (see `_lazy_parser`), so `%load_ext` need not import
    this module and its handlers.
    """
    entries = [entry for entry in [*COMMANDS.values(), *MODIFIERS] if entry.flags]
    for entry in reversed(entries):  # argument decorators apply bottom-up
        func = argument(*entry.flags, **entry.options)(func)
    return argument(
        "assignments", nargs="*", help="key=value settings to change, or setting names to show."
    )(func)


def _given(args: Namespace, entry: Command) -> bool:
    return bool(getattr(args, entry.dest, None))


def run(magics: ChatMagics, args: Namespace) -> Any:
    """Check the combination first, then run every command given, in table order."""
    given = [entry for entry in COMMANDS.values() if _given(args, entry)]
    actions = [entry for entry in given if entry.kind == "action"]
    if actions and len(given) > 1:
        shown = ", ".join(entry.shown for entry in given)
        raise UsageError(
            f"{shown} cannot be combined: run them one per line. Only settings combine: "
            "--reset, --unset, key=value, --api-key, then --save, in that order."
        )
    for modifier, needs in (("with_key", "save"), ("new", "use")):
        if getattr(args, modifier) and not getattr(args, needs):
            raise UsageError(f"--{modifier.replace('_', '-')} goes with --{needs}.")
    if args.session and not actions:
        raise UsageError(
            "-s NAME goes with a session command (--use, --history, --clear, --undo, --export, "
            "--load, --delete, --rename); settings are the same for every session."
        )
    if not given:
        return show_settings(magics, args)
    result = None
    for entry in given:
        if entry.handler is not None:
            result = entry.handler(magics, args)
    return result


def _display(obj: Any) -> None:
    from IPython.display import display

    display(obj)


def _session(magics: ChatMagics, args: Namespace) -> Conversation:
    """The session the line names (`-s NAME`, which must exist), or the current one."""
    if args.session and args.session not in magics.sessions:
        known = ", ".join(magics.sessions.names()) or "none yet"
        raise UsageError(f"No session named {args.session!r} (sessions: {known}).")
    return magics.sessions.get(args.session)


# -- settings ------------------------------------------------------------------------------------
def show_settings(magics: ChatMagics, args: Namespace) -> None:
    from ._tables import SettingsTable

    _display(SettingsTable(magics.settings, magics.sessions.current))


@command("--reset", kind="setting", help="Forget settings made in this kernel.")
def reset(magics: ChatMagics, args: Namespace) -> None:
    magics.reset_settings()
    print("Settings reset to defaults, config file, environment and IPython config.")


@command(
    "--unset", kind="setting", metavar="NAME", nargs="+", help="Back to the file/env/default value."
)
def unset(magics: ChatMagics, args: Namespace) -> None:
    magics.settings.unset(*args.unset)
    magics.sync_traits()
    for name in args.unset:
        print(_describe_one(magics, "base_url" if name == "host" else name))


def set_values(magics: ChatMagics, args: Namespace) -> None:
    """`key=value ...`; `key=none` unsets the key, so the file's or env's value applies again."""
    values = {key: parse_value(key, text) for key, text in args.assignments}
    magics.settings.set(**{k: v for k, v in values.items() if v is not None})
    if any(v is None for v in values.values()):
        magics.settings.unset(*[k for k, v in values.items() if v is None])
    magics.sync_traits()
    if values.get("api_key"):
        print(
            "Warning: a key typed in a cell is saved with the notebook; prefer "
            "%chat_config --api-key or the IPYCHAT_API_KEY environment variable.",
            file=sys.stderr,
        )


COMMANDS["assignments"] = Command("assignments", handler=set_values, kind="setting")


@command("--api-key", kind="setting", help="Ask for the API key with a hidden prompt.")
def api_key(magics: ChatMagics, args: Namespace) -> None:
    try:
        from getpass import getpass  # only when a key is typed

        key = getpass("API key (input hidden): ")
    except (StdinNotImplementedError, EOFError):
        raise UsageError(
            "This front end cannot ask for input; set the IPYCHAT_API_KEY environment "
            "variable or put api_key in the config file instead."
        ) from None
    if not key.strip():
        raise UsageError("No key entered; the API key is unchanged.")
    magics.settings.set(api_key=key)
    print(f"api_key set ({Secret(key.strip()).masked()}).")


@command("--save", kind="setting", help="Save settings to the user config file.")
def save(magics: ChatMagics, args: Namespace) -> None:
    """The file, config and kernel values (never the environment's); see `Settings.save`."""
    path = magics.settings.save(include_api_key=args.with_key)
    source = magics.settings.source("api_key")  # a key from the file is written back
    note = " (with the API key)" if args.with_key or source == "file" else ""
    if source == "env":  # values from the environment are never saved, the key included
        note = " (without the API key: it comes from the environment, which is not saved)"
    elif note == "" and source != "default":
        note = " (without the API key; --with-key saves it)"
    print(f"Saved settings to {path}{note}.")


def _describe_one(magics: ChatMagics, name: str) -> str:
    for key, shown, source in magics.settings.describe():
        if key == name:
            return one_line(f"{key} = {shown}  (from {source})")
    known = ", ".join(key for key, _, _ in magics.settings.describe())
    raise UsageError(f"Unknown setting {name!r}; settings: {known}.")


def show_one(magics: ChatMagics, args: Namespace) -> None:
    """`%chat_config model temperature`: those settings, their values and sources."""
    for name in args.show:
        print(_describe_one(magics, name))


COMMANDS["show"] = Command("show", handler=show_one)


# -- sessions ------------------------------------------------------------------------------------
@command("--sessions", help="List the sessions.")
def list_sessions(magics: ChatMagics, args: Namespace) -> None:
    from ._tables import SessionsTable

    _display(SessionsTable(magics.sessions))


@command("--use", help="Make -s NAME the session %%chat uses (--new to create it).")
def use(magics: ChatMagics, args: Namespace) -> None:
    if not args.session:
        raise UsageError("--use needs --session NAME (-s NAME).")
    if args.session not in magics.sessions and not args.new:
        known = ", ".join(magics.sessions.names()) or "none yet"
        raise UsageError(
            f"No session named {args.session!r} (sessions: {known}); "
            f"add --new to create it: %chat_config --use --new -s {args.session}"
        )
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
    redactor = magics.settings.redactor()  # e.g. a key the user pasted into a prompt
    if path.suffix == ".md":
        text = redactor.text(conversation.to_markdown())
    else:
        text = conversation.to_json(redact=redactor.json)
    path.write_text(text, encoding="utf-8")
    print(f"Wrote {len(conversation)} exchanges of {conversation.name!r} to {path}.")


@command("--load", metavar="PATH", help="Load a JSON export as session -s NAME or PATH's name.")
def load(magics: ChatMagics, args: Namespace) -> None:
    """Into a new (or empty) session only: loading never replaces a history silently."""
    path = Path(args.load).expanduser()
    name = args.session or path.stem
    if name in magics.sessions and len(magics.sessions.get(name)):
        held = len(magics.sessions.get(name))
        raise UsageError(
            f"Session {name!r} already has {held} exchanges; load into a new one with "
            f"-s NEW_NAME, or empty it first with %chat_config --clear -s {name}."
        )
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not text; --load needs a JSON export.") from None
    loaded = Conversation.from_json(text)
    loaded.name = name
    magics.sessions.add(loaded)
    print(f"Loaded {len(loaded)} exchanges into session {name!r}; use it with %%chat -s {name}.")


@command("--delete", help="Delete session -s NAME.")
def delete(magics: ChatMagics, args: Namespace) -> None:
    if not args.session:
        raise UsageError("--delete needs -s NAME (the session to delete).")
    _session(magics, args)
    magics.sessions.remove(args.session)
    print(f"Deleted session {args.session!r}; %%chat uses {magics.sessions.current!r}.")


@command("--rename", metavar="NEW", help="Rename the session (-s NAME, or the current one).")
def rename(magics: ChatMagics, args: Namespace) -> None:
    conversation = _session(magics, args)
    new, old = args.rename, conversation.name
    if not new.strip():
        raise UsageError("--rename needs a new name.")
    if new in magics.sessions:
        raise UsageError(f"There is already a session named {new!r}; pick another name.")
    was_current = magics.sessions.current == old
    magics.sessions.remove(old)
    conversation.name = new
    magics.sessions.add(conversation)
    if was_current:
        magics.sessions.current = new
    print(f"Renamed session {old!r} to {new!r}.")


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


# -- the endpoint --------------------------------------------------------------------------------
@command("--models", help="List the models the endpoint offers (GET base_url/models).")
def models(magics: ChatMagics, args: Namespace) -> None:
    from ._models_list import list_models
    from ._tables import Table

    resolved = magics.settings.resolve()
    names = list_models(resolved)
    current = resolved.model
    rows = [(name, "yes" if name == current else "") for name in names]
    _display(Table(["model", "in use"], rows))


from . import _record_magic  # noqa: E402, F401  (registers --record)
