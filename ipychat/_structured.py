"""Structured replies: a schema in, a validated value out, whatever the server supports.

`Schema.of(spec)` accepts a JSON Schema dict, a pydantic model class (only when the user has
pydantic), a dataclass, a TypedDict, or a dict of `name: type`, and keeps one JSON Schema.
Servers differ in what they accept, so a request goes out in the best mode the endpoint takes:

    "json_schema"   response_format {"type": "json_schema", ...}          (OpenAI, vLLM, ...)
    "json_object"   response_format {"type": "json_object"} + the schema in the instructions
    "instructions"  the schema in the instructions alone

A refusal (400/422 naming response_format) moves to the next mode, remembered per endpoint for
this process. The reply is parsed and validated; when it does not validate, one repair request
is sent; a reply that still fails keeps its text and says why in `reply.error`. The decisions
live in `dialogue()`, a generator shared by the sync (`%%chat`) and async (batch) drivers.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any

from ._errors import APIStatusError, ConfigError
from ._jsoncheck import check
from ._reply import Reply

__all__ = ["MODES", "Schema", "dialogue", "drive", "drive_async", "endpoint_mode"]

MODES = ("json_schema", "json_object", "instructions")
_endpoint_modes: dict[str, str] = {}  # url -> the best mode it accepted (or has not refused)
_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
_INSTRUCTIONS = (
    "Reply with only a JSON value that matches this JSON Schema: no prose, no code fence.\n"
)

Request = tuple[list[dict[str, str]], dict[str, Any]]  # messages, extra_body


@dataclasses.dataclass(frozen=True)
class Schema:
    """One JSON Schema, with the user's type to build from validated JSON (if any)."""

    name: str
    json: dict[str, Any]
    target: Any = None  # the pydantic model, dataclass or TypedDict given; None for dicts

    @classmethod
    def of(cls, spec: Any) -> Schema:
        """Normalise what the user passed; a `ConfigError` says what is accepted."""
        if isinstance(spec, Schema):
            return spec
        if isinstance(spec, type) and hasattr(spec, "model_json_schema"):  # pydantic v2
            return cls(spec.__name__, spec.model_json_schema(), spec)
        if isinstance(spec, type) and (
            dataclasses.is_dataclass(spec) or typing.is_typeddict(spec)
        ):
            return cls(spec.__name__, _type_schema(spec), spec)
        if isinstance(spec, Mapping) and spec and all(_is_type(v) for v in spec.values()):
            fields = {str(k): _type_schema(v) for k, v in spec.items()}
            return cls("reply", _object(fields, list(fields)))
        if isinstance(spec, Mapping) and spec:
            schema = json.loads(json.dumps(spec))  # a plain, independent copy
            return cls(str(spec.get("title") or "reply"), schema)
        raise ConfigError(
            f"A schema must be a JSON Schema dict, a pydantic model class, a dataclass, a "
            f"TypedDict or a dict of name: type, not {type(spec).__name__}."
        )

    @property
    def wire_name(self) -> str:
        """The name OpenAI accepts in json_schema: letters, digits, _ and -, 64 at most."""
        cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in self.name)
        return cleaned[:64] or "reply"

    def validate(self, value: Any) -> tuple[Any, str | None]:
        """(the value as the user's type, None) when valid, else (None, why not)."""
        if self.target is not None and hasattr(self.target, "model_validate"):
            try:
                return self.target.model_validate(value), None
            except Exception as exc:  # pydantic.ValidationError, without importing pydantic
                return None, " ".join(str(exc).split())[:300]
        problem = check(value, self.json)
        if problem is not None:
            return None, problem
        if self.target is not None and dataclasses.is_dataclass(self.target):
            return _build(self.target, value), None
        return value, None

    def columns(self) -> list[str]:
        """The top-level fields, which become DataFrame columns in a batch."""
        props = self.json.get("properties")
        return list(props) if isinstance(props, dict) else []


