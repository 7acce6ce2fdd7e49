"""Layered, validated settings for the chat client.

Each setting comes from the highest layer that holds it, lowest first:

    "default"  built-in defaults
    "file"     the user's TOML config file (`config_path()`)
    "env"      IPYCHAT_BASE_URL / IPYCHAT_API_KEY / IPYCHAT_MODEL (falling back to OPENAI_*)
    "set"      values set at run time with `Settings.set()`
    "call"     per-call overrides given to `Settings.resolve()`

Values are checked when they enter a layer, so a bad value fails early with one sentence that
names the setting, the value and what is allowed. The API key is held in a `Secret` and never
appears in a repr, a str, an f-string, `describe()` or an error message.

    >>> settings = Settings()
    >>> settings.set(temperature=0.2, api_key="sk-example-abcdef")
    >>> settings.source("temperature")
    'set'
    >>> settings.get("api_key")
    Secret('****cdef')
    >>> settings.resolve(max_tokens=64).generation_params()
    {'temperature': 0.2, 'max_tokens': 64}
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import difflib
import json
import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ._errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "ResolvedSettings",
    "Secret",
    "Settings",
    "config_path",
    "parse_value",
    "validate",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8765/v1"
CHAT_PATH = "/chat/completions"
#: The path the reference service serves its OpenAI-compatible API under (see `host`).
HOST_PATH = "/compatible-mode/v1"

_DEFAULTS: Mapping[str, Any] = MappingProxyType(
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
        "max_retries": 2,
        "history_limit": None,
        "extra_body": {},
        "extra_headers": {},
    }
)
KEYS: tuple[str, ...] = tuple(_DEFAULTS)
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
_ENV_VARS = {
    "base_url": ("IPYCHAT_BASE_URL", "OPENAI_BASE_URL"),
    "api_key": ("IPYCHAT_API_KEY", "OPENAI_API_KEY"),
    "model": ("IPYCHAT_MODEL",),
}
_SHOW_LIMIT = 60


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


# -- validation --------------------------------------------------------------------------------


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
        "max_tokens": _Number(int, 1, True, None, False, "a positive whole number", ">= 1"),
        "max_retries": _Number(
            int, 0, True, 10, True, "a whole number from 0 to 10", ">= 0 and <= 10"
        ),
        "history_limit": _Number(
            int, 0, True, None, False, "a whole number of exchanges", ">= 0 (exchanges to send)"
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


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _check_extra_headers(value: object) -> dict[str, str]:
    # Header values may be credentials, so messages name the header but never show its value.
    if not isinstance(value, Mapping):
        raise _type_error("extra_headers", "a dict of header names to strings", value)
    headers: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ConfigError(f"extra_headers has an invalid header name {_show(name)}.")
        if name.lower() == "authorization":
            raise ConfigError(
                "extra_headers must not set Authorization: set api_key instead, "
                "which is sent as 'Bearer <key>' and kept masked."
            )
        if not isinstance(text, str) or "\r" in text or "\n" in text:
            raise ConfigError(
                f"extra_headers[{name!r}] must be a string without line breaks, "
                f"got a value of type {type(text).__name__}."
            )
        headers[name] = text
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


def _unknown(key: str) -> ConfigError:
    known = (*KEYS, "host")
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
            return _DEFAULTS["base_url"]
        return _check_url("host", value) + HOST_PATH
    if key not in _DEFAULTS:
        raise _unknown(key)
    if value is None:
        return copy.deepcopy(_DEFAULTS[key])
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


def _validate_many(values: Mapping[str, object]) -> dict[str, object]:
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
    if key != "host" and key not in _DEFAULTS:
        raise _unknown(key)
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


# -- the config file -----------------------------------------------------------------------------


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the user's config file lives: `$IPYCHAT_CONFIG`, else the platform's config folder."""
    env = os.environ if environ is None else environ
    if env.get("IPYCHAT_CONFIG"):
        return Path(env["IPYCHAT_CONFIG"]).expanduser()
    home_var = "USERPROFILE" if sys.platform == "win32" else "HOME"
    home = Path(env[home_var]) if env.get(home_var) else Path.home()
    if sys.platform == "win32":
        base = Path(env["APPDATA"]) if env.get("APPDATA") else home / "AppData" / "Roaming"
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = env.get("XDG_CONFIG_HOME", "")
        # The XDG spec says to ignore a relative path.
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".config"
    return base / "ipychat" / "config.toml"


