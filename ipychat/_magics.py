"""The IPython magics: a thin shell that parses, delegates to the engine, and presents.

`%%chat` sends the cell as the next user turn, `%chat TEXT` is the one-line form that returns
the reply, and `%chat_config` shows and changes settings and sessions. `%%ipychat` and
`%ipychat_config` always exist as aliases, in case another extension owns `chat`. Every
`ChatError` becomes a one-line `UsageError`; a partial reply is kept and shown first.
"""

from __future__ import annotations

import getpass
import html
import re
import sys
from pathlib import Path
from typing import Any

from IPython.core.error import StdinNotImplementedError, UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, Dict, Enum, Float, Int, List, TraitError, Unicode, Union, observe
from traitlets import validate as trait_validate

from ._config import GENERATION_KEYS, Secret, Settings, parse_value
from ._config import validate as validate_setting
from ._conversation import Conversation, sessions
from ._errors import ChatError, ConfigError

__all__ = ["ChatMagics", "load", "unload"]

# Options of %%chat that are per-call settings (the option's dest is the setting's name).
OVERRIDES = ("model", *GENERATION_KEYS)
# Settings mirrored as traitlets, for `%config ChatMagics.x = ...` and ipython_config.py.
# The API key is left out on purpose: a key in a config cell would be saved with the notebook.
TRAIT_SETTINGS = (
    *OVERRIDES,
    "base_url",
    "system",
    "stream",
    "timeout",
    "max_retries",
    "history_limit",
    "extra_body",
    "extra_headers",
)


def _setting(trait_type: Any, help: str, **kwargs: Any) -> Any:
    """A trait mirrored into `Settings`; None means "not set here" (defaults, file, env rule)."""
    return trait_type(default_value=None, allow_none=True, help=help, **kwargs).tag(config=True)