def _is_type(value: Any) -> bool:
    return isinstance(value, type) or typing.get_origin(value) is not None or value is Any


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _type_schema(tp: Any) -> dict[str, Any]:
    """The JSON Schema of a Python type annotation (the subset `check` validates)."""
    if tp is Any:
        return {}
    if tp in _SIMPLE:
        return {"type": _SIMPLE[tp]}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_type_schema(a) for a in args]}
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple, set):
        return {"type": "array", "items": _type_schema(args[0] if args else Any)}
    if origin is dict or tp is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1] if args else Any)}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [member.value for member in tp]}
    if isinstance(tp, type) and typing.is_typeddict(tp):
        hints = typing.get_type_hints(tp)
        props = {name: _type_schema(t) for name, t in hints.items()}
        return _object(props, [n for n in hints if n in tp.__required_keys__])
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        fields = [f for f in dataclasses.fields(tp) if f.init]
        props = {f.name: _type_schema(hints[f.name]) for f in fields}
        required = [
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        return _object(props, required)
    raise ConfigError(f"ipychat cannot describe the type {tp!r} in a schema; use a JSON Schema.")


def _build(tp: Any, value: Any) -> Any:
    """Validated JSON -> the dataclass (and nested dataclasses and enums) it describes."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(value, dict):
        hints = typing.get_type_hints(tp)
        return tp(**{k: _build(hints.get(k, Any), v) for k, v in value.items()})
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list and args and isinstance(value, list):
        return [_build(args[0], v) for v in value]
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if isinstance(arg, type) and dataclasses.is_dataclass(arg) and isinstance(value, dict):
                return _build(arg, value)
    return value


# -- requests ----------------------------------------------------------------------------------


def endpoint_mode(url: str) -> str:
    """The mode to try first for this endpoint: json_schema until it was refused."""
    return _endpoint_modes.get(url, MODES[0])


def _with_instructions(messages: list[dict[str, str]], schema: Schema) -> list[dict[str, str]]:
    text = _INSTRUCTIONS + json.dumps(schema.json, ensure_ascii=False)
    if messages and messages[0]["role"] == "system":
        head = {"role": "system", "content": messages[0]["content"] + "\n\n" + text}
        return [head, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def plan(
    messages: list[dict[str, str]], schema: Schema, mode: str, extra_body: Mapping[str, Any]
) -> Request:
    """The messages and extra_body for one request in `mode`."""
    extra = {k: v for k, v in extra_body.items() if k != "response_format"}
    if mode == "json_schema":
        extra["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": schema.wire_name, "schema": schema.json},
        }
        return list(messages), extra
    if mode == "json_object":
        extra["response_format"] = {"type": "json_object"}
    return _with_instructions(messages, schema), extra


def refuses_format(error: BaseException) -> bool:
    """True when the server said no to response_format (and not to something else)."""
    if not isinstance(error, APIStatusError) or error.status not in (400, 422):
        return False
    text = str(error).lower()
    return any(word in text for word in ("response_format", "json_schema", "json_object"))


def parse(reply: Reply, schema: Schema) -> tuple[Any, str | None]:
    """The validated value of a reply, or why it has none."""
    try:
        value = reply.json()
    except ValueError:
        return None, "the reply is not JSON"
    return schema.validate(value)


def _repair(messages: list[dict[str, str]], reply: Reply, problem: str) -> list[dict[str, str]]:
    said = reply.text.strip() or "(an empty reply)"
    ask = f"That reply is not valid: {problem}. Reply with only the corrected JSON."
    return [*messages, {"role": "assistant", "content": said}, {"role": "user", "content": ask}]


def dialogue(
    messages: list[dict[str, str]],
    schema: Schema,
    url: str,
    extra_body: Mapping[str, Any],
) -> Generator[Request, Reply | BaseException, Reply]:
    """Yield requests, receive each one's reply (or its error); return the final reply.

    An error that is not a response_format refusal is raised again, so the caller's own
    handling applies. The final reply has `data` set, or `error` saying why it has none.
    """
    mode = endpoint_mode(url)
    while True:
        outcome = yield plan(messages, schema, mode, extra_body)
        if isinstance(outcome, BaseException):
            if refuses_format(outcome) and mode != MODES[-1]:
                mode = MODES[MODES.index(mode) + 1]
                _endpoint_modes[url] = mode
                continue
            raise outcome
        break
    reply = outcome
    value, problem = parse(reply, schema)
    if problem is not None and reply.complete:
        repaired = yield plan(_repair(messages, reply, problem), schema, mode, extra_body)
        if isinstance(repaired, BaseException):
            raise repaired
        reply = repaired
        value, problem = parse(reply, schema)
    if problem is None:
        reply.data = value
    else:
        reply.error = f"The reply does not match the schema {schema.name!r}: {problem}."
    return reply


def drive(
    conversation: Generator[Request, Reply | BaseException, Reply],
    send: Callable[[list[dict[str, str]], dict[str, Any]], Reply],
) -> Reply:
    """Run a `dialogue` with a blocking `send(messages, extra_body)`."""
    request = next(conversation)
    while True:
        outcome: Reply | BaseException
        try:
            outcome = send(*request)
        except APIStatusError as exc:
            outcome = exc
        try:
            request = conversation.send(outcome)
        except StopIteration as stop:
            return stop.value


async def drive_async(
    conversation: Generator[Request, Reply | BaseException, Reply],
    send: Callable[[list[dict[str, str]], dict[str, Any]], Awaitable[Reply]],
) -> Reply:
    """Run a `dialogue` with an async `send(messages, extra_body)`."""
    request = next(conversation)
    while True:
        outcome: Reply | BaseException
        try:
            outcome = await send(*request)
        except APIStatusError as exc:
            outcome = exc
        try:
            request = conversation.send(outcome)
        except StopIteration as stop:
            return stop.value
