"""`%%chat --map NAME` and `%%chat --schema NAME`: the magics' side of batches and schemas.

`--map` sends the cell once per item of a list, dict, Series or DataFrame in the user's
namespace (see `ipychat.map`), binds the `Batch` to `_chat` (and `-o`), and shows a DataFrame
when pandas is there. `--schema` asks a single cell's reply for a validated value
(`_chat.data`). Both turn every mistake into one `UsageError` line.
"""

from __future__ import annotations

from keyword import iskeyword
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument

from ._errors import ChatError

__all__ = ["batch_arguments", "run_map", "schema_named", "send_structured", "single_cell_schema"]

# Options that only make sense with --map.
BATCH_OPTIONS = ("concurrency", "rpm", "tpm", "cache", "no_cache")


_ARGUMENTS = [  # in the order %%chat? lists them
    (("--map",), {"metavar": "NAME", "help": "Send the cell once per item of NAME ({item})."}),
    (("--schema",), {"metavar": "NAME", "help": "Reply as data validated by schema NAME."}),
    (("--concurrency",), {"type": int, "help": "With --map: requests at a time (default 8)."}),
    (("--rpm",), {"type": float, "help": "With --map: at most this many requests a minute."}),
    (("--tpm",), {"type": float, "help": "With --map: at most this many tokens a minute."}),
    (("--cache",), {"metavar": "PATH", "help": "With --map: the cache file (default: user's)."}),
    (("--no-cache",), {"action": "store_true", "help": "With --map: send everything again."}),
]


def batch_arguments(func: Any) -> Any:
    """The %%chat options of batches and schemas, as one decorator."""
    for args, kwargs in reversed(_ARGUMENTS):
        func = argument(*args, **kwargs)(func)
    return func


def single_cell_schema(shell: Any, args: Any) -> Any:
    """The schema of a cell without --map; a batch option there is a one-line mistake."""
    for option in BATCH_OPTIONS:
        if getattr(args, option) not in (None, False):
            raise UsageError(f"--{option.replace('_', '-')} only applies with --map NAME.")
    return schema_named(shell, args.schema)


def _named(shell: Any, name: str, option: str, what: str) -> Any:
    namespace = shell.user_ns if shell is not None else {}
    if not name.isidentifier() or name not in namespace:
        raise UsageError(f"{option} needs the name of {what}; {name!r} is not defined.")
    return namespace[name]


def schema_named(shell: Any, name: str | None) -> Any:
    """The `Schema` for `--schema NAME`, or None."""
    if name is None:
        return None
    from ._structured import Schema

    what = "a JSON Schema dict, a pydantic model, a dataclass, a TypedDict or a dict of types"
    try:
        return Schema.of(_named(shell, name, "--schema", what))
    except ChatError as exc:
        raise UsageError(f"--schema {name}: {exc}") from None


def run_map(magics: Any, args: Any, template: str, *, one_line: bool, local_ns: Any) -> None:
    """Run the cell as a batch over `args.map`; store and show the result."""
    from ._batch import BatchInterrupted
    from ._batch import map as batch_map
    from ._magics import OVERRIDES

    if one_line:
        raise UsageError("--map needs a cell: write the template below %%chat --map NAME.")
    if args.out is not None and (not args.out.isidentifier() or iskeyword(args.out)):
        raise UsageError(f"-o needs a variable name, got {args.out!r}.")
    overrides = {key: getattr(args, key) for key in OVERRIDES if getattr(args, key) is not None}
    if args.stream:
        overrides["stream"] = True
    shell = magics.shell
    namespace: dict[str, Any] = {}
    if not args.no_interpolate and magics.interpolate:  # {item} and columns are always filled
        namespace = {**(shell.user_ns if shell is not None else {}), **(local_ns or {})}
    items = _named(shell, args.map, "--map", "a list, dict, pandas Series or DataFrame")
    if args.cache is not None and args.no_cache:
        raise UsageError("Give --cache PATH or --no-cache, not both.")
    cache: Any = False if args.no_cache else (args.cache or True)
    registry = magics.sessions
    name = args.session or registry.current  # read only: a batch creates no session
    system = args.system or (registry.get(name).system if name in registry else None)
    if system:
        overrides = {**overrides, "system": system}
    try:
        batch = batch_map(
            template.strip("\n").rstrip(),
            items,
            schema=schema_named(shell, args.schema),
            concurrency=args.concurrency if args.concurrency is not None else 8,
            rpm=args.rpm,
            tpm=args.tpm,
            cache=cache,
            settings=magics.settings,
            namespace=namespace,
            progress=False if args.quiet else ("text" if magics.display_mode == "text" else "auto"),
            **overrides,
        )
    except BatchInterrupted as exc:
        magics._store(exc.batch, args.out)
        done, total = exc.batch.done, len(exc.batch)
        raise UsageError(
            f"Interrupted: {done} of {total} items finished, kept in _chat; "
            "run the cell again to send only the rest."
        ) from None
    except (ChatError, OSError) as exc:
        from ._magic_args import one_line_error

        raise UsageError(one_line_error(exc) if isinstance(exc, ChatError) else str(exc)) from None
    magics._store(batch, args.out)
    if not args.quiet:
        _show_table(batch)


def _show_table(batch: Any) -> None:
    """The DataFrame, when pandas is installed (the summary was left by the progress view)."""
    try:
        frame = batch.to_pandas()
    except ImportError:
        return
    from IPython.display import display

    display(frame)


def send_structured(
    conversation: Any,
    prompt: str,
    *,
    client: Any,
    schema: Any,
    history: bool,
    cell: Any,
    on_delta: Any,
    overrides: dict[str, Any],
) -> Any:
    """One `%%chat --schema` exchange: fallbacks, validation and one repair, then recorded."""
    from ._budget import charge
    from ._structured import dialogue, drive

    resolved, messages, overrides = conversation.request_for(
        prompt, client=client, history=history, cell=cell, **overrides
    )

    def send(sent: list[dict[str, str]], extra_body: dict[str, Any]) -> Any:
        options = {**overrides, "extra_body": extra_body}
        reply = client.send(sent, prompt=prompt, on_delta=on_delta, **options)
        charge(conversation, resolved, sent, reply)  # a repair request spends from it too
        return reply

    reply = drive(dialogue(messages, schema, resolved.url, resolved.extra_body), send)
    if history:
        conversation.record(prompt, reply, cell=cell)
    return reply
