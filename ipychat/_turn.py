"""One cell's exchange, and the session changes it asks for, kept only if it is recorded.

`%%chat --new --system X` used to empty the session and change its system prompt before the
request, so a failed request still changed the session, and `--no-history --system X` changed
it for good. A `Turn` sends from a trial copy instead: the copy starts empty for `--new` and
carries the new system prompt, and only when the exchange is recorded (a reply, also a partial
one, with text) does the copy's state become the session's. A session named for the first
time is registered at that moment too, so a failed first cell leaves no empty session behind.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from ._conversation import Conversation, SessionRegistry

__all__ = ["Turn"]


def _copy_state(conversation: Conversation) -> Conversation:
    """A copy whose lists and dicts (messages, cell runs) are its own; messages are shared."""
    trial = copy.copy(conversation)
    trial.__dict__ = {key: copy.copy(value) for key, value in vars(conversation).items()}
    return trial


@dataclass
class Turn:
    """What one `%%chat` / `%chat` sends: prompt, per-cell settings and session changes."""

    registry: SessionRegistry
    session_name: str | None
    prompt: str
    overrides: dict[str, Any] = field(default_factory=dict)
    history: bool = True
    new: bool = False
    system: str | None = None
    filled: tuple[str, ...] = ()
    cell: Any = None  # the notebook cell run sending it (see Conversation.record)

    def __post_init__(self) -> None:
        name = self.session_name or self.registry.current
        known = name in self.registry
        self.session = self.registry.get(name) if known else Conversation(name=name)
        self._registered = known
        self.trial = _copy_state(self.session)
        if self.new:
            self.trial.reset()
        if self.system is not None:
            self.trial.system = self.system
        self._before = list(self.trial.messages)

    def messages(self, settings: Any) -> list[dict[str, str]]:
        """The messages this turn would send (for `--dry-run`), from the trial copy."""
        resolved = settings.resolve(**self.overrides)
        return self.trial.build_messages(
            self.prompt,
            history=self.history,
            history_limit=resolved.history_limit,
            system=resolved.system,
            cell=self.cell,
        )

    def send(self, client: Any, on_delta: Any = None, schema: Any = None) -> Any:
        """Send from the trial copy; its changes are kept if the exchange is recorded.

        With a `schema` (see `_structured`) the reply is asked for as validated data.
        """
        try:
            if schema is not None:
                from ._batch_magic import send_structured

                return send_structured(
                    self.trial,
                    self.prompt,
                    client=client,
                    schema=schema,
                    history=self.history,
                    cell=self.cell,
                    on_delta=on_delta,
                    overrides=self.overrides,
                )
            return self.trial.send(
                self.prompt,
                client=client,
                history=self.history,
                on_delta=on_delta,
                cell=self.cell,
                **self.overrides,
            )
        finally:
            self._commit()

    @property
    def recorded(self) -> bool:
        """Whether sending changed the trial's history (appended, or replaced a cell's turn)."""
        after = self.trial.messages
        return len(after) != len(self._before) or any(
            a is not b for a, b in zip(after, self._before, strict=True)
        )

    def _commit(self) -> None:
        if not self.recorded:  # nothing recorded: the session is untouched
            return
        vars(self.session).update(vars(self.trial))
        if not self._registered:
            self.registry.add(self.session)
            self._registered = True
