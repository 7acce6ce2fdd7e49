"""Secrets: values that mask themselves everywhere except where they are sent.

The API key, every `extra_headers` value and URL credentials are secrets. `Secret` keeps one
behind a masked repr; `redact` masks secrets in text a server sent back.
"""

from __future__ import annotations

__all__ = ["Secret", "redact"]


def redact(text: str, key: Secret | None) -> str:
    """Mask the key in text a server sent back (some echo request headers in errors)."""
    if key:
        secret = key.reveal()
        if len(secret) >= 4 and secret in text:
            text = text.replace(secret, key.masked())
    return text


class Secret:
    """An API key that masks itself everywhere except `reveal()`.

    Not a `str` subclass on purpose: string operations, `print`, f-strings and reprs all see
    the masked form, so the key cannot leak into a notebook output or a traceback by accident.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret wraps a str, not {type(value).__name__}.")
        self._value = value

    def reveal(self) -> str:
        """The real key: call this only where the key is sent (the Authorization header)."""
        return self._value

    def masked(self) -> str:
        """`'****'` plus the last 4 characters, or just `'****'` for keys shorter than 8."""
        if len(self._value) < 8:
            return "****"
        return "****" + self._value[-4:]

    def __repr__(self) -> str:
        return f"Secret({self.masked()!r})"

    def __str__(self) -> str:
        return self.masked()

    def __format__(self, format_spec: str) -> str:
        return format(self.masked(), format_spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return self._value == other._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return (Secret, (self._value,))

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self
