"""Secrets: values that mask themselves everywhere except where they are sent.

The API key, every `extra_headers` value and the credentials in `base_url` are secrets.
`Secret` keeps one behind a masked repr until the request is sent (see `_auth`). `Redactor`
masks them in text a server sent back: servers echo request headers in error bodies, and a
model can repeat what it was given. The rule it keeps: no run of `FRAGMENT` or more
characters of a secret appears in what it returns, also when the server escaped it
(`\\/`, `\\uXXXX`) or cut it short. `StreamGuard` keeps the same rule across streamed deltas at
the cost of a few substring searches per network read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["FRAGMENT", "Redactor", "Secret", "StreamGuard", "mask_url", "redact", "split_userinfo"]

MASK = "****"
#: No run of this many characters of a secret may appear anywhere.
FRAGMENT = 8
#: Secrets shorter than this are masked as `****` alone: their last 4 would be too much of them.
SHOW_TAIL_FROM = 12
#: Shorter secrets are masked in tables but not searched for in server text (ordinary words).
SEARCH_FROM = 6


class Secret:
    """A secret string that masks itself everywhere except `reveal()`.

    Not a `str` subclass on purpose: string operations, `print`, f-strings and reprs all see
    the masked form, so the value cannot leak into a notebook output or a traceback by accident.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret wraps a str, not {type(value).__name__}.")
        self._value = value

    def reveal(self) -> str:
        """The real value: call this only where it is sent (the auth flow) or saved on request."""
        return self._value

    def masked(self) -> str:
        """`'****'` plus the last 4 characters, or just `'****'` for secrets shorter than 12."""
        if len(self._value) < SHOW_TAIL_FROM:
            return MASK
        return MASK + self._value[-4:]

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


# -- URL credentials -----------------------------------------------------------------------------


def split_userinfo(url: str) -> tuple[str, Secret | None]:
    """`https://user:pw@host/v1` -> (`https://host/v1`, Secret('user:pw')); no userinfo: None."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=hostport)), Secret(userinfo)


def mask_url(url: str) -> str:
    """The URL with any `user:password@` shown as `****@`, for tables, reprs and messages."""
    bare, userinfo = split_userinfo(url)
    if userinfo is None:
        return url
    parts = urlsplit(bare)
    return urlunsplit(parts._replace(netloc=MASK + "@" + parts.netloc))


def userinfo_secrets(userinfo: Secret) -> list[Secret]:
    """What a server could echo of URL credentials: the pair, the password, the Basic token."""
    import base64  # only for URLs with credentials

    text = userinfo.reveal()
    token = base64.b64encode(text.encode("utf-8")).decode("ascii")
    found = [userinfo, Secret(token)]
    if ":" in text:
        found.append(Secret(text.partition(":")[2]))
    return found


# -- redaction -----------------------------------------------------------------------------------

_JSON_ESCAPE = re.compile(
    r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|\\u([0-9a-fA-F]{4})|\\/"
)


def _unescape_one(match: re.Match[str]) -> str:
    high, low, single = match.groups()
    if high:
        code = 0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00)
        return chr(code)
    if single:
        code = int(single, 16)
        return match.group(0) if 0xD800 <= code <= 0xDFFF else chr(code)  # a lone surrogate
    return "/"


def unescape_json_text(text: str) -> str:
    """Undo JSON string escapes a raw body may hold (`\\/`, `\\u0073`), so redaction sees them."""
    if "\\" not in text:
        return text
    return _JSON_ESCAPE.sub(_unescape_one, text)


def _needles(value: str) -> list[str]:
    """Substrings one of which every run of FRAGMENT characters of `value` contains.

    Blocks of 4 characters every 5: an 8-character window starting anywhere holds a whole one.
    Each is a cheap `in` test, so text with none of them is passed through untouched.
    """
    if len(value) < FRAGMENT:
        return [value[:4]]
    return [value[i : i + 4] for i in range(0, len(value) - 3, 5)]


class Redactor:
    """Masks every run of `FRAGMENT` or more characters of the given secrets in text.

    Secrets shorter than `FRAGMENT` (but at least `SEARCH_FROM`) are masked where they appear
    whole. A masked run becomes its secret's masked form (`****cdef`).
    """

    def __init__(self, secrets: Iterable[Secret | None]) -> None:
        values = sorted(
            {s.reveal() for s in secrets if s and len(s.reveal()) >= SEARCH_FROM},
            key=len,
            reverse=True,
        )
        self._values = tuple(values)
        self.needles: tuple[str, ...] = tuple(dict.fromkeys(n for v in values for n in _needles(v)))
        self._pattern, self._masks = _compile(self._values) if values else (None, {})

    def __bool__(self) -> bool:
        return bool(self._values)

    def __repr__(self) -> str:
        return f"Redactor({len(self._values)} secrets)"

    def suspect(self, text: str) -> bool:
        """Cheap test: False means `text` holds no fragment of any secret."""
        return any(needle in text for needle in self.needles)

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, mask) of each maximal run of text covered by secret fragments."""
        if self._pattern is None or not self.suspect(text):
            return []
        spans: list[tuple[int, int, str]] = []
        for match in self._pattern.finditer(text):
            found = match.group(1)
            start, end = match.start(), match.start() + len(found)
            if spans and start <= spans[-1][1]:
                last = spans[-1]
                spans[-1] = (last[0], max(last[1], end), last[2])
            else:
                spans.append((start, end, self._masks[found]))
        return spans

    def text(self, text: str, *, raw: bool = False) -> str:
        """`text` with every secret fragment masked; `raw` text has its JSON escapes undone first.

        Use `raw` for text that was not JSON-decoded (a body that is not JSON, a bad data line),
        where a server's `\\/` or `\\u0073` escapes would otherwise hide a secret.
        """
        if not self._values or not isinstance(text, str):
            return text
        if raw:
            text = unescape_json_text(text)
        spans = self.spans(text)
        if not spans:
            return text
        out, at = [], 0
        for start, end, mask in spans:
            out += [text[at:start], mask]
            at = end
        out.append(text[at:])
        return "".join(out)

    def json(self, value: Any) -> Any:
        """A decoded JSON value with every string in it (keys too) redacted."""
        if not self._values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.json(k): self.json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(item) for item in value]
        return value


