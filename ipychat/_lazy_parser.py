"""`magic_arguments()` whose argparse parser is built on first use, not at `%load_ext`.

IPython's `magic_arguments()` builds the parser and formats its whole help (the magic's
docstring) when the class is defined: for `%%chat` and `%chat_config` that was most of what
`%load_ext ipychat` cost. Here `func.parser` is a stand-in that builds the real parser the
first time anything asks it for something (parsing a line, tab completion, `-h`), and
`func.getdoc()` builds it for `%chat?` (IPython's inspector asks `getdoc()` first). Once built,
the function's `__doc__` is the full help, exactly as with `magic_arguments()`.
"""

from __future__ import annotations

from typing import Any

from IPython.core.magic_arguments import construct_parser

__all__ = ["lazy_magic_arguments"]


class _LazyParser:
    """Builds `func`'s parser on first attribute access, then forwards everything to it."""

    def __init__(self, func: Any) -> None:
        self._func = func
        self._parser: Any = None

    def build(self) -> Any:
        if self._parser is None:
            self._parser = construct_parser(self._func)  # also sets func.__doc__ to the help
        return self._parser

    def __getattr__(self, name: str) -> Any:
        return getattr(self.build(), name)


def lazy_magic_arguments(func: Any) -> Any:
    """Like `@magic_arguments()`: mark `func` as taking the `@argument`s below it."""
    if not getattr(func, "has_arguments", False):
        func.has_arguments = True
        func.decorators = []
    parser = _LazyParser(func)
    func.parser = parser

    def getdoc() -> str:
        parser.build()
        return str(func.__doc__)

    func.getdoc = getdoc
    return func
