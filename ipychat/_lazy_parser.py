"""`magic_arguments()` whose argparse parser is built on first use, not at `%load_ext`.

IPython's `magic_arguments()` builds the parser and formats its whole help (the magic's
docstring) when the class is defined: for `%%chat` and `%chat_config` that was most of what
`%load_ext ipychat` cost. Here `func.parser` is a stand-in that builds the real parser the
first time anything asks it for something (parsing a line, tab completion, `-h`), and
`func.getdoc()` builds it for `%chat?` (IPython's inspector asks `getdoc()` first). Once built,
the function's `__doc__` is the full help, exactly as with `magic_arguments()`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from IPython.core.magic_arguments import construct_parser

__all__ = ["lazy_magic_arguments", "lazy_table_arguments"]


class _LazyParser:
    """Builds `func`'s parser on first attribute access, then forwards everything to it."""

    def __init__(self, func: Any, add: Callable[[Any], Any] | None = None) -> None:
        self._func = func
        self._add = add
        self._parser: Any = None

    def build(self) -> Any:
        if self._parser is None:
            if self._add is not None:  # the `@argument`s that come from a table, applied now
                self._add(self._func)
            self._parser = construct_parser(self._func)  # also sets func.__doc__ to the help
        return self._parser

    def __getattr__(self, name: str) -> Any:
        return getattr(self.build(), name)


def lazy_magic_arguments(func: Any, add: Callable[[Any], Any] | None = None) -> Any:
    """Like `@magic_arguments()`: mark `func` as taking the `@argument`s below it.

    `add(func)`, if given, applies more `@argument`s when the parser is built: options read
    from a table in a module that need not be imported before then.
    """
    if not getattr(func, "has_arguments", False):
        func.has_arguments = True
        func.decorators = []
    parser = _LazyParser(func, add)
    func.parser = parser

    def getdoc() -> str:
        parser.build()
        return str(func.__doc__)

    func.getdoc = getdoc
    return func


def lazy_table_arguments(add: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`@lazy_magic_arguments` whose `@argument`s are all applied by `add(func)` at build time."""
    return lambda func: lazy_magic_arguments(func, add)
