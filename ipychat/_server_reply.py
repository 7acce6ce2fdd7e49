"""What the offline server answers: request checks and reply planning, before any byte is sent.

Planning is a chain of reply sources (`REPLY_SOURCES`): each looks at the request and returns
the text to send, or None to let the next one try. A new kind of answer (a structured one for
`response_format`, say) is one more source in the list, ahead of the echo. Stdlib only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._lesson import Timing, find_turn
from ._server_structured import structured

if TYPE_CHECKING:
    from ._server import LocalServer

__all__ = ["REPLY_SOURCES", "Planned", "Refused", "Reply", "invalid", "plan", "split"]

_REPEAT = re.compile(r"/repeat (\d+) (.+)")
_WORD = re.compile(r"\s*\S+\s*")
_ROLES = ("system", "user", "assistant")
_RANGES = {
    "temperature": (lambda x: 0 <= x < 2, "in [0, 2)"),
    "top_p": (lambda x: 0 < x <= 1, "in (0, 1]"),
    "presence_penalty": (lambda x: -2 <= x <= 2, "in [-2, 2]"),
    "frequency_penalty": (lambda x: -2 <= x <= 2, "in [-2, 2]"),
}


def invalid(body: object) -> str | None:
    """Why the reference service would refuse this body (HTTP 400), or None if it is fine."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model is required and must be a non-empty string."
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list."
    previous = None
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            return f"{where} must be an object with role and content."
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES:
            return f"{where}.role must be one of system, user, assistant, not {role!r}."
        if not isinstance(content, str) or not content:
            return f"{where}.content must be a non-empty string."
        if role == "system" and index:
            return f"{where}: a system message is only allowed as messages[0]."
        if role == previous:
            return f"{where}: user and assistant messages must alternate."
        previous = role
    if previous != "user":
        return "The last message must have role user."
    for name, (ok, span) in _RANGES.items():
        value = body.get(name)
        if value is not None and (not _is_number(value) or not ok(value)):
            return f"{name} must be a number {span}, not {value!r}."
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
        return f"max_tokens must be a positive integer, not {max_tokens!r}."
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        return f"stop must be a string or a list of strings, not {stop!r}."
    if not isinstance(body.get("stream", False), bool):
        return f"stream must be a boolean, not {body['stream']!r}."
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Refused(Exception):
    """Answer with an OpenAI-shaped error instead of a reply, before any byte of one is sent."""

    def __init__(self, status: int, code: str, message: str, student: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.student = student  # the class list's line number, for the request log

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": None, "code": self.code}}


@dataclass
class Planned:
    """A source's answer before `stop` and `max_tokens` apply to it."""

    text: str
    reasoning: str = ""
    finish_reason: str = "stop"
    usage: dict[str, int] | None = None  # a recorded turn's, reported as it was
    timing: Timing | None = None


@dataclass
class Reply:
    """One answer, already cut into chunks, so streaming and non-streaming agree on it."""

    reasoning: list[str]
    content: list[str]
    finish_reason: str
    prompt_tokens: int
    recorded_usage: dict[str, int] | None = None
    timing: Timing | None = None

    @property
    def chunks(self) -> int:
        return len(self.reasoning) + len(self.content)

    @property
    def usage(self) -> dict[str, int]:
        if self.recorded_usage is not None:
            return dict(self.recorded_usage)
        completion = len(self.reasoning) + len(self.content)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }


# A source answers (body, last user message, server) with a Planned reply, None to pass, or
# raises Refused to answer with an error.
ReplySource = Callable[[dict[str, Any], str, "LocalServer"], Planned | None]


def _repeat(body: dict[str, Any], prompt: str, server: LocalServer) -> Planned | None:
    """`/repeat N WORD`: long output without a script."""
    if repeat := _REPEAT.fullmatch(prompt.strip()):
        return Planned(" ".join([repeat[2]] * int(repeat[1])))
    return None


def _scripted(body: dict[str, Any], prompt: str, server: LocalServer) -> Planned | None:
    if turn := find_turn(server._turns, prompt):
        return Planned(turn.reply, turn.reasoning, turn.finish_reason, turn.usage, turn.timing)
    return None


def _strict(body: dict[str, Any], prompt: str, server: LocalServer) -> Planned | None:
    """For graded notebooks and CI: a prompt the lesson does not know is an error, not an echo."""
    if server.strict:
        message = "This prompt is not part of the lesson (the server runs with --strict)."
        raise Refused(404, "not_in_lesson", message)
    return None


def _structured(body: dict[str, Any], prompt: str, server: LocalServer) -> Planned | None:
    """`response_format` JSON, derived from the schema (see `_server_structured`)."""
    text = structured(body, prompt)
    return None if text is None else Planned(text)


def _echo(body: dict[str, Any], prompt: str, server: LocalServer) -> Planned | None:
    return Planned("Echo: " + prompt)


REPLY_SOURCES: list[ReplySource] = [_repeat, _scripted, _strict, _structured, _echo]


def plan(body: dict[str, Any], server: LocalServer) -> Reply:
    """Choose the reply to a valid request, then apply `stop` and `max_tokens` to it."""
    messages, chunk_chars = body["messages"], server.chunk_chars
    prompt = messages[-1]["content"]
    planned = next(p for source in REPLY_SOURCES if (p := source(body, prompt, server)))
    text, finish_reason = planned.text, planned.finish_reason
    stops = body.get("stop") or []
    hits = [text.find(s) for s in ([stops] if isinstance(stops, str) else stops) if s and s in text]
    if hits:
        text, finish_reason = text[: min(hits)], "stop"
    content = split(text, chunk_chars)
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and len(content) > max_tokens:
        content, finish_reason = content[:max_tokens], "length"
    prompt_tokens = sum(len(m["content"].split()) for m in messages)
    whole = "".join(content) == planned.text and finish_reason == planned.finish_reason
    usage = planned.usage if whole else None  # a cut reply no longer has the recorded usage
    reasoning = split(planned.reasoning, chunk_chars)
    return Reply(reasoning, content, finish_reason, prompt_tokens, usage, planned.timing)


def split(text: str, chunk_chars: int | None) -> list[str]:
    """Cut text into tokens: a word with its following whitespace, or fixed-size slices."""
    if chunk_chars:
        return [text[i : i + chunk_chars] for i in range(0, len(text), chunk_chars)]
    return _WORD.findall(text) or ([text] if text else [])
