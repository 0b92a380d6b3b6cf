"""The SQLite state backend: one file, for a single gateway replica (the default).

The standard library's sqlite3 is enough here: one connection, WAL journal, each call run in a
worker thread under a lock so the event loop never waits on the disk. Expired records are
invisible at once and deleted in batches as new records arrive.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from serving.gateway.state.store import StateStore, StateUnavailable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    expires_at REAL NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_expiry ON responses (expires_at);
"""
_PRUNE_EVERY = 256  # puts between deletions of expired records


class SQLiteStore(StateStore):
    backend = "sqlite"

    def __init__(
        self,
        path: Path,
        retention_seconds: float,
        max_record_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(retention_seconds, max_record_bytes)
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._puts = 0

    def _connect(self) -> sqlite3.Connection:
        """Opened on first use, so a gateway that never stores creates no file."""
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    async def _run(self, query: str, *args: object) -> list[tuple[object, ...]]:
        def work() -> list[tuple[object, ...]]:
            with self._lock:
                return self._connect().execute(query, args).fetchall()

        try:
            return await asyncio.to_thread(work)
        except sqlite3.Error as exc:
            raise StateUnavailable(
                f"conversation state store (sqlite {self.path}) failed: {type(exc).__name__}"
            ) from exc

    async def _put(self, key: str, data: bytes) -> None:
        now = self._clock()
        await self._run(
            "INSERT OR REPLACE INTO responses (id, expires_at, data) VALUES (?, ?, ?)",
            key,
            now + self.retention_seconds,
            data,
        )
        self._puts += 1
        if self._puts % _PRUNE_EVERY == 0:
            await self._run("DELETE FROM responses WHERE expires_at < ?", now)

    async def _get(self, key: str) -> bytes | None:
        rows = await self._run(
            "SELECT data FROM responses WHERE id = ? AND expires_at >= ?", key, self._clock()
        )
        if not rows:
            return None
        data = rows[0][0]
        assert isinstance(data, bytes)
        return data

    async def delete(self, response_id: str) -> bool:
        found = await self._get(response_id)
        await self._run("DELETE FROM responses WHERE id = ?", response_id)
        return found is not None

    async def aclose(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