@magics_class
class ChatMagics(Magics):
    """Chat with an OpenAI-compatible model. Settings here mirror `%chat_config`."""

    base_url = _setting(Unicode, "Endpoint prefix to which /chat/completions is appended.")
    model = _setting(Unicode, "Model name to request.")
    system = _setting(Unicode, "System prompt for sessions that have none of their own.")
    temperature = _setting(Float, "Sampling temperature, 0 <= t < 2.")
    top_p = _setting(Float, "Nucleus sampling, 0 < p <= 1.")
    max_tokens = _setting(Int, "Maximum tokens to generate.")
    presence_penalty = _setting(Float, "-2 to 2.")
    frequency_penalty = _setting(Float, "-2 to 2.")
    stop = _setting(Union, "Stop sequence(s).", trait_types=[Unicode(), List(Unicode())])
    stream = _setting(Bool, "Stream replies as they are generated.")
    timeout = _setting(Float, "Seconds to wait for the server.")
    max_retries = _setting(Int, "Retries on connection errors, 408, 409, 429 and 5xx.")
    history_limit = _setting(Int, "Send only the last N exchanges.")
    extra_body = _setting(Dict, "Provider-specific body fields, e.g. {'enable_search': True}.")
    extra_headers = _setting(Dict, "Extra HTTP headers.")
    display_mode = Enum(
        ["auto", "widget", "html", "text"],
        "auto",
        help="How replies stream: auto picks widget in a kernel and text in a terminal.",
    ).tag(config=True)
    update_rate = Float(20.0, help="Display updates per second while streaming.").tag(config=True)
    interpolate = Bool(True, help="Fill {name} references in prompts.").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        self.settings = Settings.load()
        self.sessions = sessions
        self._client: Any = None
        super().__init__(shell=shell, **kwargs)

    # -- traitlets <-> settings ----------------------------------------------------------------
    @trait_validate(*TRAIT_SETTINGS)
    def _check_setting(self, proposal: Any) -> Any:
        if proposal["value"] is None:
            return None
        try:
            validate_setting(proposal["trait"].name, proposal["value"])
        except ConfigError as exc:
            raise TraitError(str(exc)) from None
        return proposal["value"]

    @observe(*TRAIT_SETTINGS)
    def _setting_changed(self, change: Any) -> None:
        if getattr(self, "_syncing", False):
            return
        if change["new"] is None:
            self.settings.unset(change["name"])
        else:
            self.settings.set(**{change["name"]: change["new"]})

    def _sync_traits(self) -> None:
        """After %chat_config changed settings, show the same values through %config."""
        self._syncing = True
        try:
            for name in TRAIT_SETTINGS:
                value = self.settings.get(name) if self.settings.source(name) != "default" else None
                self.set_trait(name, value)
        finally:
            self._syncing = False

    @property
    def client(self) -> Any:
        if self._client is None:
            from ._client import ChatClient

            self._client = ChatClient(self.settings, on_retry=_print_retry)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- %%chat and %chat ------------------------------------------------------------------------
    @magic_arguments()
    @argument("-m", "--model", help="Model for this cell.")
    @argument("-t", "--temperature", type=float, help="Sampling temperature, 0 <= t < 2.")
    @argument("--top-p", type=float, help="Nucleus sampling, 0 < p <= 1.")
    @argument("--max-tokens", type=int, help="Maximum tokens to generate.")
    @argument("--presence-penalty", type=float, help="-2 to 2.")
    @argument("--frequency-penalty", type=float, help="-2 to 2.")
    @argument("--stop", action="append", help="Stop sequence (repeatable).")
    @argument("-s", "--session", help="Named conversation (created on first use).")
    @argument("--system", help="Set the session's system prompt.")
    @argument("--new", action="store_true", help="Start the session afresh.")
    @argument("--no-history", action="store_true", help="One-shot: send and record no history.")
    @argument("--no-stream", action="store_true", help="Wait for the whole reply.")
    @argument("-o", "--out", metavar="VAR", help="Also store the reply in variable VAR.")
    @argument("-q", "--quiet", action="store_true", help="Show nothing; only store the reply.")
    @argument("--no-interpolate", action="store_true", help="Send {braces} untouched.")
    @no_var_expand
    @line_cell_magic
    def ipychat(self, line: str, cell: str | None = None) -> Any:
        """Send the cell (or the rest of the line) as the next user turn; the reply goes to `_chat`.

        `%%chat` streams the reply into the output; `r = %chat TEXT` returns it. `{name}`
        references to variables are filled in (see --no-interpolate). Settings: %chat_config.
        """
        if cell is None:
            options, text = _split_line_magic(self.ipychat, line)
        else:
            options, text = line, cell
        args = _parse(self.ipychat, self._fill(options))
        one_line = cell is None
        try:
            reply = self._chat(args, text, one_line=one_line)
        except ChatError as exc:
            raise UsageError(str(exc)) from None
        return reply if one_line else None

    def _chat(self, args: Any, text: str, *, one_line: bool) -> Any:
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"-o needs a variable name, got {args.out!r}.")
        overrides = {key: getattr(args, key) for key in OVERRIDES if getattr(args, key) is not None}
        if args.no_stream:
            overrides["stream"] = False
        resolved = self.settings.resolve(**overrides)  # refuses bad values before anything else
        prompt = text if args.no_interpolate or not self.interpolate else self._fill(text)
        prompt = prompt.strip("\n").rstrip()  # the cell's trailing newline is not part of it
        if not prompt.strip():
            where = "after %chat" if one_line else "below %%chat"
            raise UsageError(f"The message is empty: write it {where}.")
        conversation = self.sessions.get(args.session)
        if args.new:
            conversation.reset()
        if args.system is not None:
            conversation.system = args.system
        mode = "quiet" if args.quiet else self.display_mode
        from ._display import make_view

        view = make_view(mode, resolved.model, self.update_rate)
        try:
            reply = conversation.send(
                prompt,
                client=self.client,
                history=not args.no_history,
                on_delta=view.update,
                **overrides,
            )
        except (ChatError, KeyboardInterrupt) as exc:
            partial = getattr(exc, "reply", None)
            if partial is None or not partial.text:
                view.discard()
                if isinstance(exc, KeyboardInterrupt):
                    raise UsageError("Interrupted before any reply arrived.") from None
                raise
            view.finish(partial)
            self._store(partial, args.out)
            kept = f"kept the partial reply ({len(partial.text)} characters) in _chat"
            if isinstance(exc, KeyboardInterrupt):
                raise UsageError(f"Interrupted: {kept}, marked incomplete.") from None
            raise UsageError(f"{exc} ipychat {kept}, marked incomplete.") from None
        view.finish(reply, keep=not one_line)
        self._store(reply, args.out)
        return reply

    def _fill(self, text: str) -> str:
        from ._interpolate import interpolate

        return interpolate(text, self.shell.user_ns if self.shell else {})

    def _store(self, reply: Any, name: str | None) -> None:
        if self.shell is None:
            return
        self.shell.user_ns["_chat"] = reply
        if name:
            self.shell.user_ns[name] = reply

    # -- %chat_config ------------------------------------------------------------------------------
    @magic_arguments()
    @argument("assignments", nargs="*", help="key=value settings to change.")
    @argument("--api-key", action="store_true", help="Ask for the API key with a hidden prompt.")
    @argument("--reset", action="store_true", help="Settings back to defaults, file and env.")
    @argument("--save", action="store_true", help="Save settings to the user config file.")
    @argument("--with-key", action="store_true", help="With --save: also save the API key.")
    @argument("--sessions", action="store_true", help="List the sessions.")
    @argument("-s", "--session", help="The session to act on (with --use: switch to it).")
    @argument("--use", action="store_true", help="Make --session the default for %%chat.")
    @argument("--history", action="store_true", help="Show the session's history.")
    @argument("--clear", action="store_true", help="Clear the session's history.")
    @argument("--undo", action="store_true", help="Remove the session's last exchange.")
    @argument("--export", metavar="PATH", help="Write the session to PATH (.json or .md).")
    @argument("--load", metavar="PATH", help="Load the session from a JSON export.")
    @no_var_expand
    @line_magic
    def ipychat_config(self, line: str) -> Any:
        """Show settings (no arguments), set them (key=value ...), and manage sessions.

        `{name}` references to variables are filled in, as in %%chat.
        """
        line = self._fill(line)
        if line.strip() and not line.lstrip().startswith("-"):
            options, assignments = "", _split_assignments(line)
        else:
            options, assignments = line, []
        args = _parse(self.ipychat_config, options)
        if args.assignments:
            raise UsageError(
                "Give settings as key=value, e.g. "
                "%chat_config model=ops-qwen-turbo temperature=0.3."
            )
        try:
            return self._config(args, assignments)
        except ChatError as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise UsageError(f"{exc.strerror or exc}: {exc.filename}") from None

    def _config(self, args: Any, assignments: list[tuple[str, str]]) -> Any:
        from IPython.display import display

        if assignments:
            self._set(assignments)
            return None
        if args.api_key:
            try:
                key = getpass.getpass("API key (input hidden): ")
            except (StdinNotImplementedError, EOFError):
                raise UsageError(
                    "This front end cannot ask for input; set the IPYCHAT_API_KEY environment "
                    "variable or put api_key in the config file instead."
                ) from None
            if not key.strip():
                raise UsageError("No key entered; the API key is unchanged.")
            self.settings.set(api_key=key)
            print(f"api_key set ({Secret(key.strip()).masked()}).")
            return None
        if args.reset:
            self.settings.reset()
            self._sync_traits()
            print("Settings reset to defaults, config file and environment.")
            return None
        if args.save:
            # A key that came from the file itself is kept there: rewriting must not lose it.
            kept = self.settings.source("api_key") == "file"
            path = self.settings.save(include_api_key=args.with_key or kept)
            key_note = " (with the API key)" if args.with_key or kept else ""
            print(f"Saved settings to {path}{key_note}.")
            return None
        if args.sessions:
            return self._show_sessions()
        if args.use:
            if not args.session:
                raise UsageError("--use needs --session NAME.")
            self.sessions.get(args.session)
            self.sessions.current = args.session
            print(f"%%chat now uses session {args.session!r}.")
            return None
        conversation = self.sessions.get(args.session, create=not args.session or bool(args.load))
        if args.clear:
            conversation.reset()
            print(f"Cleared the history of session {conversation.name!r}.")
            return None
        if args.undo:
            removed = conversation.undo()
            print("Removed the last exchange." if removed else "There is no exchange to undo.")
            return None
        if args.export:
            path = Path(args.export).expanduser()
            text = conversation.to_markdown() if path.suffix == ".md" else conversation.to_json()
            path.write_text(text, encoding="utf-8")
            print(f"Wrote {len(conversation)} exchanges of {conversation.name!r} to {path}.")
            return None
        if args.load:
            path = Path(args.load).expanduser()
            try:
                text = path.read_text("utf-8")
            except UnicodeDecodeError:
                raise UsageError(f"{path} is not text; --load needs a JSON export.") from None
            loaded = Conversation.from_json(text)
            loaded.name = args.session or loaded.name
            self.sessions.add(loaded)
            print(f"Loaded {len(loaded)} exchanges into session {loaded.name!r}.")
            return None
        if args.history:
            display(_HistoryTable(conversation))
            return None
        display(_SettingsTable(self.settings, self.sessions.current))
        return None

    def _set(self, assignments: list[tuple[str, str]]) -> None:
        values = {key: parse_value(key, text) for key, text in assignments}
        self.settings.set(**values)
        self._sync_traits()
        if values.get("api_key"):
            print(
                "Warning: a key typed in a cell is saved with the notebook; prefer "
                "%chat_config --api-key or the IPYCHAT_API_KEY environment variable.",
                file=sys.stderr,
            )

    def _show_sessions(self) -> None:
        from IPython.display import display

        rows = [
            (
                name,
                str(len(self.sessions.get(name))),
                "yes" if name == self.sessions.current else "",
            )
            for name in self.sessions.names()
        ]
        display(_Table(["session", "exchanges", "current"], rows))


