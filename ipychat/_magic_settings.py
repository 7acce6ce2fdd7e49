"""The settings as traitlets: `%config ChatMagics.model = ...` and `ipython_config.py`.

Each trait mirrors one setting into `Settings` (None means "not set here", so the defaults,
the config file and the environment apply); a trait's value goes to the settings' "config"
layer, below what `%chat_config` sets in the kernel. A bad value from IPython's config is
skipped at load and reported as a problem, like a bad line in the config file, instead of
stopping `%load_ext`. `%chat_config --reset` keeps IPython's config: it is configuration, not
a value typed in the kernel.
"""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Dict, Float, Int, List, TraitError, Unicode, Union, observe
from traitlets import validate as trait_validate
from traitlets.config import Configurable

from ._config import GENERATION_KEYS
from ._config import validate as validate_setting
from ._errors import ConfigError
from ._secrets import mask_url

__all__ = ["OVERRIDES", "TRAIT_SETTINGS", "SettingTraits"]

# Options of %%chat that are per-call settings (the option's dest is the setting's name).
OVERRIDES = ("model", *GENERATION_KEYS)
# Settings mirrored as traitlets, for `%config ChatMagics.x = ...` and ipython_config.py.
# The API key is left out on purpose: a key in a config cell would be saved with the notebook.
TRAIT_SETTINGS = (
    *OVERRIDES,
    "base_url",
    "system",
    "stream",
    "timeout",
    "idle_timeout",
    "max_retries",
    "history_limit",
    "extra_body",
    "extra_headers",
)


def _setting(trait_type: Any, help: str, **kwargs: Any) -> Any:
    """A trait mirrored into `Settings`; None means "not set here" (defaults, file, env rule)."""
    return trait_type(default_value=None, allow_none=True, help=help, **kwargs).tag(config=True)


class SettingTraits(Configurable):
    """The mirrored settings; the class using it sets `self.settings` before `__init__`."""

    settings: Any
    _config_problems: list[str]

    base_url = _setting(Unicode, "Endpoint prefix to which /chat/completions is appended.")
    model = _setting(Unicode, "Model name to request.")
    system = _setting(Unicode, "System prompt for sessions that have none of their own.")
    temperature = _setting(Float, "Sampling temperature, 0 <= t < 2.")
    top_p = _setting(Float, "Nucleus sampling, 0 < p <= 1.")
    max_tokens = _setting(Int, "Maximum tokens to generate.")
    presence_penalty = _setting(Float, "-2 to 2.")
    frequency_penalty = _setting(Float, "-2 to 2.")
    stop = _setting(Union, "Stop sequence(s).", trait_types=[Unicode(), List(Unicode())])
    stream = _setting(Bool, "Stream replies as they are generated.")
    timeout = _setting(Float, "Seconds to wait for the server.")
    idle_timeout = _setting(Float, "Seconds a stream may send no text (keep-alives only).")
    max_retries = _setting(Int, "Retries on connection errors, 408, 429 and 5xx.")
    history_limit = _setting(Int, "Send only the last N exchanges.")
    extra_body = _setting(Dict, "Provider-specific body fields, e.g. {'enable_search': True}.")
    extra_headers = _setting(Dict, "Extra HTTP headers.")

    @property
    def problems(self) -> list[str]:
        """What was skipped at load: bad config file lines, env variables, IPython config."""
        return [*map(str, getattr(self.settings, "problems", ())), *self._config_problems]

    def reset_settings(self) -> None:
        """`%chat_config --reset`: drop what was set in the kernel, keep IPython's config.

        Values from `ipython_config.py` (`c.ChatMagics.model = ...`) and `%config` live in the
        settings' "config" layer, which `Settings.reset()` keeps: they are configuration, like
        the config file.
        """
        self.settings.reset()
        self.sync_traits()

    # -- traitlets <-> settings ----------------------------------------------------------------
    @trait_validate(*TRAIT_SETTINGS)
    def _check_setting(self, proposal: Any) -> Any:
        if proposal["value"] is None:
            return None
        try:
            validate_setting(proposal["trait"].name, proposal["value"])
        except ConfigError as exc:
            if getattr(self, "_loading", False):  # from ipython_config.py: skip it, say so
                self._config_problems.append(f"c.ChatMagics.{proposal['trait'].name}: {exc}")
                return None
            raise TraitError(str(exc)) from None
        return proposal["value"]

    @observe(*TRAIT_SETTINGS)
    def _setting_changed(self, change: Any) -> None:
        if getattr(self, "_syncing", False):
            return
        if change["new"] is None:
            self.settings.unset(change["name"], layer="config")
        else:
            self.settings.set(layer="config", **{change["name"]: change["new"]})

    def sync_traits(self) -> None:
        """After %chat_config changed settings, show the same values through %config."""
        self._syncing = True
        try:
            for name in TRAIT_SETTINGS:
                value = self.settings.get(name) if self.settings.source(name) != "default" else None
                if name == "base_url" and value is not None:  # user:password@ stays masked
                    value = mask_url(str(value))
                self.set_trait(name, value)
        finally:
            self._syncing = False
