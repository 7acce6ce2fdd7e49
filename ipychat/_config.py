"""Layered, validated settings for the chat client.

Each setting comes from the highest layer that holds it, lowest first:

    "default"  built-in defaults
    "file"     the user's TOML config file (`config_path()`)
    "env"      IPYCHAT_BASE_URL (else OPENAI_BASE_URL) / IPYCHAT_API_KEY / IPYCHAT_MODEL
    "config"   traitlets config: `c.ChatMagics.*` in ipython_config.py and `%config`
    "set"      values set at run time with `Settings.set()`; `reset()` clears only this layer
    "call"     per-call overrides given to `Settings.resolve()`

Values are checked when they enter a layer, so a bad value fails early with one sentence that
names the setting, the value and what is allowed; `load()` skips bad values of the file and
the environment and lists them in `problems` instead of failing.

Secrets (the API key, `extra_headers` values, `user:password@` in `base_url`) are held in
`Secret`s or masked: they never appear in a repr, `describe()` or an error message, and
`save()` writes them only when asked to. A key is bound to the host it belongs to (see
`_keys`): it is never sent to another host because `base_url` changed.

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
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from ._errors import ConfigError
from ._schema import (
    DEFAULTS,
    GENERATION_KEYS,
    KEYS,
    parse_value,
    unknown,
    validate,
    validate_many,
)
from ._secrets import Redactor, Secret, mask_url, redact, split_userinfo
from ._sources import ProviderKey, config_path, host_of, read_env, read_file

if TYPE_CHECKING:
    from ._keys import KeyChoice
    from ._resolved import ResolvedSettings

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

LAYERS = ("set", "config", "env", "file")  # highest first; "default" is below them all
WRITABLE = ("set", "config")  # the layers `set()` and `unset()` change
SAVED = ("set", "config", "file")  # the layers `save()` writes: never env, never defaults


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


def __getattr__(name: str) -> object:
    """`ResolvedSettings` lives in `_resolved`, imported on first use (see there)."""
    if name == "ResolvedSettings":
        from ._resolved import ResolvedSettings

        return ResolvedSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- settings -------------------------------------------------------------------------------------


class Settings:
    """The user's settings in layers: default < file < env < config < set (< per call).

    `Settings.load()` reads the config file and the environment (skipping bad values, which
    are listed in `problems`); `set()` changes values for this session (or, with
    `layer="config"`, the traitlets config layer); `unset()` lets a lower layer show through
    again; `resolve()` turns everything into the `ResolvedSettings` of one request.
    """

    KEYS: tuple[str, ...] = KEYS

    def __init__(self) -> None:
        self._layers: dict[str, dict[str, object]] = {name: {} for name in LAYERS}
        self._path: Path | None = None
        self._providers: list[ProviderKey] = []
        self._key_host: dict[str, str] = {}  # layer -> host a run-time key was set for
        #: One line per bad value `load()` skipped (file or environment variable), to show.
        self.problems: list[str] = []

    @classmethod
    def load(
        cls, *, environ: Mapping[str, str] | None = None, path: Path | None = None
    ) -> Settings:
        """Read the config file (missing is fine) and the environment variables.

        Never fails on bad content: what was skipped, and why, is in `problems`.
        """
        env = os.environ if environ is None else environ
        settings = cls()
        settings._path = Path(path) if path is not None else config_path(env)
        settings._layers["file"] = read_file(settings._path, settings.problems)
        settings._layers["env"], settings._providers = read_env(env, settings.problems)
        return settings

    def set(self, *, layer: str = "set", **values: object) -> None:
        """Set values; all are checked first, so a bad one changes nothing.

        None stores the key's default at this layer, hiding lower layers (e.g.
        `temperature=None`: not sent, even if the file sets it); use `unset()` to let the
        file, environment or default apply again. `layer="config"` is for traitlets config
        (`c.ChatMagics.*`), which `reset()` keeps. A key set here is bound to the host of
        the base URL in effect after this call.
        """
        self._check_layer(layer)
        checked = validate_many(values)
        self._layers[layer].update(checked)
        if "api_key" in checked:
            url = checked.get("base_url") or self._lookup("base_url")[0]
            self._key_host[layer] = host_of(str(url))

    def unset(self, *keys: str, layer: str = "set") -> None:
        """Drop keys from a layer ("set" or "config") so lower layers apply again."""
        self._check_layer(layer)
        names = ["base_url" if key == "host" else key for key in keys]
        for name in names:
            if name not in DEFAULTS:
                raise unknown(name)
        for name in names:
            self._layers[layer].pop(name, None)

    @staticmethod
    def _check_layer(layer: str) -> None:
        if layer not in WRITABLE:
            raise ValueError(f"layer must be one of {WRITABLE}, not {layer!r}.")

    def adopt(self, other: Settings, layer: str = "set") -> None:
        """Take `other`'s values of `layer`, with the hosts its keys were set for.

        For `%reload_ext`: re-setting the values with `set()` would bind a key to the current
        base URL, and so accept a key that was held back for another host.
        """
        self._check_layer(layer)
        self._layers[layer] = copy.deepcopy(other._layers[layer])
        if layer in other._key_host:
            self._key_host[layer] = other._key_host[layer]
        else:
            self._key_host.pop(layer, None)

    def reset(self) -> None:
        """Forget everything set at run time: back to defaults, file, environment and config."""
        self._layers["set"].clear()
        self._key_host.pop("set", None)

    def _lookup(self, key: str, layers: tuple[str, ...] = LAYERS) -> tuple[object, str]:
        if key == "host":
            raise ConfigError(
                "host is a shortcut that sets base_url and is not stored; read base_url instead."
            )
        if key not in DEFAULTS:
            raise unknown(key)
        for layer in layers:
            if key in self._layers[layer]:
                return self._layers[layer][key], layer
        return DEFAULTS[key], "default"

    def get(self, key: str) -> object:
        """The effective value of `key` (a copy, so changing it changes nothing here).

        `api_key` is the highest layer's key, whatever host it is for; `extra_headers` values
        are `Secret`s; `base_url` is as given, credentials included.
        """
        return copy.deepcopy(self._lookup(key)[0])

    def source(self, key: str) -> str:
        """Which layer the effective value comes from: "default", "file", "env", "config", "set"."""
        return self._lookup(key)[1]

    def key_for(self, base_url: str | None = None) -> KeyChoice:
        """Which key would go to `base_url` (default: the effective one), and why or why not."""
        from ._keys import choose_key  # the key rules wait for the first request (not %load_ext)

        url = base_url if base_url is not None else str(self._lookup("base_url")[0])
        configured = str(self._lookup("base_url", ("config", "env", "file"))[0])
        layered = []
        for layer in LAYERS:
            if "api_key" in self._layers[layer]:
                host = self._key_host.get(layer, host_of(configured))
                layered.append((layer, self._layers[layer]["api_key"], host))
        return choose_key(host_of(url), layered, self._providers)

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
        base_url, userinfo = split_userinfo(str(values["base_url"]))
        values["base_url"] = base_url
        if "api_key" in checked:
            from ._keys import KeyChoice

            choice = KeyChoice(checked["api_key"], "call")  # type: ignore[arg-type]
        else:
            choice = self.key_for(str(values["base_url"]))
            sources["api_key"] = choice.source
        values["api_key"] = choice.secret
        known = tuple(s for s in self._all_keys() if s != choice.secret)
        from ._resolved import ResolvedSettings  # built with the first request

        return ResolvedSettings(
            **values,  # type: ignore[arg-type]
            sources=MappingProxyType(sources),
            userinfo=userinfo,
            key_problem=choice.problem,
            known_secrets=known,
        )

    def _all_keys(self) -> list[Secret]:
        keys = [layer.get("api_key") for layer in self._layers.values()]
        return [k for k in keys if isinstance(k, Secret)]

    def secrets(self) -> list[Secret]:
        """Every secret these settings hold, for redacting text (keys of all layers included)."""
        resolved = self.resolve()
        return [*resolved.secrets(), *[k for k in self._all_keys() if k not in resolved.secrets()]]

    def redactor(self) -> Redactor:
        """Masks every secret these settings hold in text (e.g. an export)."""
        return Redactor(self.secrets())

    def _shown(self, key: str, value: object) -> str:
        if key == "api_key":
            return self.key_for().shown
        if key == "base_url":
            return repr(mask_url(str(value)))
        if key == "extra_headers" and isinstance(value, dict):
            return repr({name: Secret(str(v)).masked() for name, v in _revealed(value).items()})
        return repr(value)

    def describe(self) -> list[tuple[str, str, str]]:
        """(key, display value, source) for every key, with every secret masked.

        The api_key row shows the key that would be sent to the current base_url, and says
        so when a key exists but is not sent there.
        """
        rows = []
        for key in KEYS:
            value, source = self._lookup(key)
            if key == "api_key":
                source = self.key_for().source
            rows.append((key, self._shown(key, value), source))
        return rows

    def save(self, path: Path | None = None, *, include_api_key: bool = False) -> Path:
        """Write the settings of the file, config and set layers as TOML (mode 0600).

        Values from the environment and defaults are not written (a variable set for one run
        must not become permanent). Secrets set at run time (the API key, `extra_headers`
        values, `user:password@` in base_url) are left out unless `include_api_key`: a key is
        better kept in the environment than in a file that may end up in a backup or a
        repository. Secrets the file itself held are written back: saving never loses them.
        """
        import tomli_w  # a maintained writer that quotes and escapes every value correctly

        target = Path(path) if path is not None else self._path or config_path()
        values: dict[str, object] = {}
        for key in KEYS:
            value, layer = self._lookup(key, SAVED)
            if layer == "default" or value == DEFAULTS[key]:
                continue
            keep_secrets = include_api_key or layer == "file"
            value = _plain(key, value, keep_secrets)
            if value is not None:
                values[key] = value
        for key, value in values.items():
            where = _find_null(value, key)
            if where:  # JSON's null is allowed in extra_body, but TOML has no null
                raise ConfigError(
                    f"Cannot save {where}: it is None (null), which TOML cannot store."
                )
        header = b"# ipychat settings, written by Settings.save().\n"
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
        other._providers = list(self._providers)
        other._key_host = dict(self._key_host)
        other.problems = list(self.problems)
        return other

    def __repr__(self) -> str:
        shown = ", ".join(f"{key}={self._shown(key, self._lookup(key)[0])}" for key in KEYS)
        return f"Settings({shown})"


def _revealed(headers: dict[str, object]) -> dict[str, object]:
    return {k: v.reveal() if isinstance(v, Secret) else v for k, v in headers.items()}


def _plain(key: str, value: object, keep_secrets: bool) -> object:
    """A setting's value as TOML stores it; secrets dropped (None) unless `keep_secrets`."""
    if key == "api_key":
        return value.reveal() if keep_secrets and isinstance(value, Secret) else None
    if key == "extra_headers" and isinstance(value, dict):
        if not keep_secrets:
            return None
        return _revealed(value)
    if key == "base_url" and not keep_secrets:
        return split_userinfo(str(value))[0]
    return value