class _Table:
    """A small table with escaped cells: HTML in notebooks, aligned text in terminals."""

    def __init__(self, header: list[str], rows: list[tuple[str, ...]]) -> None:
        self.header = header
        self.rows = rows

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in self.header)
        body = "".join(
            "<tr>"
            + "".join(
                f"<td style='text-align:left; white-space:pre-wrap'>{html.escape(c)}</td>"
                for c in row
            )
            + "</tr>"
            for row in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        table = [self.header, *[list(r) for r in self.rows]]
        widths = [min(60, max(len(r[i]) for r in table)) for i in range(len(self.header))]
        lines = [
            "  ".join(c[:60].ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in table
        ]
        return "\n".join(lines)


class _SettingsTable(_Table):
    def __init__(self, settings: Settings, session: str) -> None:
        rows = [(k, v, s) for k, v, s in settings.describe()]
        rows.append(("(session)", session, "%chat_config --use -s NAME"))
        super().__init__(["setting", "value", "from"], rows)


class _HistoryTable(_Table):
    def __init__(self, conversation: Conversation) -> None:
        rows = [
            (str(i), m.role + (" (incomplete)" if m.incomplete else ""), m.content)
            for i, m in enumerate(conversation.all_messages())
        ]
        super().__init__(["#", "role", "content"], rows)


# An option next to which argparse would echo a value that may be the key (`--api-key=sk-...`).
_KEY_OPTION = re.compile(r"(?:^|\s)--(?:a|[\w-]*key)")


def _parse(magic: Any, line: str) -> Any:
    """`parse_argstring`, with unbalanced quotes and a misplaced key turned into clear errors."""
    try:
        return _unquote(parse_argstring(magic, line))
    except ValueError as exc:  # from shlex: "No closing quotation"
        raise UsageError(f"Unbalanced quotes in the options ({exc}); check them.") from None
    except UsageError:
        if _KEY_OPTION.search(line):
            raise UsageError(
                "Could not read the options; the message is not shown as it may hold the key. "
                "--api-key takes no value: run %chat_config --api-key alone and type the key."
            ) from None
        raise


def _unquote(args: Any) -> Any:
    """IPython's argument splitter keeps quotes: `--system "Be brief."` -> `Be brief.`."""
    for name, value in vars(args).items():
        if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] in "\"'":
            setattr(args, name, value[1:-1])
        elif isinstance(value, list):
            setattr(
                args,
                name,
                [
                    v[1:-1] if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] in "\"'" else v
                    for v in value
                ],
            )
    return args


