"""The settings' schema: keys, defaults, and the checks a value passes to enter a layer.

Values are checked when they enter a layer, so a bad value fails early with one sentence that
names the setting, the value and what is allowed (never the value of a secret).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import json
import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from ._errors import ConfigError
from ._secrets import Secret

__all__ = ["DEFAULTS", "GENERATION_KEYS", "KEYS", "parse_value", "validate", "validate_many"]

DEFAULT_BASE_URL = "http://127.0.0.1:8765/v1"
CHAT_PATH = "/chat/completions"
#: The path the reference service serves its OpenAI-compatible API under (see `host`).
HOST_PATH = "/compatible-mode/v1"

DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "base_url": DEFAULT_BASE_URL,
        "api_key": None,
        "model": "ipychat-local",
        "system": None,
        "temperature": None,
        "top_p": None,
        "max_tokens": None,
        "presence_penalty": None,
        "frequency_penalty": None,
        "stop": None,
        "stream": True,
        "timeout": 60.0,
        "idle_timeout": 300.0,
        "max_retries": 2,
        "history_limit": None,
        "max_requests_per_session": None,
        "max_tokens_per_session": None,
        "extra_body": {},
        "extra_headers": {},
    }
)
KEYS: tuple[str, ...] = tuple(DEFAULTS)
GENERATION_KEYS = (  # the sampling fields of the request body
    "temperature",
    "top_p",
    "max_tokens",
    "presence_penalty",
    "frequency_penalty",
    "stop",
)
_STR_KEYS = frozenset({"base_url", "model", "system", "api_key", "host"})
_CORE_BODY_KEYS = ("messages", "model", "stream")
_SHOW_LIMIT = 60


# -- validation -----------------------------------------------------------------------------------


def _show(value: object) -> str:
    """A repr short enough for a one-line error message."""
    text = repr(value)
    if len(text) > _SHOW_LIMIT:
        text = text[: _SHOW_LIMIT - 3] + "..."
    return text


def _type_error(key: str, expected: str, value: object) -> ConfigError:
    return ConfigError(f"{key} must be {expected}, got {_show(value)} ({type(value).__name__}).")


@dataclasses.dataclass(frozen=True)
class _Number:
    """The allowed type and range of a numeric setting, with the words used to explain it."""

    kind: type[int] | type[float]
    low: float
    low_inclusive: bool
    high: float | None
    high_inclusive: bool
    expected: str  # used when the type is wrong
    bounds: str  # used when the value is out of range

    def check(self, key: str, value: object) -> int | float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(key, self.expected, value)
        if self.kind is int and not isinstance(value, int):
            raise _type_error(key, f"{self.expected} written without a decimal point", value)
        number: int | float = value
        if self.kind is float:
            try:
                number = float(value)
            except OverflowError:  # an int too large for a float
                number = math.inf
        low_ok = number >= self.low if self.low_inclusive else number > self.low
        if self.high is None:
            high_ok = self.kind is int or math.isfinite(number)
        else:
            high_ok = number <= self.high if self.high_inclusive else number < self.high
        if not (low_ok and high_ok):
            raise ConfigError(f"{key} must be {self.bounds}, got {_show(value)}.")
        return number


_PENALTY = _Number(
    float, -2, True, 2, True, "a number from -2 to 2", ">= -2 and <= 2 (the service's range)"
)
_NUMBERS: Mapping[str, _Number] = MappingProxyType(
    {
        "temperature": _Number(
            float,
            0,
            True,
            2,
            False,
            "a number from 0 to less than 2",
            ">= 0 and < 2 (the service's range)",
        ),
        "top_p": _Number(
            float,
            0,
            False,
            1,
            True,
            "a number greater than 0 and at most 1",
            "> 0 and <= 1 (the service's range)",
        ),
        "presence_penalty": _PENALTY,
        "frequency_penalty": _PENALTY,
        "timeout": _Number(
            float, 0, False, None, False, "a number of seconds", "a finite number > 0 (seconds)"
        ),
        "idle_timeout": _Number(
            float, 0, False, None, False, "a number of seconds", "a finite number > 0 (seconds)"
        ),
        "max_tokens": _Number(int, 1, True, None, False, "a positive whole number", ">= 1"),
        "max_retries": _Number(
            int, 0, True, 10, True, "a whole number from 0 to 10", ">= 0 and <= 10"
        ),
        "history_limit": _Number(
            int, 0, True, None, False, "a whole number of exchanges", ">= 0 (exchanges to send)"
        ),
        "max_requests_per_session": _Number(
            int, 1, True, None, False, "a whole number of requests", ">= 1 (requests)"
        ),
        "max_tokens_per_session": _Number(
            int, 1, True, None, False, "a whole number of tokens", ">= 1 (tokens)"
        ),
    }
)


def _check_url(key: str, value: object) -> str:
    expected = "an http:// or https:// URL with a host"
    if not isinstance(value, str):
        raise _type_error(key, expected, value)
    text = value.strip()
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError for a port that is not a number from 0 to 65535
        valid = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and not any(ch.isspace() or not ch.isprintable() for ch in text)
        )
    except ValueError:
        valid = False
    if not valid:
        if "@" in text:  # user:password@ may be in it: never quoted back
            raise ConfigError(f"{key} must be {expected} (the given one holds '@' and is not).")
        if "://" not in text and text:
            expected += f" (such as {'http://' + text!r})"
        raise ConfigError(f"{key} must be {expected}, got {_show(value)}.")
    return text.rstrip("/")


def _check_api_key(value: object) -> Secret | None:
    # Messages here never include the value: it is (or may be) the key itself.
    if isinstance(value, Secret):
        value = value.reveal()
    if not isinstance(value, str):
        raise ConfigError(f"api_key must be a string, got a value of type {type(value).__name__}.")
    value = value.strip()
    if not value:
        return None
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ConfigError(
            "api_key must not contain spaces, line breaks or control characters, "
            "and the given key does."
        )
    if not value.isascii():
        raise ConfigError(_NOT_ASCII.format(what="api_key"))
    return Secret(value)


def _check_stop(value: object) -> str | list[str]:
    expected = "a non-empty string or a non-empty list of non-empty strings"
    if isinstance(value, str) and value:
        return value
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(item, str) and item for item in value)
    ):
        return list(value)
    raise _type_error("stop", expected, value)


def _check_extra_body(value: object) -> dict[str, object]:
    expected = "a dict of JSON values with string keys"
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _type_error("extra_body", expected, value)
    core = [k for k in _CORE_BODY_KEYS if k in value]
    if core:
        raise ConfigError(
            f"extra_body must not set {' or '.join(core)}: ipychat sends messages, model and "
            "stream itself (use the model and stream settings)."
        )
    try:
        # The round trip proves the body can be sent and leaves a private copy.
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"extra_body must hold only JSON-serialisable values: {exc}.") from None


_NOT_ASCII = (
    "{what} holds a character that is not ASCII (a dash or quote changed by copy and paste?), "
    "and HTTP headers can carry only ASCII: set it again as the provider shows it."
)
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _check_extra_headers(value: object) -> dict[str, Secret]:
    """Header values may be credentials: kept as `Secret`s, and messages never show them."""
    if not isinstance(value, Mapping):
        raise _type_error("extra_headers", "a dict of header names to strings", value)
    headers: dict[str, Secret] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ConfigError(f"extra_headers has an invalid header name {_show(name)}.")
        if name.lower() == "authorization":
            raise ConfigError(
                "extra_headers must not set Authorization: set api_key instead, "
                "which is sent as 'Bearer <key>' and kept masked."
            )
        if isinstance(text, Secret):
            text = text.reveal()
        if not isinstance(text, str) or "\r" in text or "\n" in text:
            raise ConfigError(
                f"extra_headers[{name!r}] must be a string without line breaks, "
                f"got a value of type {type(text).__name__}."
            )
        if not text.isascii() or not text.isprintable():
            raise ConfigError(_NOT_ASCII.format(what=f"extra_headers[{name!r}]"))
        headers[name] = Secret(text)
    return headers


def _check_str(key: str, value: object, *, empty_is_none: bool) -> str | None:
    if not isinstance(value, str):
        raise _type_error(key, "a string", value)
    if empty_is_none and not value.strip():
        return None
    text = value.strip() if key == "model" else value
    if not text:
        raise ConfigError(f"{key} must be a non-empty string, got {_show(value)}.")
    return text


def unknown(key: str) -> ConfigError:
    known = (*KEYS, "host")
    import difflib  # only for a misspelt key: not at %load_ext

    guess = difflib.get_close_matches(key, known, n=1)
    hint = f" Did you mean {guess[0]!r}?" if guess else ""
    return ConfigError(f"Unknown setting {key!r}.{hint} Known settings: {', '.join(known)}.")


def validate(key: str, value: object) -> object:
    """Check `value` for the setting `key` and return it normalised.

    None stands for the key's default (for most keys: "not sent"). `host` is the shortcut
    for `base_url`: its value is returned as the base URL it stands for.
    """
    if key == "host":
        if value is None:
            return DEFAULTS["base_url"]
        return _check_url("host", value) + HOST_PATH
    if key not in DEFAULTS:
        raise unknown(key)
    if value is None:
        return copy.deepcopy(DEFAULTS[key])
    if key in _NUMBERS:
        return _NUMBERS[key].check(key, value)
    if key == "base_url":
        return _check_url(key, value)
    if key == "api_key":
        return _check_api_key(value)
    if key == "model":
        return _check_str(key, value, empty_is_none=False)
    if key == "system":
        return _check_str(key, value, empty_is_none=True)
    if key == "stream":
        if not isinstance(value, bool):
            raise _type_error(key, "True or False", value)
        return value
    if key == "stop":
        return _check_stop(value)
    if key == "extra_body":
        return _check_extra_body(value)
    return _check_extra_headers(value)


def validate_many(values: Mapping[str, object]) -> dict[str, object]:
    """Validate a batch of values, mapping `host` to `base_url`; nothing is kept on error."""
    if "host" in values and "base_url" in values:
        raise ConfigError(
            "Give either host or base_url, not both: host is a shortcut for base_url."
        )
    checked: dict[str, object] = {}
    for key, value in values.items():
        checked["base_url" if key == "host" else key] = validate(key, value)
    return checked


def parse_value(key: str, text: str) -> object:
    """Turn the text of `key=value` (a magic argument or an environment variable) into a value.

    Python literals and JSON are understood (`0.7`, `True`, `['a', 'b']`, `{"x": true}`);
    `none` means None. Text for string settings may be left unquoted, and anything that is
    not a literal comes back as the text itself, so `validate` can say what is wrong with it.
    """
    if key != "host" and key not in DEFAULTS:
        raise unknown(key)
    stripped = text.strip()
    if stripped.lower() == "none":
        return None
    quoted = len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\""
    if key in _STR_KEYS and not quoted:
        return stripped
    if key == "stream" and stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    try:
        return ast.literal_eval(stripped)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return stripped
