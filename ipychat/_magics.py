"""The IPython magics: a thin shell that parses, delegates to the engine, and presents.

`%%chat` sends the cell as the next user turn, `%chat TEXT` is the one-line form that returns
the reply, and `%chat_config` shows and changes settings and sessions. `%%ipychat` and
`%ipychat_config` always exist as aliases, in case another extension owns `chat`. Every
`ChatError` becomes a one-line `UsageError`; a partial reply is kept and shown first.
"""

from __future__ import annotations

import sys
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool, Dict, Enum, Float, Int, List, TraitError, Unicode, Union, observe
from traitlets import validate as trait_validate

from . import _config_magic
from ._cells import CellTracker
from ._config import GENERATION_KEYS, Settings
from ._config import validate as validate_setting
from ._conversation import sessions
from ._errors import ChatError, ConfigError
from ._magic_args import parse, split_assignments, split_line_magic

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
    restore = Bool(
        False, help="At %load_ext, restore the sessions saved in this kernel's notebook."
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        self.settings = Settings.load()
        self.sessions = sessions
        self.cells = CellTracker(sessions, shell)  # which cell runs: re-runs replace turns
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

    def sync_traits(self) -> None:
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
            options, text = split_line_magic(self.ipychat, line)
        else:
            options, text = line, cell
        args = parse(self.ipychat, self._fill(options))
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
        cell = self.cells.current
        saved = _saved_exchange(conversation, prompt, cell, resolved, args.no_history)
        try:
            reply = conversation.send(
                prompt,
                client=self.client,
                history=not args.no_history,
                on_delta=view.update,
                cell=cell,
                **overrides,
            )
        except (ChatError, KeyboardInterrupt) as exc:
            partial = getattr(exc, "reply", None)
            if partial is None or not partial.text:
                view.discard()
                if isinstance(exc, KeyboardInterrupt):
                    raise UsageError("Interrupted before any reply arrived.") from None
                raise
            view.finish(partial, exchange=saved(partial))
            self._store(partial, args.out)
            kept = f"kept the partial reply ({len(partial.text)} characters) in _chat"
            if isinstance(exc, KeyboardInterrupt):
                raise UsageError(f"Interrupted: {kept}, marked incomplete.") from None
            raise UsageError(f"{exc} ipychat {kept}, marked incomplete.") from None
        view.finish(reply, keep=not one_line, exchange=saved(reply))
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
    @_config_magic.config_arguments
    @no_var_expand
    @line_magic
    def ipychat_config(self, line: str) -> Any:
        """Show settings (no arguments), set them (key=value ...), and manage sessions.

        `{name}` references to variables are filled in, as in %%chat.
        """
        line = self._fill(line)
        if line.strip() and not line.lstrip().startswith("-"):
            options, assignments = "", split_assignments(line)
        else:
            options, assignments = line, []
        args = parse(self.ipychat_config, options)
        if args.assignments:
            raise UsageError(
                "Give settings as key=value, e.g. "
                "%chat_config model=ops-qwen-turbo temperature=0.3."
            )
        try:
            return _config_magic.run(self, args, assignments)
        except ChatError as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise UsageError(f"{exc.strerror or exc}: {exc.filename}") from None


def _saved_exchange(
    conversation: Any, prompt: str, cell: Any, resolved: Any, one_shot: bool
) -> Any:
    """A function giving a reply's exchange JSON for the notebook (None if not recorded)."""
    from ._exchange import exchange_json, secret_redactor

    def saved(reply: Any) -> dict[str, Any] | None:
        if one_shot or not reply.text.strip():
            return None
        return exchange_json(
            session=conversation.name,
            prompt=prompt,
            reply=reply,
            cell=cell,
            system=conversation.system,
            redact=secret_redactor(resolved),
        )

    return saved


def _print_retry(notice: Any) -> None:
    print(f"ipychat: {notice}", file=sys.stderr, flush=True)


_instance: ChatMagics | None = None
_warned_taken = False


def load(shell: Any) -> None:
    """Register the magics; `chat` names only where no other extension holds them."""
    global _instance, _warned_taken
    if _instance is not None:
        unload(shell)
    _instance = ChatMagics(shell=shell)
    shell.register_magics(_instance)
    _instance.cells.register(shell)
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
        _config_magic.restore_at_load(_instance)
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
    _instance.cells.unregister(shell)
    _instance.close()
    _instance = None
