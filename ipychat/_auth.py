"""Credentials are put on the request by httpx itself, at send time, and nowhere earlier.

The API key, secret headers (`extra_headers`, e.g. Azure's `api-key`) and URL credentials
stay in `Secret`s until `auth_flow` writes them onto the outgoing request, so no dict of
headers and no frame of ours holds them in the clear: a verbose traceback shows only masks.
"""

from __future__ import annotations

import base64
from collections.abc import Generator, Mapping
from urllib.parse import unquote

import httpx

from ._errors import ConfigError
from ._secrets import Secret

__all__ = ["SecretAuth"]


def _ascii(secret: Secret) -> str:
    """The value, if HTTP can carry it (httpx would send other text as UTF-8 bytes)."""
    text = secret.reveal()
    text.encode("ascii")  # raises UnicodeEncodeError, turned into one line by the caller
    return text


class SecretAuth(httpx.Auth):
    """`Authorization: Bearer <key>` (or Basic from URL credentials) plus secret headers."""

    def __init__(
        self,
        api_key: Secret | None,
        headers: Mapping[str, Secret],
        userinfo: Secret | None = None,
    ) -> None:
        self._api_key = api_key
        self._headers = dict(headers)
        self._userinfo = userinfo

    def __repr__(self) -> str:
        names = ", ".join(self._headers)
        return f"SecretAuth(api_key={self._api_key!r}, headers=[{names}])"

    def masked_headers(self) -> dict[str, str]:
        """The headers the auth flow adds, with every value masked (for `--dry-run`)."""
        shown = {name: value.masked() for name, value in self._headers.items()}
        if self._api_key:
            shown["Authorization"] = "Bearer " + self._api_key.masked()
        elif self._userinfo:
            shown["Authorization"] = "Basic " + self._userinfo.masked()
        return shown

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        try:
            for name, value in self._headers.items():
                request.headers[name] = _ascii(value)
            if self._api_key:
                request.headers["Authorization"] = "Bearer " + _ascii(self._api_key)
            elif self._userinfo:
                pair = unquote(self._userinfo.reveal()).encode("utf-8")
                request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        except UnicodeEncodeError:
            # Validation refuses such values when they are set; this is the last line of defence,
            # and the message must not quote the value (the exception object holds it).
            raise ConfigError(
                "A credential (api_key, an extra_headers value or the base_url's user:password) "
                "holds a character HTTP headers cannot carry (only ASCII can be sent); "
                "set it again."
            ) from None
        yield request
