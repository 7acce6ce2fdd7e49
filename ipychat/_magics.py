"""The IPython magics: a thin shell that parses, delegates to the engine, and presents.

`%%chat` sends the cell as the next user turn, `%chat TEXT` is the one-line form that returns
the reply, and `%chat_config` shows and changes settings and sessions. `%%ipychat` and
`%ipychat_config` always exist as aliases, in case another extension owns `chat`. Every
`ChatError` becomes a one-line `UsageError`; a partial reply is kept and shown first.
"""

from __future__ import annotations

import sys
from keyword import iskeyword
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import (
    Magics,
    line_cell_magic,
    line_magic,
    magics_class,
    needs_local_scope,
    no_var_expand,
)
from IPython.core.magic_arguments import argument
from traitlets import Bool, Enum, Float

from . import _batch_magic
from ._cells import CellTracker
from ._config import Settings
from ._errors import ChatError
from ._lazy_parser import lazy_magic_arguments, lazy_table_arguments
from ._magic_args import (
    Filler,
    help_text,
    one_line_error,
    parse,
    split_assignment,
    split_config_line,
    split_line_magic,
)
from ._magic_settings import OVERRIDES, SettingTraits
from ._questions import protect_questions

if TYPE_CHECKING:
    from ._turn import Turn

__all__ = ["ChatMagics", "load", "unload"]

