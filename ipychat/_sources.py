"""Where settings come from outside the kernel: the config file and environment variables.

Reading never fails: a file that is not TOML, an unknown key, a value out of range or a bad
`IPYCHAT_*` variable is skipped and described in one line in `problems`, so `%load_ext`
still works and the user can fix it from the notebook.

Keys from a provider's own variable (`OPENAI_API_KEY`, `DASHSCOPE_API_KEY`, ...) are kept
apart with the hosts they belong to (`PROVIDER_KEYS`): they are sent only there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ._errors import ConfigError
from ._schema import parse_value, validate
from ._secrets import Secret

__all__ = ["PROVIDER_KEYS", "ProviderKey", "config_path", "host_of", "read_env", "read_file"]

ENV_VARS = {
    "base_url": ("IPYCHAT_BASE_URL", "OPENAI_BASE_URL"),
    "api_key": ("IPYCHAT_API_KEY",),
    "model": ("IPYCHAT_MODEL",),
}

#: A provider's own key variable and the hosts that key is sent to (never anywhere else).
PROVIDER_KEYS: Mapping[str, frozenset[str]] = {
    "OPENAI_API_KEY": frozenset({"api.openai.com"}),
    "DASHSCOPE_API_KEY": frozenset(
        {"dashscope.aliyuncs.com", "dashscope-intl.aliyuncs.com", "dashscope-us.aliyuncs.com"}
    ),
    "DEEPSEEK_API_KEY": frozenset({"api.deepseek.com"}),
    "GROQ_API_KEY": frozenset({"api.groq.com"}),
    "MISTRAL_API_KEY": frozenset({"api.mistral.ai"}),
    "OPENROUTER_API_KEY": frozenset({"openrouter.ai"}),
    "TOGETHER_API_KEY": frozenset({"api.together.xyz"}),
}


@dataclass(frozen=True)
class ProviderKey:
    """A key from a provider's variable, bound to that provider's hosts."""

    variable: str
    secret: Secret
    hosts: frozenset[str]


def host_of(url: str) -> str:
    """The host name a URL points to, lower case (ports do not matter, as for cookies)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


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


def read_file(path: Path, problems: list[str]) -> dict[str, object]:
    """The valid settings of the config file; what is wrong with it goes to `problems`."""
    try:
        with open(path, "rb") as file:
            # Imported here: `%load_ext` with no config file does not pay for the TOML parser.
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - exercised on 3.10 only
                import tomli as tomllib
            data = tomllib.load(file)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        problems.append(f"Cannot read the config file {path}: {exc.strerror or exc}; not used.")
        return {}
    except ValueError as exc:  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
        problems.append(f"The config file {path} is not valid TOML ({exc}); not used.")
        return {}
    if "host" in data and "base_url" in data:
        problems.append(
            f"In the config file {path}: give either host or base_url, not both; "
            "host was skipped."
        )
        del data["host"]
    values: dict[str, object] = {}
    for key, value in data.items():
        try:
            values["base_url" if key == "host" else key] = validate(key, value)
        except ConfigError as exc:
            problems.append(f"In the config file {path}: {exc} Skipped.")
    return values


def read_env(
    environ: Mapping[str, str], problems: list[str]
) -> tuple[dict[str, object], list[ProviderKey]]:
    """IPYCHAT_* (and OPENAI_BASE_URL) settings, and the provider keys found with their hosts."""
    values: dict[str, object] = {}
    for key, names in ENV_VARS.items():
        for name in names:
            text = environ.get(name, "")
            if not text.strip():
                continue
            try:
                value = validate(key, parse_value(key, text))
            except ConfigError as exc:
                problems.append(f"In the environment variable {name}: {exc} Skipped.")
                continue
            if value is not None:
                values[key] = value
            break
    providers = []
    for name, hosts in PROVIDER_KEYS.items():
        text = environ.get(name, "")
        if not text.strip():
            continue
        try:
            secret = validate("api_key", text)
        except ConfigError as exc:
            problems.append(f"In the environment variable {name}: {exc} Skipped.")
            continue
        if name == "OPENAI_API_KEY" and environ.get("OPENAI_BASE_URL", "").strip():
            # The OpenAI SDK's own pair: that key goes with that base URL too.
            hosts = hosts | {host_of(environ["OPENAI_BASE_URL"].strip())}
        if isinstance(secret, Secret):
            providers.append(ProviderKey(name, secret, hosts - {""}))
    return values, providers

