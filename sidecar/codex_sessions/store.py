"""Durable memory: every session and transcript item in SQLite (aiosqlite, WAL).

Writes are queued and committed by one writer task in small batches (every
few milliseconds), so a streaming session costs one transaction per batch,
not per item. Several sidecars may share one database: each owns the sessions
it runs, and reads the others' rows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiosqlite

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE sessions (
               id TEXT PRIMARY KEY,
               root TEXT NOT NULL,
               name TEXT NOT NULL,
               status TEXT NOT NULL,
               updated_at TEXT NOT NULL,
               owner_pid INTEGER,
               owner_token TEXT,
               data TEXT NOT NULL)""",
        "CREATE INDEX sessions_root ON sessions(root, name)",
        "CREATE INDEX sessions_updated ON sessions(updated_at)",
        """CREATE TABLE items (
               session_id TEXT NOT NULL,
               seq INTEGER NOT NULL,
               data TEXT NOT NULL,
               PRIMARY KEY (session_id, seq)) WITHOUT ROWID""",
    ],
}


class StoreError(Exception):
    """The database cannot be used; the message names the file and what to do."""


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "codex-sessions"


class Store:
    """The database of one state folder."""

    def __init__(self, state_dir: Path, owner_token: str) -> None:
        self.state_dir = state_dir
        self.path = state_dir / "sessions.db"
        self.owner_token = owner_token
        self.db: aiosqlite.Connection | None = None
        self.notice: str | None = None  # e.g. "a corrupt database was moved aside"
        self._sessions: dict[str, tuple[dict[str, Any], str | None]] = {}
        self._items: list[tuple[str, int, str]] = []
        self._wake = asyncio.Event()
        self._flushed = asyncio.Event()
        self._in_flight = False
        self._writer: asyncio.Task[None] | None = None

    # ---- opening --------------------------------------------------------------------

    async def open(self) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.state_dir, 0o700)
        except OSError as exc:
            raise StoreError(f"cannot create the state folder {self.state_dir}: {exc.strerror}; "
                             "set stateDir or CODEX_SESSIONS_STATE_DIR to a writable folder") from exc
        try:
            await self._connect()
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
                raise StoreError(f"cannot open the database {self.path}: {exc}") from exc
            aside = self.path.with_name(f"sessions.db.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            await self.close()
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(self.path) + suffix)
                if src.exists():
                    src.rename(Path(str(aside) + suffix))
            self.notice = (f"the database {self.path} was corrupt ({exc}); it was moved aside to "
                           f"{aside} and a new one was started")
            log.error("%s", self.notice)
            await self._connect()
        self._writer = asyncio.create_task(self._write_loop())

    async def _connect(self) -> None:
        fresh = not self.path.exists()
        if fresh:
            self.path.touch(mode=0o600)
        os.chmod(self.path, 0o600)
        self.db = await aiosqlite.connect(self.path, timeout=30, isolation_level=None)
        await self.db.execute("PRAGMA busy_timeout = 30000")
        await self.db.execute_fetchall("PRAGMA journal_mode = WAL")
        await self.db.execute("PRAGMA synchronous = NORMAL")
        version = (await self.db.execute_fetchall("PRAGMA user_version"))[0][0]  # type: ignore[index]
        if version > SCHEMA_VERSION:
            raise StoreError(f"the database {self.path} has schema {version}, newer than this "
                             f"codex-sessions knows ({SCHEMA_VERSION}); upgrade codex-sessions")
        if version < SCHEMA_VERSION:
            await self.db.execute("BEGIN IMMEDIATE")
            version = (await self.db.execute_fetchall("PRAGMA user_version"))[0][0]  # type: ignore[index]
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target]:
                    await self.db.execute(statement)
            await self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            await self.db.execute("COMMIT")
        await self.db.execute_fetchall("SELECT count(*) FROM sessions")  # a corrupt file fails here

    async def close(self) -> None:
        if self._writer:
            await self.flush()
            self._writer.cancel()
            self._writer = None
        if self.db:
            await self.db.close()
            self.db = None

    # ---- writing --------------------------------------------------------------------

    def save_session(self, record: dict[str, Any], owned: bool = True) -> None:
        """Queue the session's row; the newest record of a session wins."""
        self._sessions[record["id"]] = (record, self.owner_token if owned else None)
        self._wake.set()

    def append_item(self, session_id: str, seq: int, encoded: str) -> None:
        self._items.append((session_id, seq, encoded))
        self._wake.set()

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        if not (self._sessions or self._items or self._in_flight) or self._writer is None:
            return
        self._flushed.clear()
        self._wake.set()
        await self._flushed.wait()

    async def _write_loop(self) -> None:
        assert self.db
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0.005)  # gather a batch
            sessions, self._sessions = self._sessions, {}
            items, self._items = self._items, []
            self._in_flight = True
            try:
                await self.db.execute("BEGIN IMMEDIATE")
                if items:
                    await self.db.executemany(
                        "INSERT OR REPLACE INTO items(session_id, seq, data) VALUES (?, ?, ?)", items)
                if sessions:
                    await self.db.executemany(
                        "INSERT OR REPLACE INTO sessions(id, root, name, status, updated_at, "
                        "owner_pid, owner_token, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(r["id"], r["root"], r["name"], r["status"], r["updatedAt"],
                          os.getpid() if token else None, token, json.dumps(r))
                         for r, token in sessions.values()])
                await self.db.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    await self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if "locked" in str(exc) or "busy" in str(exc):
                    # another sidecar holds the lock: keep the batch and try again
                    self._items[:0] = items
                    self._sessions = {**sessions, **self._sessions}
                    self._in_flight = False
                    await asyncio.sleep(0.05)
                    self._wake.set()
                    continue
                log.exception("writing to %s failed; %d items and %d sessions not saved",
                              self.path, len(items), len(sessions))
            self._in_flight = False
            if not (self._sessions or self._items):
                self._flushed.set()

    # ---- reading --------------------------------------------------------------------

    async def load_sessions(self, since: str = "") -> list[tuple[dict[str, Any], int | None, str | None]]:
        """Session records (with owner pid and token) updated after `since`."""
        assert self.db
        # One fetch, never a cursor left open across awaits: an open read snapshot
        # makes this connection's next write fail with "database is locked".
        rows = await self.db.execute_fetchall(
            "SELECT data, owner_pid, owner_token FROM sessions WHERE updated_at >= ? "
            "ORDER BY updated_at", (since,))
        return [(json.loads(data), pid, token) for data, pid, token in rows]

    async def next_seqs(self) -> dict[str, int]:
        """For each session, the seq its next transcript item gets."""
        assert self.db
        rows = await self.db.execute_fetchall(
            "SELECT session_id, max(seq) FROM items GROUP BY session_id")
        return {sid: top + 1 for sid, top in rows}

    async def items(self, session_id: str, after: int, limit: int) -> list[dict[str, Any]]:
        assert self.db
        await self.flush()
        rows = await self.db.execute_fetchall(
            "SELECT data FROM items WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (session_id, after, limit))
        return [json.loads(data) for (data,) in rows]


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text