def _print_retry(notice: Any) -> None:
    print(f"ipychat: {notice}", file=sys.stderr, flush=True)


def _split_line_magic(method: Any, line: str) -> tuple[str, str]:
    """`%chat -m x -t 0.2 what is {x}?` -> ("-m x -t 0.2", "what is {x}?")."""
    parser = method.parser
    words = line.split(" ")
    taken = 0
    while taken < len(words):
        word = words[taken]
        if not word:
            taken += 1
            continue
        if not word.startswith("-") or word == "-" or word[1:2].isdigit():
            break
        action = parser._option_string_actions.get(word.split("=")[0])
        if action is None:
            break
        taken += 1
        if action.nargs != 0 and "=" not in word:
            taken += 1
    return " ".join(words[:taken]), " ".join(words[taken:])


def _split_assignments(line: str) -> list[tuple[str, str]]:
    """`a=1 b="x y" c={"k": [1, 2]}` -> [("a", "1"), ("b", '"x y"'), ("c", '{"k": [1, 2]}')].

    Splits on spaces outside quotes and brackets, so values may be any Python literal.
    """
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    quote = ""
    for char in line.strip():
        if quote:
            current.append(char)
            if char == quote and (len(current) < 2 or current[-2] != "\\"):
                quote = ""
            continue
        if char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char.isspace() and depth <= 0:
            if current:
                parts.append("".join(current))
                current = []
            continue
        current.append(char)
    if quote or depth > 0:
        raise UsageError("Unbalanced quotes or brackets in %chat_config; check the values.")
    if current:
        parts.append("".join(current))
    assignments = []
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq or not key.strip().isidentifier():
            # Next to `api_key= ` the stray word may be the key itself: never echo it then.
            shown = "a word that is not key=value" if "api_key" in line else repr(part)
            raise UsageError(
                f"Expected key=value, got {shown}; quote values that contain spaces, "
                "e.g. %chat_config model=ops-qwen-turbo system='Be brief.'."
            )
        assignments.append((key.strip(), value))
    return assignments


