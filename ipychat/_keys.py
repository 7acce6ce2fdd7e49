"""Which API key goes to which host: a key is bound to where it belongs.

- A key from a provider's own variable (`OPENAI_API_KEY`, ...) goes only to that provider's
  hosts (`_sources.PROVIDER_KEYS`), and is simply not sent anywhere else.
- A key from the config file, `IPYCHAT_API_KEY` or the IPython config goes with the base URL
  those give (file, environment, config, default).
- A key set at run time goes with the base URL in effect when it was set.

A key that exists but belongs to another host is not sent: the request is refused with one
line that says so and how to confirm (set the key again now that base_url points there).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ._secrets import Secret
from ._sources import ProviderKey

__all__ = ["KeyChoice", "choose_key"]

_ORIGIN = {
    "set": "set at run time",
    "config": "set in the IPython config",
    "env": "taken from IPYCHAT_API_KEY",
    "file": "taken from the config file",
}


@dataclass(frozen=True)
class KeyChoice:
    """The key to send (or None), the layer it came from, and why a key is held back."""

    secret: Secret | None
    source: str = "default"
    problem: str | None = None
    note: str = ""

    @property
    def shown(self) -> str:
        """The settings table's cell: masked, with what the user needs to know about it."""
        if self.problem is not None:
            return self.note
        text = self.secret.masked() if self.secret else "None"
        return f"{text} ({self.note})" if self.note else text


def choose_key(
    host: str,
    layered: Iterable[tuple[str, object, str]],
    providers: Iterable[ProviderKey],
) -> KeyChoice:
    """The key for `host` from (layer, key or None, host it is for), highest layer first."""
    held_back: tuple[str, Secret, str] | None = None
    for layer, value, bound in layered:
        if not isinstance(value, Secret):  # api_key=None: no key from here down
            break
        if bound == host:
            return KeyChoice(value, layer)
        if held_back is None:
            held_back = (layer, value, bound)
    providers = list(providers)
    for provider in providers:
        if host in provider.hosts:
            return KeyChoice(provider.secret, "env", note=provider.variable)
    if held_back is not None:
        layer, secret, bound = held_back
        problem = (
            f"Not sending the API key ({secret.masked()}) to {host or 'this base_url'}: it was "
            f"{_ORIGIN[layer]} for {bound or 'another host'}. To send it there, set api_key "
            "again now that base_url points there (%chat_config --api-key, or api_key= in "
            "Python); to send no key, set api_key to none."
        )
        note = f"{secret.masked()} (for {bound}; not sent to {host})"
        return KeyChoice(None, layer, problem=problem, note=note)
    if providers:
        names = ", ".join(p.variable for p in providers)
        return KeyChoice(None, "default", note=f"{names}: only for its provider's host")
    return KeyChoice(None, "default")
