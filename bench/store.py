"""Store throughput: transcript items a second the store commits while sessions stream.

Ten producer tasks stand for ten streaming sessions: each appends transcript
items (about 300 bytes of JSON, the size of a typical agent or command item)
and saves its session row now and then, as the manager does, for a fixed time.
The figure is what reached the database, counted there afterwards. Baseline in
the same run: the same rows written by plain sqlite3 executemany in one
transaction per batch of 500, with no event loop (close to what the disk allows).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from codex_sessions.store import Store

from .util import Results

SESSIONS = 10
ITEM = json.dumps({"turnId": "t" * 36, "at": "2026-11-21T05:00:00.000Z", "kind": "agent",
                   "text": "lorem ipsum dolor sit amet " * 9, "itemId": "msg_1"})
ITEM_BYTES = ITEM.encode()  # what the transcript hands the store: the item's JSON


def _record(sid: str, n: int) -> dict:
    return {"id": sid, "name": sid, "root": "/tmp/p", "createdAt": "x",
            "updatedAt": f"2026-11-21T05:00:{n % 60:02d}.000Z", "status": "running"}


async def _through_store(folder: Path, seconds: float) -> float:
    store = Store(folder, "bench")
    await store.open()
    stop = time.monotonic() + seconds

    async def session(sid: str) -> None:
        seq = 0
        while time.monotonic() < stop:
            for _ in range(50):
                seq += 1
                store.append_item(sid, seq, ITEM_BYTES)
            store.save_session(_record(sid, seq))
            await asyncio.sleep(0)  # other sessions, the protocol, Codex's lines

    began = time.monotonic()
    await asyncio.gather(*(session(f"s{i}") for i in range(SESSIONS)))
    await store.flush()
    elapsed = time.monotonic() - began
    await store.close()
    with sqlite3.connect(folder / "sessions.db") as conn:
        written = conn.execute("SELECT count(*) FROM items").fetchone()[0]
    return written / elapsed


def _plain_sqlite(folder: Path, count: int) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(folder / "plain.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE items (session_id TEXT, seq INTEGER, data TEXT, "
                 "PRIMARY KEY (session_id, seq)) WITHOUT ROWID")
    began = time.monotonic()
    for start in range(0, count, 500):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO items VALUES (?, ?, ?)",
                         [(f"s{n % SESSIONS}", n, ITEM) for n in range(start, start + 500)])
        conn.execute("COMMIT")
    elapsed = time.monotonic() - began
    conn.close()
    return count / elapsed


async def run(res: Results, quick: bool) -> None:
    seconds = 2.0 if quick else 5.0
    with tempfile.TemporaryDirectory() as tmp:
        store_rate = await _through_store(Path(tmp) / "store", seconds)
        plain_rate = _plain_sqlite(Path(tmp) / "plain", 100_000 if quick else 300_000)
    res.add("store: plain sqlite3 executemany (baseline)", f"{plain_rate:,.0f} items/s")
    res.add(f"store: items committed while {SESSIONS} sessions stream",
            f"{store_rate:,.0f} items/s ({store_rate / plain_rate:.2f}x the baseline)")