@magics_class
class ChatMagics(Magics, SettingTraits):
    """Chat with an OpenAI-compatible model. Settings here mirror `%chat_config`."""

    display_mode = Enum(
        ["auto", "widget", "html", "text"],
        "auto",
        help="How replies stream: auto picks widget in a kernel and text in a terminal.",
    ).tag(config=True)
    update_rate = Float(20.0, help="Display updates per second while streaming.").tag(config=True)
    interpolate = Bool(True, help="Fill {name} references in prompts.").tag(config=True)
    restore = Bool(
        False, help="At %load_ext, restore the sessions saved in this kernel's notebook."
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        self.settings = Settings.load()
        self.cells = CellTracker(None, shell)  # which cell runs: re-runs replace turns
        self._client: Any = None
        self._config_problems: list[str] = []  # bad `c.ChatMagics.x` values, skipped at load
        self._loading = True
        super().__init__(shell=shell, **kwargs)
        self._loading = False

    @property
    def sessions(self) -> Any:
        """The process's sessions; the conversation machinery loads with the first use."""
        from ._conversation import sessions

        return sessions

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
    @lazy_magic_arguments
    @argument("-m", "--model", help="Model for this cell.")
    @argument("-t", "--temperature", type=float, help="Sampling temperature, 0 <= t < 2.")
    @argument("--top-p", type=float, help="Nucleus sampling, 0 < p <= 1.")
    @argument("--max-tokens", type=int, help="Maximum tokens to generate.")
    @argument("--presence-penalty", type=float, help="-2 to 2.")
    @argument("--frequency-penalty", type=float, help="-2 to 2.")
    @argument("--stop", action="append", help="Stop sequence (repeatable).")
    @argument("-s", "--session", help="Named conversation (created when its first reply lands).")
    @argument("--system", help="Set the session's system prompt (kept if the reply lands).")
    @argument("--new", action="store_true", help="Start the session afresh (if the reply lands).")
    @argument("--no-history", action="store_true", help="One-shot: send and record no history.")
    @argument("--no-stream", action="store_true", help="Wait for the whole reply.")
    @argument("--stream", action="store_true", help="Stream this reply even if stream=False.")
    @argument("-o", "--out", metavar="VAR", help="Also store the reply in variable VAR.")
    @argument("-q", "--quiet", action="store_true", help="Show nothing; only store the reply.")
    @argument("--no-interpolate", action="store_true", help="Send {braces} untouched.")
    @_batch_magic.batch_arguments
    @argument("--dry-run", action="store_true", help="Show the request; send nothing.")
    @argument("-h", "--help", action="store_true", help="Show this help.")
    @needs_local_scope
    @no_var_expand
    @line_cell_magic
    def ipychat(self, line: str, cell: str | None = None, local_ns: Any = None) -> Any:
        """Send the cell (or the rest of the line) as the next user turn; the reply goes to `_chat`.

        `%%chat` streams the reply into the output; `r = %chat TEXT` returns it. `{name}`
        references to variables are filled in (see --no-interpolate). Settings: %chat_config.
        """
        one_line = cell is None
        options, text = split_line_magic(self.ipychat, line) if one_line else (line, cell or "")
        args = parse(self.ipychat, options)
        if args.help:
            print(help_text(self.ipychat))
            return None
        filler = None if args.no_interpolate or not self.interpolate else Filler(self, local_ns)
        if filler is not None:
            args = parse(self.ipychat, options, fill=filler)
        if args.map is not None:  # the template is filled per item, with the item's names
            return _batch_magic.run_map(self, args, text, one_line=one_line, local_ns=local_ns)
        if filler is not None:
            text = filler(text)
        try:
            reply = self._chat(args, text, one_line=one_line, filled=filler.names if filler else ())
        except ChatError as exc:
            raise UsageError(one_line_error(exc)) from None
        return reply if one_line else None

    def _turn(self, args: Any, text: str, *, one_line: bool, filled: tuple[str, ...]) -> Turn:
        """Check the cell's options and message, refusing bad input before anything is sent."""
        if args.out is not None and (not args.out.isidentifier() or iskeyword(args.out)):
            raise UsageError(f"-o needs a variable name, got {args.out!r}.")
        if args.stream and args.no_stream:
            raise UsageError("Give --stream or --no-stream, not both.")
        overrides = {key: getattr(args, key) for key in OVERRIDES if getattr(args, key) is not None}
        if args.no_stream or args.stream:
            overrides["stream"] = bool(args.stream)
        self.settings.resolve(**overrides)  # refuses bad values before anything else
        prompt = text.strip("\n").rstrip()  # the cell's trailing newline is not part of it
        if not prompt.strip():
            where = "after %chat" if one_line else "below %%chat"
            raise UsageError(f"The message is empty: write it {where}.")
        from ._turn import Turn  # the conversation machinery waits for the first message

        return Turn(
            self.sessions,
            args.session,
            prompt,
            overrides,
            history=not args.no_history,
            new=args.new,
            system=args.system,
            filled=filled,
            cell=self.cells.current,
        )

    def _chat(self, args: Any, text: str, *, one_line: bool, filled: tuple[str, ...] = ()) -> Any:
        turn = self._turn(args, text, one_line=one_line, filled=filled)
        schema = _batch_magic.single_cell_schema(self.shell, args)
        if args.dry_run:
            from ._dry_run import describe

            messages = turn.messages(self.settings)
            request = describe(self.client, messages, turn.prompt, turn.overrides)
            note = f"; filled: {', '.join(filled)}" if filled else ""
            print(f"{request}\n(dry run: nothing was sent or recorded{note})")
            return None
        resolved = self.settings.resolve(**turn.overrides)
        # The line magic returns its reply: IPython shows it only if it is not assigned.
        mode = "quiet" if args.quiet else "returned" if one_line else self.display_mode
        from ._display import make_view
        from ._live import LiveStatus, run_exchange

        status = LiveStatus(resolved.model)
        view = make_view(mode, status)
        saved = _saved_exchange(turn, resolved)
        self.cells.sending(turn.session.name)  # its old exchange there is this run's to replace
        try:
            reply = run_exchange(
                lambda client, on_delta: turn.send(client, on_delta=on_delta, schema=schema),
                client=self.client,
                view=view,
                status=status,
                rate=self.update_rate,
            )
        except (ChatError, KeyboardInterrupt) as exc:
            partial = getattr(exc, "reply", None)
            if partial is None or not partial.text:
                view.discard()
                if isinstance(exc, KeyboardInterrupt):
                    raise UsageError("Interrupted before any reply arrived.") from None
                raise
            partial.filled = list(filled)
            view.finish(partial, exchange=saved(partial))
            self._store(partial, args.out)
            kept = f"kept the partial reply ({len(partial.text)} characters) in _chat"
            if isinstance(exc, KeyboardInterrupt):
                raise UsageError(f"Interrupted: {kept}, marked incomplete.") from None
            raise UsageError(f"{one_line_error(exc)} ipychat {kept}, marked incomplete.") from None
        reply.filled = list(filled)
        view.finish(reply, keep=not one_line, exchange=saved(reply))
        self._store(reply, args.out)
        from ._record_magic import record_turn

        record_turn(self, turn.prompt, reply)  # %chat_config --record
        return reply

    def fill(self, text: str, local_ns: Any = None) -> str:
        """`text` with `{name}` references filled from the caller's scope (see _interpolate)."""
        return Filler(self, local_ns)(text)

    def _store(self, reply: Any, name: str | None) -> None:
        if self.shell is None:
            return
        self.shell.user_ns["_chat"] = reply
        if name:
            self.shell.user_ns[name] = reply

    # -- %chat_config ------------------------------------------------------------------------------
    @lazy_table_arguments(lambda func: _config_magic().add_arguments(func))
    @needs_local_scope
    @no_var_expand
    @line_magic
    def ipychat_config(self, line: str, local_ns: Any = None) -> Any:
        """Show settings (no arguments), set them (key=value ...), and manage sessions.

        `{name}` references to variables are filled in, as in %%chat.
        """
        options, parts, names = split_config_line(self.ipychat_config.parser, line)
        filler = Filler(self, local_ns) if self.interpolate else None
        args = parse(self.ipychat_config, options, fill=filler)
        if args.help:
            print(help_text(self.ipychat_config))
            return None
        args.assignments = [
            (key, filler(value) if filler else value) for key, value in map(split_assignment, parts)
        ]
        args.show = names
        try:
            return _config_magic().run(self, args)
        except ChatError as exc:
            raise UsageError(one_line_error(exc)) from None
        except OSError as exc:
            raise UsageError(one_line_error(f"{exc.strerror or exc}: {exc.filename}")) from None


def _config_magic() -> Any:
    """`%chat_config`'s subcommands and their table, imported when it first runs or is read."""
    from . import _config_magic

    return _config_magic


def _saved_exchange(turn: Turn, resolved: Any) -> Any:
    """A function giving a reply's exchange JSON for the notebook (None if not recorded)."""
    from ._exchange import exchange_json, secret_redactor

    def saved(reply: Any) -> dict[str, Any] | None:
        if not turn.history or not reply.text.strip():
            return None
        return exchange_json(
            session=turn.trial.name,
            prompt=turn.prompt,
            reply=reply,
            cell=turn.cell,
            system=turn.trial.system,
            redact=secret_redactor(resolved),
        )

    return saved


def _print_retry(notice: Any) -> None:
    print(f"ipychat: {one_line_error(notice)}", file=sys.stderr, flush=True)


_instance: ChatMagics | None = None
_warned_taken = False
# The last instance's settings: their run-time values carry over to the next load, with the
# hosts their keys were set for (re-setting them would bind a held-back key to the new URL).
_kept: list[Any] = []


def load(shell: Any) -> None:
    """Register the magics; `chat` names only where no other extension holds them."""
    global _instance, _warned_taken
    if _instance is not None:
        unload(shell)
    _instance = ChatMagics(shell=shell)
    for problem in _instance.problems:
        print(f"ipychat: {one_line_error(problem)}", file=sys.stderr)
    if _kept:
        _instance.settings.adopt(_kept.pop())
        _instance.sync_traits()
    shell.register_magics(_instance)
    _instance.cells.register(shell)
    if protect_questions not in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.append(protect_questions)
    from ._completion import register

    register(shell, _instance)
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
    if _instance.restore:
        _config_magic().restore_at_load(_instance)
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
    _kept[:] = [_instance.settings]
    if protect_questions in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.remove(protect_questions)
    from ._completion import unregister

    unregister(shell)
    for kind in ("line", "cell"):
        table = shell.magics_manager.magics[kind]
        for name in [n for n, f in table.items() if getattr(f, "__self__", None) is _instance]:
            del table[name]
    _instance.cells.unregister(shell)
    _instance.close()
    _instance = None
