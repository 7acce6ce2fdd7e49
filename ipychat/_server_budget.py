"""Per-student budgets on the classroom server, keyed by the bearer token a teacher hands out.

`serve --students FILE` reads one token per line (blank lines and `#` comments skipped),
optionally followed by that student's own limits: `s3cret-ana max_requests=20 max_tokens=5000`.
A request is refused with one clear line before any byte of a reply is sent: 401 for a missing
or unknown token, 403 once the budget would be exceeded (not 429: clients retry a 429,
and a spent budget does not come back). The log names a student by line
number, never by token.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from ._server_reply import Refused

__all__ = ["Student", "Students"]

_LIMITS = ("max_requests", "max_tokens")


@dataclass
class Student:
    """One student's limits (None: no limit) and what they have used so far."""

    number: int
    max_requests: int | None = None
    max_tokens: int | None = None
    requests: int = 0
    tokens: int = 0

    def left(self) -> str:
        parts = []
        if self.max_requests is not None:
            parts.append(f"{self.max_requests - self.requests} of {self.max_requests} requests")
        if self.max_tokens is not None:
            parts.append(f"{self.max_tokens - self.tokens} of {self.max_tokens} tokens")
        return ", ".join(parts) + " left" if parts else "no limit"


class Students:
    """The class list: tokens to budgets, checked and charged under one lock."""

    def __init__(
        self,
        tokens: dict[str, Student],
        *,
        max_requests: int | None = None,
        max_tokens: int | None = None,
    ) -> None:
        self._students = tokens
        for student in tokens.values():
            if student.max_requests is None:
                student.max_requests = max_requests
            if student.max_tokens is None:
                student.max_tokens = max_tokens
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Students({len(self._students)} students)"  # never the tokens

    def __len__(self) -> int:
        return len(self._students)

    @classmethod
    def load(
        cls, path: str | Path, *, max_requests: int | None = None, max_tokens: int | None = None
    ) -> Students:
        """Read a students file; a bad line fails at start with its line number."""
        name = str(path)
        students: dict[str, Student] = {}
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            token, limits = words[0], {}
            for word in words[1:]:
                key, _, value = word.partition("=")
                if key not in _LIMITS or not value.isdigit():
                    raise ValueError(
                        f"{name}: line {number}: expected TOKEN [max_requests=N] "
                        f"[max_tokens=N], not {key!r}."
                    )
                limits[key] = int(value)
            if token in students:
                raise ValueError(f"{name}: line {number}: this token is already on a line.")
            students[token] = Student(number, **limits)
        if not students:
            raise ValueError(f"{name}: no student tokens; put one token per line.")
        return cls(students, max_requests=max_requests, max_tokens=max_tokens)

    def admit(self, authorization: str | None, tokens: int | None) -> Student:
        """Count one request for the student, or refuse it before anything is sent.

        `tokens` is what the reply will cost when the server knows it in advance (a scripted
        reply); None when it does not (the pass-through): then a spent budget refuses.
        """
        token = _bearer(authorization)
        with self._lock:
            student = self._students.get(token) if token else None
            if student is None:
                message = "This server needs your class token: set it as your API key."
                if token:
                    message = "This token is not on the class list; check it with your teacher."
                raise Refused(401, "unknown_student", message)
            if student.max_requests is not None and student.requests >= student.max_requests:
                raise Refused(403, "budget_spent", _spent(student, "requests"), student.number)
            limit = student.max_tokens
            if limit is not None and student.tokens >= limit:
                raise Refused(403, "budget_spent", _spent(student, "tokens"), student.number)
            if limit is not None and tokens is not None and student.tokens + tokens > limit:
                raise Refused(
                    403, "budget_spent", _spent(student, "tokens", tokens), student.number
                )
            student.requests += 1
            return student

    def charge(self, student: Student, tokens: int) -> None:
        with self._lock:
            student.tokens += tokens

    def remaining_tokens(self, student: Student) -> int | None:
        with self._lock:
            if student.max_tokens is None:
                return None
            return max(student.max_tokens - student.tokens, 0)


def _bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _spent(student: Student, what: str, needed: int | None = None) -> str:
    if needed is not None:
        left = (student.max_tokens or 0) - student.tokens
        return (
            f"Your budget is too small for this reply: it needs {needed} tokens and "
            f"{left} are left; ask your teacher for more."
        )
    used, limit = (
        (student.requests, student.max_requests)
        if what == "requests"
        else (student.tokens, student.max_tokens)
    )
    return f"Your budget is spent: {used} of {limit} {what} used; ask your teacher for more."