def _read_file(path: Path) -> dict[str, object]:
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"Cannot read the config file {path}: {exc.strerror or exc}.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The config file {path} is not valid TOML: {exc}.") from None
    try:
        return _validate_many(data)
    except ConfigError as exc:
        raise ConfigError(f"In the config file {path}: {exc}") from None


def _read_env(environ: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for key, names in _ENV_VARS.items():
        for name in names:
            text = environ.get(name, "")
            if not text.strip():
                continue
            try:
                value = validate(key, parse_value(key, text))
            except ConfigError as exc:
                raise ConfigError(f"In the environment variable {name}: {exc}") from None
            if value is not None:
                values[key] = value
            break
    return values


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _toml_str(text: str) -> str:
    out = []
    for ch in text:
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_str(key)


def _toml_value(value: object, where: str) -> str:
    """One TOML value on one line: enough for every value a setting can hold."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # finite: validation refuses inf and nan
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, list):
        items = (_toml_value(item, f"{where}[{i}]") for i, item in enumerate(value))
        return "[" + ", ".join(items) + "]"
    if isinstance(value, dict):
        pairs = (f"{_toml_key(k)} = {_toml_value(v, f'{where}[{k!r}]')}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    if value is None:
        raise ConfigError(f"Cannot save {where}: it is None (null), which TOML cannot store.")
    raise ConfigError(f"Cannot save {where}: TOML cannot store a {type(value).__name__}.")


# -- settings ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ResolvedSettings:
    """The settings one request is made with: every layer applied, nothing left to check."""

    base_url: str = DEFAULT_BASE_URL
    api_key: Secret | None = None
    model: str = "ipychat-local"
    system: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: str | list[str] | None = None
    stream: bool = True
    timeout: float = 60.0
    max_retries: int = 2
    history_limit: int | None = None
    extra_body: dict[str, object] = dataclasses.field(default_factory=dict)
    extra_headers: dict[str, str] = dataclasses.field(default_factory=dict)
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def url(self) -> str:
        """The full chat completions URL: `base_url` + `/chat/completions` unless already there."""
        parts = urlsplit(self.base_url)
        path = parts.path.rstrip("/")
        if path.endswith(CHAT_PATH):
            return self.base_url
        return urlunsplit(parts._replace(path=path + CHAT_PATH))

    def generation_params(self) -> dict[str, object]:
        """The sampling fields to put in the request body: only those that are set."""
        params = {key: getattr(self, key) for key in GENERATION_KEYS}
        return {key: copy.copy(value) for key, value in params.items() if value is not None}

    def source(self, key: str) -> str:
        """Which layer `key` came from: "default", "file", "env", "set" or "call"."""
        if key not in _DEFAULTS:
            raise _unknown(key)
        return self.sources.get(key, "default")


class Settings:
    """The user's settings in layers: defaults < file < env < set (and per-call overrides).

    `Settings.load()` reads the config file and the environment; `set()` changes values for
    this session; `resolve()` turns everything into the `ResolvedSettings` of one request.
    """

    KEYS: tuple[str, ...] = KEYS
    _LAYERS = ("set", "env", "file")  # highest first

    def __init__(self) -> None:
        self._layers: dict[str, dict[str, object]] = {name: {} for name in self._LAYERS}
        self._path: Path | None = None

    @classmethod
    def load(
        cls, *, environ: Mapping[str, str] | None = None, path: Path | None = None
    ) -> Settings:
        """Read the config file (missing is fine) and the environment variables."""
        env = os.environ if environ is None else environ
        settings = cls()
        settings._path = Path(path) if path is not None else config_path(env)
        settings._layers["file"] = _read_file(settings._path)
        settings._layers["env"] = _read_env(env)
        return settings

    def set(self, **values: object) -> None:
        """Set values for this session; all are checked first, so a bad one changes nothing.

        None resets a key to its default at this layer (e.g. `temperature=None`: not sent).
        """
        self._layers["set"].update(_validate_many(values))

    def unset(self, *keys: str) -> None:
        """Drop keys from the "set" layer so the file, environment or default apply again."""
        names = ["base_url" if key == "host" else key for key in keys]
        for name in names:
            if name not in _DEFAULTS:
                raise _unknown(name)
        for name in names:
            self._layers["set"].pop(name, None)

    def reset(self) -> None:
        """Forget everything set at run time: back to defaults, file and environment."""
        self._layers["set"].clear()

    def _lookup(self, key: str) -> tuple[object, str]:
        if key == "host":
            raise ConfigError(
                "host is a shortcut that sets base_url and is not stored; read base_url instead."
            )
        if key not in _DEFAULTS:
            raise _unknown(key)
        for layer in self._LAYERS:
            if key in self._layers[layer]:
                return self._layers[layer][key], layer
        return _DEFAULTS[key], "default"

    def get(self, key: str) -> object:
        """The effective value of `key` (a copy, so changing it changes nothing here)."""
        return copy.deepcopy(self._lookup(key)[0])

    def source(self, key: str) -> str:
        """Which layer the effective value comes from: "default", "file", "env" or "set"."""
        return self._lookup(key)[1]

    def resolve(self, **overrides: object) -> ResolvedSettings:
        """The settings for one request; overrides are checked, and None means "not overridden"."""
        checked = _validate_many({k: v for k, v in overrides.items() if v is not None})
        values: dict[str, object] = {}
        sources: dict[str, str] = {}
        for key in KEYS:
            if key in checked:
                values[key], sources[key] = checked[key], "call"
            else:
                value, sources[key] = self._lookup(key)
                values[key] = copy.deepcopy(value)
        return ResolvedSettings(**values, sources=MappingProxyType(sources))  # type: ignore[arg-type]

    def describe(self) -> list[tuple[str, str, str]]:
        """(key, display value, source) for every key, with the API key masked."""
        rows = []
        for key in KEYS:
            value, source = self._lookup(key)
            shown = value.masked() if isinstance(value, Secret) else repr(value)
            rows.append((key, shown, source))
        return rows

    def save(self, path: Path | None = None, *, include_api_key: bool = False) -> Path:
        """Write the effective non-default values as TOML (mode 0600) and return the path.

        The API key is left out unless `include_api_key`: a key is better kept in the
        environment than in a file that may end up in a backup or a repository.
        """
        target = Path(path) if path is not None else self._path or config_path()
        lines = ["# ipychat settings, written by Settings.save()."]
        for key in KEYS:
            value = self._lookup(key)[0]
            if value == _DEFAULTS[key] or (key == "api_key" and not include_api_key):
                continue
            if isinstance(value, Secret):
                value = value.reveal()
            lines.append(f"{key} = {_toml_value(value, key)}")
        data = ("\n".join(lines) + "\n").encode("utf-8")
        try:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as file:
                os.chmod(target, 0o600)  # os.open's mode only applies to a new file
                file.write(data)
        except OSError as exc:
            reason = exc.strerror or exc
            raise ConfigError(f"Cannot write the config file {target}: {reason}.") from None
        return target

    def copy(self) -> Settings:
        """An independent copy: setting values on it leaves this one unchanged."""
        other = type(self)()
        other._layers = copy.deepcopy(self._layers)
        other._path = self._path
        return other

    def __repr__(self) -> str:
        shown = ", ".join(f"{key}={self._lookup(key)[0]!r}" for key in KEYS)
        return f"Settings({shown})"
