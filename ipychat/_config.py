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

import copy
import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit, urlunsplit

from ._errors import ConfigError
from ._schema import (
    CHAT_PATH,
    DEFAULT_BASE_URL,
    DEFAULTS,
    GENERATION_KEYS,
    KEYS,
    parse_value,
    unknown,
    validate,
    validate_many,
)
from ._secrets import Secret, redact

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "GENERATION_KEYS",
    "ResolvedSettings",
    "Secret",
    "Settings",
    "config_path",
    "parse_value",
    "redact",
    "validate",
]

_ENV_VARS = {
    "base_url": ("IPYCHAT_BASE_URL", "OPENAI_BASE_URL"),
    "api_key": ("IPYCHAT_API_KEY", "OPENAI_API_KEY"),
    "model": ("IPYCHAT_MODEL",),
}


# -- the config file ------------------------------------------------------------------------------


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
        return validate_many(data)
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


def _find_null(value: object, where: str) -> str | None:
    """Where a None sits inside a value (`extra_body['x'][0]`), or None if it holds none."""
    if value is None:
        return where
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return None
    for key, item in items:
        found = _find_null(item, f"{where}[{key!r}]")
        if found:
            return found
    return None


# -- settings -------------------------------------------------------------------------------------


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
    idle_timeout: float = 300.0
    max_retries: int = 2
    history_limit: int | None = None
    max_requests_per_session: int | None = None  # budgets: see _budget
    max_tokens_per_session: int | None = None
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
        if key not in DEFAULTS:
            raise unknown(key)
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
        self._layers["set"].update(validate_many(values))

    def unset(self, *keys: str) -> None:
        """Drop keys from the "set" layer so the file, environment or default apply again."""
        names = ["base_url" if key == "host" else key for key in keys]
        for name in names:
            if name not in DEFAULTS:
                raise unknown(name)
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
        if key not in DEFAULTS:
            raise unknown(key)
        for layer in self._LAYERS:
            if key in self._layers[layer]:
                return self._layers[layer][key], layer
        return DEFAULTS[key], "default"

    def get(self, key: str) -> object:
        """The effective value of `key` (a copy, so changing it changes nothing here)."""
        return copy.deepcopy(self._lookup(key)[0])

    def source(self, key: str) -> str:
        """Which layer the effective value comes from: "default", "file", "env" or "set"."""
        return self._lookup(key)[1]

    def resolve(self, **overrides: object) -> ResolvedSettings:
        """The settings for one request; overrides are checked, and None means "not overridden"."""
        checked = validate_many({k: v for k, v in overrides.items() if v is not None})
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
        import tomli_w  # a maintained writer that quotes and escapes every value correctly

        values: dict[str, object] = {}
        for key in KEYS:
            value = self._lookup(key)[0]
            if value == DEFAULTS[key] or (key == "api_key" and not include_api_key):
                continue
            if isinstance(value, Secret):
                value = value.reveal()
            values[key] = value
        header = b"# ipychat settings, written by Settings.save().\n"
        for key, value in values.items():
            where = _find_null(value, key)
            if where:  # JSON's null is allowed in extra_body, but TOML has no null
                raise ConfigError(
                    f"Cannot save {where}: it is None (null), which TOML cannot store."
                )
        data = header + tomli_w.dumps(values).encode("utf-8")
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
