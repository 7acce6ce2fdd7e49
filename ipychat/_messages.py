"""Messages and the service's role rules, shared by conversations, exports and restores.

The rules (from the service reference): roles are `system`, `user`, `assistant`; a system
message is optional and only first; content is never empty; user and assistant alternate;
the last message sent is a user turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._errors import ConversationError

__all__ = ["ROLES", "Message", "validate_messages"]

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    """One message. `meta` holds facts about an assistant reply (model, tokens, timings).

    `cell_id` and `execution_count` name the notebook cell whose run made the exchange (both
    messages of an exchange carry them), so a re-run can replace it and a deleted cell drop it.
    """

    role: str
    content: str
    incomplete: bool = False
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    cell_id: str | None = field(default=None, compare=False)
    execution_count: int | None = field(default=None, compare=False)

    def to_wire(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.incomplete:
            data["incomplete"] = True
        if self.meta:
            data["meta"] = self.meta
        if self.cell_id is not None:
            data["cell_id"] = self.cell_id
        if self.execution_count is not None:
            data["execution_count"] = self.execution_count
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
