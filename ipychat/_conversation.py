"""Conversations: the messages of one chat, kept valid under the service's role rules.

The rules are in `_messages`. A conversation is only ever changed by whole exchanges, so it
stays valid: an exchange is recorded only when the assistant produced text, a failed request
records nothing, and a broken stream records its partial text marked incomplete.

Exchanges belong to the notebook cell that made them (`cell=`, a `CellRun`): a re-run of a
cell sends only the history before its old exchanges and puts its new ones in their place, so
the history follows the notebook instead of the order things were run in. Without a cell
(terminal, scripts, callbacks) exchanges append.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ._errors import ConversationError, RequestError
from ._messages import Message, validate_messages

if TYPE_CHECKING:
    from ._cells import CellRun
    from ._chunks import Delta
    from ._client import ChatClient
    from ._reply import Reply
    from ._resolved import ResolvedSettings

__all__ = ["Conversation", "Message", "SessionRegistry", "sessions", "validate_messages"]

FORMAT_VERSION = 1


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
        self._cell_runs: dict[str, int] = {}  # cell id -> the run whose exchanges are kept
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
        cell: CellRun | None = None,
    ) -> list[dict[str, str]]:
        """The messages to send for `prompt`: system, the kept history, then the prompt.

        For a re-run of `cell` the history ends before the cell's old exchanges.
        """
        if not prompt.strip():
            raise ConversationError("The prompt is empty: write your message in the cell.")
        system = self._system or system
        messages = [{"role": "system", "content": system}] if system else []
        if history:
            kept = self.messages[: self._place(cell)]
            if history_limit is not None:
                kept = kept[-2 * history_limit :] if history_limit else []
            messages += [m.to_wire() for m in kept]
        messages.append({"role": "user", "content": prompt})
        validate_messages(messages)
        return messages

    def _place(self, cell: CellRun | None) -> int:
        """Where the next exchange of `cell` goes: after this run's exchanges of the cell,
        in place of an earlier run's, or at the end for a new cell or no cell."""
        end = len(self.messages)
        if cell is None:
            return end
        starts = self._cell_starts(cell.id)
        if not starts:
            return end
        return starts[-1] + 2 if self._cell_runs.get(cell.id) == cell.run else starts[0]

    def _cell_starts(self, cell_id: str) -> list[int]:
        return [
            i for i in range(0, len(self.messages), 2) if self.messages[i].cell_id == cell_id
        ]

    def record(self, prompt: str, reply: Reply, *, cell: CellRun | None = None) -> bool:
        """Record the exchange if the reply has text; returns whether it was recorded.

        The first exchange of a new run of `cell` replaces that cell's earlier exchanges (in
        their place); later ones of the same run follow it; without a cell it appends.
        """
        if not reply.text.strip():
            return False
        at = self._place(cell)
        origin: dict[str, Any] = {}
        if cell is not None:
            origin = {"cell_id": cell.id, "execution_count": cell.execution_count}
            if self._cell_runs.get(cell.id) != cell.run:
                for start in reversed(self._cell_starts(cell.id)):  # all at or after `at`
                    del self.messages[start : start + 2]
                self._cell_runs[cell.id] = cell.run
        meta = _reply_meta(reply)
        self.messages[at:at] = [
            Message("user", prompt, **origin),
            Message("assistant", reply.text, not reply.complete, meta, **origin),
        ]
        return True

    def recorded_in(self, cell: CellRun) -> bool:
        """Whether this run of `cell` recorded an exchange here."""
        return self._cell_runs.get(cell.id) == cell.run

    def drop_cells(self, cell_ids: Iterable[str]) -> int:
        """Remove the exchanges of these cells (deleted in the notebook); returns how many."""
        ids = set(cell_ids)
        starts = [i for i in range(0, len(self.messages), 2) if self.messages[i].cell_id in ids]
        for start in reversed(starts):
            del self.messages[start : start + 2]
        for cell_id in ids:
            self._cell_runs.pop(cell_id, None)
        return len(starts)

    def request_for(
        self,
        prompt: str,
        *,
        client: ChatClient,
        history: bool = True,
        cell: CellRun | None = None,
        **overrides: Any,
    ) -> tuple[ResolvedSettings, list[dict[str, str]], dict[str, Any]]:
        """What `send` sends: the settings, the messages and the overrides the budget allows.

        The session's budget is checked here, before anything is sent, so every way of sending
        (plain, structured) is refused the same way when it is spent.
        """
        from . import _budget

        settings = client.settings.resolve(**overrides)
        messages = self.build_messages(
            prompt,
            history=history,
            history_limit=settings.history_limit,
            system=settings.system,
            cell=cell,
        )
        return settings, messages, _budget.admit(self, settings, messages, overrides)

    def send(
        self,
        prompt: str,
        *,
        client: ChatClient,
        history: bool = True,
        on_delta: Callable[[Delta], None] | None = None,
        cell: CellRun | None = None,
        on_alive: Callable[[], None] | None = None,
        **overrides: Any,
    ) -> Reply:
        """Send `prompt` with the history; record the exchange (also a partial one) on return.

        `on_delta` sees each piece of text; `on_alive()` is called when bytes arrive that carry
        no text (keep-alives while the server works), so a display can say it is still alive.

        With `history=False` it is a one-shot: no history is sent and nothing is recorded.
        `cell` is the notebook cell run sending it (see `record`).
        On a broken stream the partial reply is recorded and the error (holding it as
        `error.reply`) is raised.
        """
        from . import _budget

        settings, messages, overrides = self.request_for(
            prompt, client=client, history=history, cell=cell, **overrides
        )
        with client.stream(messages, prompt=prompt, on_alive=on_alive, **overrides) as stream:
            try:
                for delta in stream:
                    if on_delta is not None:
                        on_delta(delta)
            except (RequestError, KeyboardInterrupt) as exc:
                partial = getattr(exc, "reply", None) or stream.reply
                _budget.charge(self, settings, messages, partial)
                if history:
                    self.record(prompt, partial, cell=cell)
                exc.reply = partial  # type: ignore[union-attr]
                raise
            reply = stream.reply
        _budget.charge(self, settings, messages, reply)
        if history:
            self.record(prompt, reply, cell=cell)
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
        self._cell_runs.clear()
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

    def to_json(
        self, *, indent: int | None = 2, redact: Callable[[Any], Any] | None = None
    ) -> str:
        """The conversation as JSON; `redact` (e.g. `settings.redactor().json`) masks secrets.

        Replies are already redacted when they arrive; `redact` also covers what was sent,
        such as a key pasted into a prompt. It is applied to the data, not to the JSON text,
        so every escape stays valid.
        """
        data = self.to_dict()
        return json.dumps(redact(data) if redact else data, indent=indent, ensure_ascii=False)

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
            Message(
                m["role"],
                m["content"],
                bool(m.get("incomplete")),
                dict(m.get("meta") or {}),
                m.get("cell_id") if isinstance(m.get("cell_id"), str) else None,
                _count(m.get("execution_count")),
            )
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
        """A readable transcript, safe to preview (not meant to be loaded back: use JSON).

        Every message is untrusted text: raw HTML, images and math are made inert so that
        opening the file in JupyterLab's Markdown preview fetches and runs nothing (see
        `_export`); the header says so.
        """
        from ._export import HEADER, preview_safe

        parts = [f"# Conversation: {preview_safe(self.name)}", HEADER]
        if self._system:
            parts.append(f"**System:**\n\n{preview_safe(self._system)}")
        for message in self.messages:
            who = "User" if message.role == "user" else "Assistant"
            mark = " *(incomplete)*" if message.incomplete else ""
            parts.append(f"## {who}{mark}\n\n{preview_safe(message.content)}")
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
                "cell_id": message.cell_id,
                "execution_count": message.execution_count,
            }
            row.update(message.meta)
            rows.append(row)
        return rows


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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

    def drop_cells(self, cell_ids: Iterable[str]) -> int:
        """Remove the exchanges of deleted cells from every session; returns how many."""
        ids = list(cell_ids)
        return sum(conv.drop_cells(ids) for conv in self._sessions.values())

    def retire_cell(self, cell: CellRun, keep: Iterable[str] = ()) -> int:
        """After a run of `cell` that recorded, drop its older exchanges from other sessions.

        A cell whose `-s` changed leaves its old session that way. Sessions in `keep` (a
        request of this run failed there) and runs that recorded nothing change nothing.
        """
        convs = self._sessions
        if not any(conv.recorded_in(cell) for conv in convs.values()):
            return 0
        kept = set(keep)
        return sum(
            conv.drop_cells([cell.id])
            for name, conv in convs.items()
            if name not in kept and not conv.recorded_in(cell)
        )

    def __contains__(self, name: object) -> bool:
        return name in self._sessions

    def clear(self) -> None:
        self._sessions.clear()
        self.current = "default"


sessions = SessionRegistry()
"""This process's sessions: the ones `%%chat -s NAME` uses, reachable from Python too."""
