"""One exchange as JSON, saved in the notebook beside the reply it belongs to.

The final output of each recorded reply carries this under `MIME_TYPE`, so the saved notebook
is the conversation's record: `%chat_config --restore` rebuilds sessions from it without a
request. Front ends show the `text/html` next to it and ignore this type; nbconvert exports
leave it out. It holds what is needed to restore and to study a reply, from a short list of
fields, never the request's URL or headers; every string in it passes through the caller's
redactor, so a key the user pasted into a prompt is masked too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import ConversationError
from ._schema import GENERATION_KEYS

if TYPE_CHECKING:
    from ._cells import CellRun
    from ._reply import Reply

__all__ = [
    "FORMAT",
    "MIME_TYPE",
    "SavedExchange",
    "exchange_json",
    "read_exchange",
    "secret_redactor",
]

MIME_TYPE = "application/vnd.ipychat.exchange+json"
FORMAT = "ipychat.exchange"
VERSION = 1
# Request body fields kept as "parameters": generation settings, nothing that addresses a server.
_PARAMS = ("model", *GENERATION_KEYS, "stream", "seed")


def exchange_json(
    *,
    session: str,
    prompt: str,
    reply: Reply,
    cell: CellRun | None = None,
    system: str | None = None,
    redact: Callable[[str], str] = lambda text: text,
) -> dict[str, Any]:
    """The exchange as plain JSON data (strings passed through `redact`)."""
    from . import __version__

    usage = reply.usage
    data = {
        "format": FORMAT,
        "version": VERSION,
        "ipychat": __version__,
        "session": session,
        "system": system,
        "cell_id": cell.id if cell else None,
        "execution_count": cell.execution_count if cell else None,
        "user": prompt,
        "reply": reply.text,
        "reasoning": reply.reasoning,
        "incomplete": not reply.complete,
        "model": reply.model,
        "finish_reason": reply.finish_reason,
        "parameters": {k: reply.params[k] for k in _PARAMS if k in reply.params},
        "usage": {
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "total_tokens": usage.total_tokens if usage else None,
        },
        "timings": {"time_to_first_token": reply.time_to_first_token, "elapsed": reply.elapsed},
        "id": reply.id,
        "created": reply.created,
    }
    return _scrub(data, redact)


def secret_redactor(resolved: Any) -> Callable[[str], str]:
    """Masks the key, every `extra_headers` value and URL credentials of `resolved` settings.

    The exchange holds no field that carries them; this catches one pasted into a prompt or
    echoed by a server into a reply. It is the settings' one redactor (`_secrets.Redactor`):
    any run of 8 or more characters of a secret, escaped forms included.
    """
    return resolved.redactor().text


def _scrub(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _scrub(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, redact) for v in value]
    return value


@dataclass(frozen=True)
class SavedExchange:
    """What a restore needs from one saved exchange (the rest stays in the notebook)."""

    session: str
    user: str
    reply: str
    system: str | None = None
    cell_id: str | None = None
    execution_count: int | None = None
    incomplete: bool = False
    meta: dict[str, Any] | None = None


def read_exchange(data: object) -> SavedExchange:
    """Check one saved exchange; `ConversationError` says what is wrong with it.

    Tolerant of what may change between versions and of hand edits: the data may be a JSON
    string, unknown fields are ignored, and only the messages themselves are required.
    """
    lines = isinstance(data, list) and all(isinstance(line, str) for line in data)
    if isinstance(data, str) or lines:  # JSON kept as text, perhaps split into lines
        text = "".join(data) if isinstance(data, list) else data
        try:
            data = json.loads(text)
        except ValueError:
            raise ConversationError("its exchange is not valid JSON") from None
    if not isinstance(data, dict):
        raise ConversationError("its exchange is not a JSON object")
    if data.get("format", FORMAT) != FORMAT:
        raise ConversationError(f"its exchange has format {data.get('format')!r}")
    user, reply = data.get("user"), data.get("reply")
    if not isinstance(user, str) or not user.strip():
        raise ConversationError("its exchange has no user message")
    if not isinstance(reply, str) or not reply.strip():
        raise ConversationError("its exchange has no reply text")
    session = data.get("session")
    if session is None:
        session = "default"
    if not isinstance(session, str) or not session.strip():
        raise ConversationError("its exchange names no session")
    system = data.get("system")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    timings = data.get("timings") if isinstance(data.get("timings"), dict) else {}
    meta = {
        "model": _of(data.get("model"), str),
        "finish_reason": _of(data.get("finish_reason"), str),
        "prompt_tokens": _of(usage.get("prompt_tokens"), int),
        "completion_tokens": _of(usage.get("completion_tokens"), int),
        "total_tokens": _of(usage.get("total_tokens"), int),
        "time_to_first_token": _of(timings.get("time_to_first_token"), float),
        "elapsed": _of(timings.get("elapsed"), float),
    }
    return SavedExchange(
        session=session,
        user=user,
        reply=reply,
        system=system if isinstance(system, str) and system.strip() else None,
        cell_id=_of(data.get("cell_id"), str),
        execution_count=_of(data.get("execution_count"), int),
        incomplete=data.get("incomplete") is True,
        meta=meta,
    )


def _of(value: Any, kind: type) -> Any:
    """`value` if it is of `kind` (ints count as floats, bools as nothing), else None."""
    if isinstance(value, bool):
        return None
    if kind is float and isinstance(value, int):
        return float(value)
    return value if isinstance(value, kind) else None