@lru_cache(maxsize=32)
def _compile(values: tuple[str, ...]) -> tuple[re.Pattern[str], dict[str, str]]:
    """A pattern that finds, at every position, a fragment of a secret that starts there."""
    masks: dict[str, str] = {}
    for value in values:
        mask = Secret(value).masked()
        if len(value) < FRAGMENT:
            masks.setdefault(value, mask)
        for i in range(len(value) - FRAGMENT + 1):
            masks.setdefault(value[i : i + FRAGMENT], mask)
    alternation = "|".join(re.escape(gram) for gram in sorted(masks, key=len, reverse=True))
    # A lookahead matches at every position, so overlapping fragments are all found.
    return re.compile(f"(?=({alternation}))"), masks


def redact(text: str, secrets: Secret | Redactor | None, *, raw: bool = False) -> str:
    """Mask secrets in text a server sent back (some echo request headers in errors)."""
    if not secrets:
        return text
    redactor = secrets if isinstance(secrets, Redactor) else Redactor([secrets])
    return redactor.text(text, raw=raw)


class StreamGuard:
    """Keeps secret fragments out of streamed deltas, also when one is split across deltas.

    Called once per network read with the deltas it produced and the builder's part lists.
    The common case costs a join and a few `in` tests over the new text plus a carried tail
    of FRAGMENT - 1 characters; only text that holds the start of a secret is rewritten (in
    the deltas shown and in the parts kept), and characters already shown are never counted
    twice: the tail is what was shown.
    """

    __slots__ = ("_redactor", "_seen_reasoning", "_seen_text", "_tail_reasoning", "_tail_text")

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._seen_text = self._seen_reasoning = 0
        self._tail_text = self._tail_reasoning = ""

    def screen(self, deltas: list[Any], text_parts: list[str], reasoning_parts: list[str]) -> Any:
        new_text = text_parts[self._seen_text :]
        new_reasoning = reasoning_parts[self._seen_reasoning :]
        start_text, start_reasoning = self._seen_text, self._seen_reasoning
        self._seen_text, self._seen_reasoning = len(text_parts), len(reasoning_parts)
        masked_text = masked_reasoning = None
        if new_text:
            joined = self._tail_text + "".join(new_text)
            if self._redactor.suspect(joined):
                masked_text, self._tail_text = self._mask(self._tail_text, new_text)
                text_parts[start_text:] = masked_text
            else:
                self._tail_text = joined[1 - FRAGMENT :]
        if new_reasoning:
            joined = self._tail_reasoning + "".join(new_reasoning)
            if self._redactor.suspect(joined):
                masked_reasoning, self._tail_reasoning = self._mask(
                    self._tail_reasoning, new_reasoning
                )
                reasoning_parts[start_reasoning:] = masked_reasoning
            else:
                self._tail_reasoning = joined[1 - FRAGMENT :]
        if masked_text is None and masked_reasoning is None:
            return deltas
        texts = iter(masked_text or ())
        reasonings = iter(masked_reasoning or ())
        out = []
        for delta in deltas:
            content = next(texts) if masked_text is not None and delta[0] else delta[0]
            reasoning = next(reasonings) if masked_reasoning is not None and delta[1] else delta[1]
            out.append(type(delta)(content, reasoning))
        return out

    def _mask(self, tail: str, pieces: list[str]) -> tuple[list[str], str]:
        """The pieces with fragments masked, and the new tail of what is shown."""
        joined = tail + "".join(pieces)
        spans = self._redactor.spans(joined)
        masked: list[str] = []
        offset = len(tail)
        for piece in pieces:
            end = offset + len(piece)
            out, at = [], offset
            for start, stop, mask in spans:
                if stop <= at or start >= end:
                    continue
                out.append(joined[at:start] if start > at else "")
                if offset <= max(start, len(tail)) < end:  # the mask goes where the span shows
                    out.append(mask)
                at = min(stop, end)
            out.append(joined[at:end])
            masked.append("".join(out))
            offset = end
        shown = tail + "".join(masked)
        return masked, shown[1 - FRAGMENT :]
