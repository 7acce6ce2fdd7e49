"""Conversations: the messages of one chat, kept valid under the service's role rules.

The rules (from the service reference): roles are `system`, `user`, `assistant`; a system
message is optional and only first; content is never empty; user and assistant alternate;
the last message sent is a user turn. A conversation is only ever changed by whole exchanges,
so it stays valid: an exchange is recorded only when the assistant produced text, a failed
request records nothing, and a broken stream records its partial text marked incomplete.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._errors import ConversationError, RequestError

if TYPE_CHECKING:
    from ._chunks import Delta
    from ._client import ChatClient
    from ._reply import Reply

__all__ = ["Conversation", "Message", "SessionRegistry", "sessions", "validate_messages"]

ROLES = ("system", "user", "assistant")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Message:
    """One message. `meta` holds facts about an assistant reply (model, tokens, timings)."""

    role: str
    content: str
    incomplete: bool = False
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_wire(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.incomplete:
            data["incomplete"] = True
        if self.meta:
            data["meta"] = self.meta
        return data


def validate_messages(messages: list[dict[str, Any]], *, for_sending: bool = True) -> None:
    """Raise `ConversationError` naming the first message that breaks the role rules."""
    if for_sending and not messages:
        raise ConversationError("There are no messages to send.")
    previous = None
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ConversationError(f"Message {index} is not an object with role and content.")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise ConversationError(
                f"Message {index} has role {role!r}; roles are system, user and assistant."
            )
        if not isinstance(content, str) or not content.strip():
            raise ConversationError(f"Message {index} ({role}) has empty content.")
        if role == "system" and index != 0:
            raise ConversationError(f"Message {index} is a system message; only the first may be.")
        if role != "system" and previous == role:
            raise ConversationError(
                f"Messages {index - 1} and {index} are both {role} messages; "
                "user and assistant must alternate."
            )
        if role == "assistant" and previous in (None, "system"):
            raise ConversationError(f"Message {index} is an assistant reply with no user turn.")
        previous = role
    if for_sending and previous != "user":
        raise ConversationError("The last message sent must be a user turn.")


def _reply_meta(reply: Reply) -> dict[str, Any]:
    usage = reply.usage
    return {
        "model": reply.model,
        "finish_reason": reply.finish_reason,
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "total_tokens": usage.total_tokens if usage else None,
        "time_to_first_token": reply.time_to_first_token,
        "elapsed": reply.elapsed,
    }


class Conversation:
    """The history of one chat session, with an optional system prompt.

    >>> conv = Conversation(system="Be brief.")
    >>> reply = conv.send("Hi", client=client)      # records the exchange
    >>> conv.send("And again?", client=client)      # sends system, user, assistant, user
    """

    def __init__(
        self,
        system: str | None = None,
        messages: Iterable[Message] = (),
        *,
        name: str = "default",
    ) -> None:
        self.name = name
        self._system: str | None = None
        self.messages: list[Message] = []
        self.system = system
        for message in messages:
            self.messages.append(message)
        validate_messages([m.to_wire() for m in self.all_messages()], for_sending=False)

    # -- the system prompt ---------------------------------------------------------------
    @property
    def system(self) -> str | None:
        return self._system

    @system.setter
    def system(self, text: str | None) -> None:
        if text is not None and not text.strip():
            text = None
        self._system = text

    def all_messages(self) -> list[Message]:
        """The system message (if any) followed by the exchanges."""
        head = [Message("system", self._system)] if self._system else []
        return head + self.messages

    def __len__(self) -> int:
        return len(self.messages) // 2

    def __iter__(self) -> Iterator[Message]:
        return iter(self.all_messages())

    def __repr__(self) -> str:
        return f"Conversation(name={self.name!r}, exchanges={len(self)}, system={self._system!r})"

    # -- sending ---------------------------------------------------------------------------
    def build_messages(
        self,
        prompt: str,
        *,
        history: bool = True,
        history_limit: int | None = None,
        system: str | None = None,
    ) -> list[dict[str, str]]:
        """The messages to send for `prompt`: system, the kept history, then the prompt."""
        if not prompt.strip():
            raise ConversationError("The prompt is empty: write your message in the cell.")
        system = self._system or system
        messages = [{"role": "system", "content": system}] if system else []
        if history:
            kept = self.messages
            if history_limit is not None:
                kept = kept[-2 * history_limit :] if history_limit else []
            messages += [m.to_wire() for m in kept]
        messages.append({"role": "user", "content": prompt})
        validate_messages(messages)
        return messages

    def record(self, prompt: str, reply: Reply) -> bool:
        """Append the exchange if the reply has text; returns whether it was recorded."""
        if not reply.text.strip():
            return False
        self.messages.append(Message("user", prompt))
        self.messages.append(
            Message("assistant", reply.text, incomplete=not reply.complete, meta=_reply_meta(reply))
        )
        return True

    def send(
        self,
        prompt: str,
        *,
        client: ChatClient,
        history: bool = True,
        on_delta: Callable[[Delta], None] | None = None,
        **overrides: Any,
    ) -> Reply:
        """Send `prompt` with the history; record the exchange (also a partial one) on return.

        With `history=False` it is a one-shot: no history is sent and nothing is recorded.
        On a broken stream the partial reply is recorded and the error (holding it as
        `error.reply`) is raised.
        """
        settings = client.settings.resolve(**overrides)
        messages = self.build_messages(
            prompt,
            history=history,
            history_limit=settings.history_limit,
            system=settings.system,
        )
        with client.stream(messages, prompt=prompt, **overrides) as stream:
            try:
                for delta in stream:
                    if on_delta is not None:
                        on_delta(delta)
            except (RequestError, KeyboardInterrupt) as exc:
                partial = getattr(exc, "reply", None) or stream.reply
                if history:
                    self.record(prompt, partial)
                exc.reply = partial  # type: ignore[union-attr]
                raise
            reply = stream.reply
        if history:
            self.record(prompt, reply)
        return reply

    # -- editing -----------------------------------------------------------------------------
    def undo(self) -> tuple[Message, Message] | None:
        """Remove the last exchange and return it (None when there is none)."""
        if len(self.messages) < 2:
            return None
        assistant = self.messages.pop()
        user = self.messages.pop()
        return user, assistant

    def reset(self, *, keep_system: bool = True) -> None:
        """Drop all exchanges (and the system prompt unless `keep_system`)."""
        self.messages.clear()
        if not keep_system:
            self._system = None

    def fork(self, name: str | None = None) -> Conversation:
        """An independent copy, to explore a different direction from here."""
        return Conversation(
            self._system, copy.deepcopy(self.messages), name=name or f"{self.name}-fork"
        )

    # -- export and import --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "ipychat.conversation",
            "version": FORMAT_VERSION,
            "name": self.name,
            "system": self._system,
            "messages": [m.to_dict() for m in self.messages],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: object) -> Conversation:
        if isinstance(data, list):  # a bare OpenAI-style message list
            data = {"messages": data}
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            raise ConversationError("A conversation must be an object with a 'messages' list.")
        raw = data["messages"]
        system = data.get("system")
        if raw and isinstance(raw[0], dict) and raw[0].get("role") == "system":
            system, raw = raw[0].get("content"), raw[1:]
        if system is not None and not isinstance(system, str):
            raise ConversationError("The conversation's 'system' must be a string.")
        validate_messages(
            ([{"role": "system", "content": system}] if system else []) + list(raw),
            for_sending=False,
        )
        if raw and raw[-1]["role"] != "assistant":
            raise ConversationError("The conversation ends with a user turn that has no reply.")
        for index, m in enumerate(raw):
            if not isinstance(m.get("meta") or {}, dict):
                raise ConversationError(f"Message {index} has a 'meta' that is not an object.")
        messages = [
            Message(m["role"], m["content"], bool(m.get("incomplete")), dict(m.get("meta") or {}))
            for m in raw
        ]
        return cls(system, messages, name=str(data.get("name") or "default"))

    @classmethod
    def from_json(cls, text: str) -> Conversation:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConversationError(f"The history is not valid JSON ({exc}).") from None
        return cls.from_dict(data)

    def to_markdown(self) -> str:
        """A readable transcript (not meant to be loaded back: use JSON for that)."""
        parts = [f"# Conversation: {self.name}"]
        if self._system:
            parts.append(f"**System:** {self._system}")
        for message in self.messages:
            who = "User" if message.role == "user" else "Assistant"
            mark = " *(incomplete)*" if message.incomplete else ""
            parts.append(f"## {who}{mark}\n\n{message.content}")
        return "\n\n".join(parts) + "\n"

    def to_records(self) -> list[dict[str, Any]]:
        """One row per message, ready for `pandas.DataFrame(conv.to_records())`."""
        rows = []
        for index, message in enumerate(self.all_messages()):
            row: dict[str, Any] = {
                "index": index,
                "role": message.role,
                "content": message.content,
                "incomplete": message.incomplete,
            }
            row.update(message.meta)
            rows.append(row)
        return rows


class SessionRegistry:
    """Named conversations of this process; `current` is the one `%%chat` uses by default."""

    def __init__(self) -> None:
        self._sessions: dict[str, Conversation] = {}
        self.current = "default"

    def get(self, name: str | None = None, *, create: bool = True) -> Conversation:
        name = name or self.current
        if name not in self._sessions:
            if not create:
                known = ", ".join(sorted(self._sessions)) or "none yet"
                raise ConversationError(f"No session named {name!r} (sessions: {known}).")
            self._sessions[name] = Conversation(name=name)
        return self._sessions[name]

    def add(self, conversation: Conversation) -> None:
        self._sessions[conversation.name] = conversation

    def remove(self, name: str) -> None:
        self.get(name, create=False)
        del self._sessions[name]
        if self.current == name:
            self.current = "default"

    def names(self) -> list[str]:
        return sorted(self._sessions)

    def __contains__(self, name: object) -> bool:
        return name in self._sessions

    def clear(self) -> None:
        self._sessions.clear()
        self.current = "default"


sessions = SessionRegistry()
"""This process's sessions: the ones `%%chat -s NAME` uses, reachable from Python too."""