_instance: ChatMagics | None = None
_warned_taken = False


def load(shell: Any) -> None:
    """Register the magics; `chat` names only where no other extension holds them."""
    global _instance, _warned_taken
    if _instance is not None:
        unload(shell)
    _instance = ChatMagics(shell=shell)
    shell.register_magics(_instance)
    registry = shell.magics_manager.magics
    taken = []
    for short, full, kinds in (
        ("chat", "ipychat", ("line", "cell")),
        ("chat_config", "ipychat_config", ("line",)),
    ):
        for kind in kinds:
            existing = registry[kind].get(short)
            if existing is None or isinstance(getattr(existing, "__self__", None), ChatMagics):
                registry[kind][short] = registry[kind][full]
            else:
                taken.append(("%%" if kind == "cell" else "%") + short)
    if taken and not _warned_taken:
        _warned_taken = True
        print(
            f"ipychat: {', '.join(taken)} already belong to another extension; "
            "use %%ipychat and %ipychat_config.",
            file=sys.stderr,
        )


def unload(shell: Any) -> None:
    global _instance
    if _instance is None:
        return
    for kind in ("line", "cell"):
        table = shell.magics_manager.magics[kind]
        for name in [n for n, f in table.items() if getattr(f, "__self__", None) is _instance]:
            del table[name]
    _instance.close()
    _instance = None
