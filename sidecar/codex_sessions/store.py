"""Durable memory: every session and transcript item in SQLite (aiosqlite, WAL).

Writes are queued and committed by one writer task in small batches (every few
milliseconds), so a streaming session costs one transaction per batch, not per
item. `barrier()` tells when what was queued so far is committed: clients are
sent nothing before that.

Nothing queued is dropped. A batch that fails (read-only folder, full disk) stays
queued and is retried; the owner is told at once (`on_health`) and again when
writes succeed. A database file that was deleted or replaced under us is noticed
(its inode) and a new one is started, into which the owner writes everything it
knows (`on_replaced`). Several sidecars may share one database: each owns the
sessions it runs, and reads the others' rows. A live session's name is taken in
the database itself (a unique index), so two sidecars cannot run one name twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

import aiosqlite
import orjson

log = logging.getLogger(__name__)

LIVE = "('queued','starting','running','waiting','idle')"
SCHEMA_VERSION = 3
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
    2: [
        # Streamed text of a message not yet complete (an interrupted turn keeps it).
        """CREATE TABLE pieces (
               session_id TEXT NOT NULL,
               item_id TEXT NOT NULL,
               turn_id TEXT,
               text TEXT NOT NULL)""",
        "CREATE INDEX pieces_item ON pieces(session_id, item_id)",
        # Rows that could not be read, kept aside rather than served or deleted.
        """CREATE TABLE quarantine (
               id TEXT, data TEXT, reason TEXT NOT NULL, at TEXT NOT NULL)""",
        # Two sidecars of the first version could run one name twice: keep the newest.
        f"""UPDATE sessions SET status = 'interrupted',
                data = json_set(data, '$.status', 'interrupted')
            WHERE status IN {LIVE} AND json_valid(data) AND rowid NOT IN (
                SELECT rowid FROM sessions s WHERE s.status IN {LIVE}
                AND s.updated_at = (SELECT max(updated_at) FROM sessions t
                                    WHERE t.root = s.root AND t.name = s.name
                                    AND t.status IN {LIVE}))""",
        f"CREATE UNIQUE INDEX sessions_live_name ON sessions(root, name) WHERE status IN {LIVE}",
    ],
    3: [
        # The notetaker's entries (core/notes.py), by project, for retrieval in learn mode.
        """CREATE TABLE learnings (
               id INTEGER PRIMARY KEY,
               root TEXT NOT NULL,
               session_id TEXT NOT NULL,
               session_name TEXT NOT NULL,
               turn INTEGER,
               turn_id TEXT,
               kind TEXT NOT NULL,
               at TEXT NOT NULL,
               text TEXT NOT NULL,
               data TEXT NOT NULL)""",
        "CREATE INDEX learnings_root ON learnings(root, id)",
        "CREATE INDEX learnings_session ON learnings(session_id, id)",
        "CREATE VIRTUAL TABLE learnings_fts USING fts5(text, content='learnings', content_rowid='id')",
        """CREATE TRIGGER learnings_added AFTER INSERT ON learnings BEGIN
               INSERT INTO learnings_fts(rowid, text) VALUES (new.id, new.text); END""",
        """CREATE TRIGGER learnings_deleted AFTER DELETE ON learnings BEGIN
               INSERT INTO learnings_fts(learnings_fts, rowid, text)
               VALUES ('delete', old.id, old.text); END""",
    ],
}
LEARNING_COLUMNS = "id, root, session_id, session_name, turn, turn_id, kind, at, text, data"
UPSERT_SESSION = (
    "INSERT INTO sessions(id, root, name, status, updated_at, owner_pid, owner_token, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET root = excluded.root, "
    "name = excluded.name, status = excluded.status, updated_at = excluded.updated_at, "
    "owner_pid = excluded.owner_pid, owner_token = excluded.owner_token, data = excluded.data")
INSERT_ITEMS = "INSERT OR REPLACE INTO items(session_id, seq, data) VALUES (?, ?, ?)"
INSERT_PIECES = "INSERT INTO pieces(session_id, item_id, turn_id, text) VALUES (?, ?, ?, ?)"
DELETE_PIECES = "DELETE FROM pieces WHERE session_id = ? AND item_id = ?"
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)


class StoreError(Exception):
    """The database cannot be used; the message names the file and what to do."""


class NameHeld(Exception):
    """Another live session holds the name: (its id, owner pid, owner token)."""

    def __init__(self, session_id: str, pid: int | None, token: str | None) -> None:
        super().__init__(session_id)
        self.session_id, self.pid, self.token = session_id, pid, token


def _row(record: dict[str, Any], token: str | None, status: str | None = None) -> tuple[Any, ...]:
    return (record["id"], record["root"], record["name"], status or record["status"],
            record["updatedAt"], os.getpid() if token else None, token,
            orjson.dumps(record).decode())


class Store:
    """The database of one state folder."""

    def __init__(self, state_dir: Path, owner_token: str) -> None:
        self.state_dir = state_dir
        self.path = state_dir / "sessions.db"
        self.owner_token = owner_token
        self.db: aiosqlite.Connection | None = None
        self.notice: str | None = None  # e.g. "a corrupt database was moved aside"
        self.failing: str | None = None  # why writes fail right now
        self.on_health: Callable[[str | None], None] = lambda problem: None
        self.on_replaced: Callable[[], None] = lambda: None
        self._sessions: dict[str, tuple[dict[str, Any], str | None]] = {}
        self._items: list[tuple[str, int, str]] = []
        self._pieces: list[tuple[str, str, str | None, str]] = []
        self._done_pieces: list[tuple[str, str]] = []
        self._waiting: list[asyncio.Future[None]] = []  # barriers of what is queued
        self._writing: list[asyncio.Future[None]] | None = None  # barriers of the batch in flight
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._inode: tuple[int, int] | None = None
        self._write_lock = asyncio.Lock()  # one transaction at a time on this connection

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
                await self._disconnect()
                raise StoreError(f"cannot open the database {self.path}: {exc}") from exc
            aside = self.path.with_name(f"sessions.db.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            await self._disconnect()
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
        if not self.path.exists():
            self.path.touch(mode=0o600)
        os.chmod(self.path, 0o600)
        st = os.stat(self.path)
        self._inode = (st.st_dev, st.st_ino)
        self.db = await aiosqlite.connect(self.path, timeout=30, isolation_level=None)
        await self.db.execute("PRAGMA busy_timeout = 30000")
        await self._into_wal()
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

    async def _into_wal(self) -> None:
        """Switch the database to WAL, waiting out another sidecar that switches it too.

        SQLite answers a journal-mode change that meets another connection's lock with
        SQLITE_BUSY at once, without its busy handler, so two sidecars opening a new
        database together need the wait done here."""
        for attempt in range(200):
            try:
                await self.db.execute_fetchall("PRAGMA journal_mode = WAL")  # type: ignore[union-attr]
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 199:
                    raise
                await asyncio.sleep(0.05)

    async def _disconnect(self) -> None:
        if self.db:
            try:
                await self.db.close()
            except sqlite3.Error:
                pass
            self.db = None

    async def close(self) -> None:
        if self._writer:
            await self.flush(timeout=5)
            self._writer.cancel()
            self._writer = None
        await self._disconnect()

    # ---- writing --------------------------------------------------------------------

    def save_session(self, record: dict[str, Any], owned: bool = True) -> None:
        """Queue the session's row; the newest record of a session wins."""
        self._sessions[record["id"]] = (record, self.owner_token if owned else None)
        self._wake.set()

    def append_item(self, session_id: str, seq: int, encoded: bytes) -> None:
        self._items.append((session_id, seq, encoded.decode()))
        self._wake.set()

    def append_piece(self, session_id: str, item_id: str | None, turn_id: str | None,
                     text: str) -> None:
        if item_id:
            self._pieces.append((session_id, item_id, turn_id, text))
            self._wake.set()

    def drop_pieces(self, session_id: str, item_id: str | None) -> None:
        """The message is complete (its item is queued): its pieces are no longer needed."""
        if item_id:
            self._done_pieces.append((session_id, item_id))

    @property
    def _queued(self) -> bool:
        return bool(self._sessions or self._items or self._pieces)

    def barrier(self) -> asyncio.Future[None]:
        """Done when everything queued so far is committed, or the store said it cannot."""
        future = asyncio.get_running_loop().create_future()
        if self.failing or self._writer is None:
            future.set_result(None)
        elif self._queued or self._waiting:
            self._waiting.append(future)
            self._wake.set()
        elif self._writing is not None:  # nothing new: done when the batch being written is
            self._writing.append(future)
        else:
            future.set_result(None)
        return future

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far is committed (or the store is failing)."""
        try:
            await asyncio.wait_for(asyncio.shield(self.barrier()), timeout)
        except asyncio.TimeoutError:
            log.warning("%s: not everything was saved in time", self.path)

    async def _patiently(self, work: Callable[[], Any]) -> Any:
        """A direct write, tried again while another sidecar holds the database's lock."""
        for attempt in range(100):
            try:
                async with self._lock():
                    return await work()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                await asyncio.sleep(min(0.01 * (attempt + 1), 0.2))
        raise sqlite3.OperationalError(f"{self.path} stayed locked by another codex-sessions")

    async def claim(self, record: dict[str, Any]) -> None:
        """Write a new live session's row now; NameHeld if a live session has its name."""
        await self._patiently(lambda: self._claim(record))

    async def _claim(self, record: dict[str, Any]) -> None:
        assert self.db
        try:
            await self.db.execute(UPSERT_SESSION, _row(record, self.owner_token))
        except sqlite3.IntegrityError:
            rows = await self.db.execute_fetchall(
                f"SELECT id, owner_pid, owner_token FROM sessions WHERE root = ? AND name = ? "
                f"AND status IN {LIVE} AND id != ?", (record["root"], record["name"], record["id"]))
            if rows:
                sid, pid, token = list(rows)[0]
                raise NameHeld(sid, pid, token) from None
            raise

    async def release_name(self, session_id: str) -> None:
        """Mark a session another (dead) sidecar left live as interrupted, now."""
        assert self.db
        await self._patiently(lambda: self.db.execute(  # type: ignore[union-attr]
            "UPDATE sessions SET status = 'interrupted', owner_pid = NULL, owner_token = NULL, "
            "data = json_set(data, '$.status', 'interrupted') WHERE id = ?", (session_id,)))

    def _lock(self) -> asyncio.Lock:
        return self._write_lock

    def _replaced(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return (st.st_dev, st.st_ino) != self._inode or st.st_nlink == 0

    async def _write_loop(self) -> None:
        attempt = 0
        while True:
            await self._wake.wait()
            await asyncio.sleep(0)  # what this tick queues joins the batch; more gathers while we write
            self._wake.clear()  # (after the tick: what it queued is in this batch, not an empty next one)
            if self._replaced():
                await self._start_again()
            sessions, self._sessions = self._sessions, {}
            items, self._items = self._items, []
            pieces, self._pieces = self._pieces, []
            done_pieces, self._done_pieces = self._done_pieces, []
            waiting, self._waiting = self._waiting, []
            self._writing = waiting
            try:
                async with self._lock():
                    await self._write(sessions, items, pieces, done_pieces)
            except sqlite3.Error as exc:
                # keep the batch (newer records of a session win) and try again
                self._items[:0] = items
                self._pieces[:0] = pieces
                self._done_pieces[:0] = done_pieces
                self._sessions = {**sessions, **self._sessions}
                self._waiting[:0] = waiting
                self._writing = None
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy:
                    self._fail(f"cannot write to {self.path}: {exc}; "
                               f"{len(self._items)} transcript items wait to be saved")
                delay = 0.05 if busy else RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
                attempt += 1
                await asyncio.sleep(delay)
                self._wake.set()
                continue
            self._writing = None
            attempt = 0
            if self.failing:
                self.failing = None
                log.warning("%s: writes succeed again; everything queued is saved", self.path)
                self.on_health(None)
            for future in waiting:
                if not future.done():
                    future.set_result(None)
            if self._queued or self._waiting:
                self._wake.set()

    def _fail(self, problem: str) -> None:
        first = self.failing is None
        self.failing = problem
        if first:
            log.error("%s", problem)
            self.on_health(problem)
        for future in self._waiting:  # clients are not held back while the user is told
            if not future.done():
                future.set_result(None)

    async def _write(self, sessions: dict[str, tuple[dict[str, Any], str | None]],
                     items: list[tuple[str, int, str]], pieces: list[tuple[str, str, str | None, str]],
                     done_pieces: list[tuple[str, str]]) -> None:
        assert self.db
        # Each statement is a round trip to the database's thread: a batch of one row (the
        # usual `changed`, the first streamed piece) is one statement, its own transaction.
        steps = [(sql, rows) for sql, rows in ((INSERT_ITEMS, items), (INSERT_PIECES, pieces),
                                               (DELETE_PIECES, done_pieces)) if rows]
        rows = len(sessions) + sum(len(batch) for _, batch in steps)
        if rows <= 1:  # none: only barriers were waiting
            if steps:
                await self.db.execute(steps[0][0], steps[0][1][0])
            await self._save_sessions(sessions)
            return
        await self.db.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in steps:
                await self.db.executemany(sql, rows)
            await self._save_sessions(sessions)
            await self.db.execute("COMMIT")
        except BaseException:
            try:
                await self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise

    async def _save_sessions(self, sessions: dict[str, tuple[dict[str, Any], str | None]]) -> None:
        assert self.db
        if not sessions:
            return
        try:
            await self.db.executemany(UPSERT_SESSION, [_row(record, token)
                                                       for record, token in sessions.values()])
        except sqlite3.IntegrityError:
            for record, token in sessions.values():  # the same again, one by one (upserts)
                try:
                    await self.db.execute(UPSERT_SESSION, _row(record, token))
                except sqlite3.IntegrityError:
                    # its name is held by another sidecar's live row: keep the record, not the claim
                    await self.db.execute(UPSERT_SESSION, _row(record, token, "interrupted"))

    async def _start_again(self) -> None:
        """The file was deleted or replaced: start a new one and have everything rewritten."""
        problem = (f"the database {self.path} was deleted or replaced while in use; a new one "
                   "was started with everything this sidecar still holds")
        log.error("%s", problem)
        await self._disconnect()
        try:
            await self._connect()
        except (sqlite3.Error, OSError, StoreError) as exc:
            self._fail(f"{problem}, but it cannot be written: {exc}")
            return
        self.notice = problem
        self.on_replaced()

    # ---- reading --------------------------------------------------------------------

    async def load_sessions(self, since: str = "") -> list[tuple[str, str, int | None, str | None]]:
        """(id, JSON data, owner pid, owner token) of rows updated since `since`."""
        assert self.db
        # One fetch, never a cursor left open across awaits: an open read snapshot
        # makes this connection's next write fail with "database is locked".
        rows = await self.db.execute_fetchall(
            "SELECT id, data, owner_pid, owner_token FROM sessions WHERE updated_at >= ? "
            "ORDER BY updated_at", (since,))
        return list(rows)  # type: ignore[arg-type]

    async def quarantine(self, session_id: str, data: str, reason: str) -> None:
        """Set an unreadable row aside: kept for the user, no longer served."""
        assert self.db
        async with self._lock():
            await self.db.execute("BEGIN IMMEDIATE")
            await self.db.execute("INSERT INTO quarantine(id, data, reason, at) VALUES (?, ?, ?, ?)",
                                  (session_id, data, reason, time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                           time.gmtime())))
            await self.db.execute("DELETE FROM sessions WHERE id IS ?", (session_id,))
            await self.db.execute("COMMIT")

    async def next_seqs(self) -> dict[str, int]:
        """For each session, the seq its next transcript item gets."""
        assert self.db
        rows = await self.db.execute_fetchall(
            "SELECT session_id, max(seq) FROM items GROUP BY session_id")
        return {sid: top + 1 for sid, top in rows}

    async def first_seq(self, session_id: str) -> int | None:
        assert self.db
        rows = await self.db.execute_fetchall(
            "SELECT min(seq) FROM items WHERE session_id = ?", (session_id,))
        return list(rows)[0][0]

    async def with_pieces(self) -> list[str]:
        """Sessions whose streamed text never became a complete message."""
        assert self.db
        rows = await self.db.execute_fetchall("SELECT DISTINCT session_id FROM pieces")
        return [sid for (sid,) in rows]

    async def pieces(self, session_id: str) -> dict[str, tuple[str | None, str]]:
        """The streamed text of messages that never completed: item id -> (turn id, text)."""
        assert self.db
        rows = await self.db.execute_fetchall(
            "SELECT item_id, turn_id, text FROM pieces WHERE session_id = ? ORDER BY rowid",
            (session_id,))
        found: dict[str, tuple[str | None, list[str]]] = {}
        for item_id, turn_id, text in rows:
            found.setdefault(item_id, (turn_id, []))[1].append(text)
        return {item_id: (turn_id, "".join(parts)) for item_id, (turn_id, parts) in found.items()}

    async def items(self, session_id: str, after: int, limit: int) -> list[dict[str, Any]]:
        assert self.db
        await self.flush()
        rows = await self.db.execute_fetchall(
            "SELECT data FROM items WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (session_id, after, limit))
        return [orjson.loads(data) for (data,) in rows]

    async def forget(self, session_id: str) -> None:
        """Delete a session's record and transcript for good."""
        assert self.db
        await self.flush()
        async with self._lock():
            await self.db.execute("BEGIN IMMEDIATE")
            for table, column in (("items", "session_id"), ("pieces", "session_id"),
                                  ("learnings", "session_id"), ("sessions", "id")):
                await self.db.execute(f"DELETE FROM {table} WHERE {column} = ?", (session_id,))
            await self.db.execute("COMMIT")


    # ---- learnings (the notetaker's entries) ----------------------------------------

    async def add_learning(self, row: dict[str, Any]) -> int:
        """Keep one entry (`root`, `session_id`, `session_name`, `turn`, `turn_id`, `kind`,
        `at`, `text`, `data`); its id."""
        assert self.db
        async with self._lock():
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                cursor = await self.db.execute(
                    "INSERT INTO learnings(root, session_id, session_name, turn, turn_id, kind, at, "
                    "text, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (row["root"], row["session_id"], row["session_name"], row.get("turn"),
                     row.get("turn_id"), row["kind"], row["at"], row["text"],
                     orjson.dumps(row.get("data") or {}).decode()))
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            return int(cursor.lastrowid or 0)

    async def learnings(self, root: str, session_id: str | None = None,
                        limit: int = 1000) -> list[dict[str, Any]]:
        """The newest `limit` entries of a project (or of one session), oldest first."""
        assert self.db
        where, args = ("session_id = ?", (session_id,)) if session_id else ("root = ?", (root,))
        rows = await self.db.execute_fetchall(
            f"SELECT {LEARNING_COLUMNS} FROM learnings WHERE {where} ORDER BY id DESC LIMIT ?",
            (*args, limit))
        return [_learning(row) for row in reversed(list(rows))]

    async def matching_learnings(self, root: str, words: list[str],
                                 limit: int) -> list[dict[str, Any]]:
        """A project's entries that best match any of `words` (FTS5, best first)."""
        assert self.db
        if not words:
            return []
        query = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        rows = await self.db.execute_fetchall(
            f"SELECT {', '.join('l.' + c.strip() for c in LEARNING_COLUMNS.split(','))} "
            "FROM learnings_fts f JOIN learnings l ON l.id = f.rowid "
            "WHERE learnings_fts MATCH ? AND l.root = ? ORDER BY bm25(learnings_fts) LIMIT ?",
            (query, root, limit))
        return [_learning(row) for row in rows]


def _learning(row: Any) -> dict[str, Any]:
    keys = [c.strip() for c in LEARNING_COLUMNS.split(",")]
    found = dict(zip(keys, row))
    found["data"] = orjson.loads(found["data"])
    return found


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text
