"""A resumable store of finished replies: one SQLite file, keyed by what shapes a request.

A batch that is interrupted, or a kernel that restarts, should not pay twice for work that
finished. Each finished request is stored under a SHA-256 of everything that shapes its answer
(endpoint URL without credentials, model, messages, generation parameters, extra body, schema).
The API key and the headers are never part of the key nor of what is stored. Standard library
only; the database runs in WAL mode, so a commit per reply costs no fsync.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ._reply import Reply, Usage

__all__ = ["ReplyCache", "default_cache_path", "request_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    stored REAL NOT NULL,
    reply TEXT NOT NULL
)
"""
# The parts of a Reply worth keeping; params and prompt are the current request's, not stored.
_KEPT = ("text", "reasoning", "finish_reason", "id", "model", "created", "elapsed", "data")


def default_cache_path(environ: Mapping[str, str] | None = None) -> Path:
    """`$IPYCHAT_CACHE_DIR/batch.sqlite`, else the platform's cache folder + `ipychat/`."""
    env = os.environ if environ is None else environ
    if env.get("IPYCHAT_CACHE_DIR"):
        return Path(env["IPYCHAT_CACHE_DIR"]).expanduser() / "batch.sqlite"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    if sys.platform == "win32":
        base = Path(env["LOCALAPPDATA"]) if env.get("LOCALAPPDATA") else home / "AppData" / "Local"
    elif sys.platform == "darwin":
        base = home / "Library" / "Caches"
    else:
        xdg = env.get("XDG_CACHE_HOME", "")
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".cache"
    return base / "ipychat" / "batch.sqlite"


def _public_url(url: str) -> str:
    """The URL without `user:password@`: credentials are secrets, even hashed."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def request_key(url: str, body: Mapping[str, Any]) -> str:
    """The hex SHA-256 of the URL and the body fields that shape the answer (not `stream`)."""
    shaped = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    text = json.dumps(
        {"url": _public_url(url), "body": shaped},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=repr,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ReplyCache:
    """Finished replies by request key. Safe to use from the batch's worker thread."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise OSError(f"Cannot open the batch cache {self.path}: {exc}.") from None
        self._lock = threading.Lock()

    def get(self, key: str) -> Reply | None:
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            stored = json.loads(row[0])
        except ValueError:
            return None
        values = {k: stored.get(k) for k in _KEPT if k != "data"}
        reply = Reply(**values, usage=Usage.from_json(stored.get("usage")))
        reply.data = stored.get("data")
        return reply

    def put(self, key: str, reply: Reply, data: Any = None) -> None:
        """Keep a finished reply (`data` is the validated JSON value, when there is a schema)."""
        stored = {k: getattr(reply, k) for k in _KEPT if k != "data"}
        stored["usage"] = None if reply.usage is None else vars(reply.usage)
        stored["data"] = data
        text = json.dumps(stored, ensure_ascii=False)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies (key, stored, reply) VALUES (?, ?, ?)",
                (key, time.time(), text),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM replies").fetchone()[0])

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM replies")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"ReplyCache({str(self.path)!r})"
